"""Memory report: tensor lifetimes, the activation peak, the paper's analytic count."""

import numpy as np
import pytest

from keras_models.models import build_classifier
from tests.conftest import tiny_config
from tflm_embbert.graph.flatbuffer import inspect_tflite
from tflm_embbert.quantize.convert import to_int8_tflite
from tflm_embbert.tflm.check import measure_arena_bytes
from tflm_embbert.tflm.memory_report import (
    memory_markdown,
    memory_report,
    paper_analytic_bytes,
    tensor_lifetimes,
)

SEQ_LEN = 16


@pytest.fixture(scope="module")
def tiny_tflite():
    rng = np.random.default_rng(0)
    token_ids = rng.integers(5, 120, (16, SEQ_LEN)).astype(np.int32)
    inputs = {"token_ids": token_ids, "segment_ids": np.ones_like(token_ids)}
    return to_int8_tflite(build_classifier(tiny_config(), 2), SEQ_LEN, inputs)


def test_lifetimes_cover_every_activation(tiny_tflite):
    report = inspect_tflite(tiny_tflite)
    lifetimes = tensor_lifetimes(tiny_tflite)
    for op in report.ops:
        for index in op.inputs + op.outputs:
            if index >= 0 and not report.tensors[index].constant:
                first, last = lifetimes[index]
                assert first <= op.index <= last
    for tensor in report.inputs:
        assert lifetimes[tensor.index][0] == 0
    assert all(not report.tensors[i].constant for i in lifetimes)


def test_report_against_the_runtime(tiny_tflite):
    arena = measure_arena_bytes(tiny_tflite)
    memory = memory_report(tiny_tflite, arena, parameters=1000, seq_len=SEQ_LEN, hidden_dim=16)
    assert memory["flash_tflite_bytes"] == len(tiny_tflite)
    parts = memory["flash_breakdown"]
    assert sum(parts.values()) == len(tiny_tflite) and min(parts.values()) > 0
    assert memory["ram_arena_bytes"] == arena["minimum"]
    assert arena["recorded"] == arena["planned"] + arena["persistent"]
    peak = memory["activation_peak"]
    # The live activations at the peak must fit in the planner's head (a lower bound on it).
    assert 0 < peak["live_bytes"] <= arena["planned"]
    sizes = [t["bytes"] for t in peak["largest_tensors"]]
    assert sizes == sorted(sizes, reverse=True) and sizes[0] == SEQ_LEN * 16
    text = memory_markdown(memory)
    assert f"| flash: .tflite | {len(tiny_tflite):,} B" in text


def test_paper_analytic_count_matches_the_reference_figures():
    # embbert-reference.md: float32 weights 1,428,992 B (357,248 params) + (L^2 + 2Ld) * 4 B
    # activations = 524,288 B at L=256, d=128.
    float32 = paper_analytic_bytes(357_248, 256, 128, bytes_per_value=4)
    assert float32 == {"weights": 1_428_992, "activations": 524_288, "total": 1_953_280}
    assert paper_analytic_bytes(357_248, 256, 128)["activations"] == 131_072


def test_invoke_time_is_measured(tiny_tflite):
    from tflm_embbert.tflm.check import invoke_ms

    rng = np.random.default_rng(1)
    token_ids = rng.integers(5, 120, (3, SEQ_LEN)).astype(np.int32)
    assert invoke_ms(tiny_tflite, {"token_ids": token_ids, "segment_ids": np.ones_like(token_ids)},
                     count=3) > 0


def test_peak_tensors_of_a_compact_lean_graph_are_named(tiny_tflite):
    """A lean graph is written without tensor names; the report names its tensors after the
    converter's (a chunk 'lean/<k>/rows_a_b' after tensor k), and only the names change."""
    from tflm_embbert.graph.lean_graph import LeanOptions, lean_tflite
    from tflm_embbert.graph.memory_plan import with_offline_plan
    from tflm_embbert.tflm.int8_eval import tensor_names
    from tflm_embbert.tflm.memory_report import activation_peak

    choice = {"chunk_rows": 8, "chunk_scope": "layer", "mask_bias": True}
    compact = with_offline_plan(lean_tflite(tiny_tflite, LeanOptions(**choice)))[0]
    unnamed = activation_peak(compact)
    assert {t["name"] for t in unnamed["largest_tensors"]} & {"None", ""} == set()
    assert any(t["name"].startswith("output of op #") for t in unnamed["largest_tensors"])
    names = tensor_names(tiny_tflite, choice)
    named = activation_peak(compact, names=names)
    converter = {t.name.split(";")[0] for t in inspect_tflite(tiny_tflite).tensors}
    for tensor in named["largest_tensors"]:
        assert tensor["name"] in converter or tensor["name"].rsplit("/", 1)[0] in converter
        assert not tensor["name"].startswith(("lean/", "output of op"))
    assert named["layer"] and named["layer"].startswith("block_")
    same = ("op_index", "op", "live_bytes")
    assert {k: named[k] for k in same} == {k: unnamed[k] for k in same}
    with pytest.raises(ValueError, match="tensor names for"):
        activation_peak(compact, names=names[:-1])
    text = memory_markdown(
        memory_report(compact, measure_arena_bytes(compact), parameters=1, seq_len=SEQ_LEN,
                      hidden_dim=16, names=names)
    )
    assert "`None`" not in text and "| `embbert_classifier/" in text
