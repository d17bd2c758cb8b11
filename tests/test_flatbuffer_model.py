"""Compact .tflite writing: the same model for TFLM in fewer bytes."""

import numpy as np
import pytest
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

from keras_models.models import build_classifier
from tests.conftest import tiny_config
from tflm_embbert.graph.flatbuffer import data_of, load_model, rewrite_compactly, serialize
from tflm_embbert.quantize.convert import to_int8_tflite
from tflm_embbert.tflm.check import run_tflm

SEQ_LEN = 16


def _inputs(count: int, seed: int) -> dict:
    rng = np.random.default_rng(seed)
    token_ids = np.zeros((count, SEQ_LEN), np.int32)
    for row, length in enumerate(rng.integers(2, SEQ_LEN + 1, count)):
        token_ids[row, :length] = rng.integers(5, 120, length)
    return {"token_ids": token_ids, "segment_ids": (token_ids > 0).astype(np.int32)}


@pytest.fixture(scope="module")
def converted() -> bytes:
    model = build_classifier(tiny_config(kernel_size=4), 3)
    return to_int8_tflite(model, SEQ_LEN, _inputs(16, seed=1))


def test_compact_writing_gives_the_same_outputs_in_fewer_bytes(converted):
    written = serialize(load_model(converted))
    stripped = rewrite_compactly(converted)
    assert len(stripped) < len(written) < len(converted)
    inputs = _inputs(24, seed=2)
    expected = run_tflm(converted, inputs).raw
    np.testing.assert_array_equal(run_tflm(written, inputs).raw, expected)
    np.testing.assert_array_equal(run_tflm(stripped, inputs).raw, expected)


def test_tflm_run_split_over_processes_gives_the_same_outputs(converted):
    inputs = _inputs(24, seed=3)
    expected = run_tflm(converted, inputs)
    split = run_tflm(converted, inputs, workers=2, min_per_worker=5)
    np.testing.assert_array_equal(split.raw, expected.raw)
    np.testing.assert_array_equal(split.logits, expected.logits)


def test_buffers_are_shared_and_names_kept_only_on_inputs_and_outputs(converted):
    original = load_model(converted)
    model = load_model(rewrite_compactly(converted))
    graph = model.subgraphs[0]
    contents = [data_of(buffer) for buffer in model.buffers]
    assert contents[0] is None and None not in contents[1:]  # one empty sentinel
    assert len(set(contents[1:])) == len(contents) - 1  # each content once
    used = {int(t.buffer) for t in graph.tensors} | {int(m.buffer) for m in model.metadata}
    assert used | {0} == set(range(len(model.buffers)))  # nothing unreferenced
    for old, new in zip(original.subgraphs[0].tensors, graph.tensors, strict=True):
        assert data_of(original.buffers[old.buffer]) == contents[new.buffer]
    io = {int(i) for i in graph.inputs} | {int(i) for i in graph.outputs}
    pairs = zip(original.subgraphs[0].tensors, graph.tensors, strict=True)
    for index, (old, new) in enumerate(pairs):
        assert (new.name == old.name) if index in io else not new.name


def test_unreferenced_buffers_are_dropped_and_metadata_kept(converted):
    model = load_model(converted)
    orphan = schema_fb.BufferT()
    orphan.data = np.arange(4096, dtype=np.uint8)
    model.buffers.append(orphan)
    note = schema_fb.BufferT()
    note.data = np.frombuffer(b"kept", np.uint8).copy()
    model.buffers.append(note)
    entry = schema_fb.MetadataT()
    entry.name, entry.buffer = b"note", len(model.buffers) - 1
    model.metadata = list(model.metadata or []) + [entry]
    written = load_model(serialize(model))
    assert all(len(data_of(b) or b"") != 4096 for b in written.buffers)
    kept = next(m for m in written.metadata if m.name == b"note")
    assert data_of(written.buffers[kept.buffer]) == b"kept"
