"""The memory-lean rewrite computes exactly what the converter's graph computes, for less arena;
MAC counting from the flatbuffer."""

import numpy as np
import pytest

from keras_models.models import build_classifier
from tests.conftest import tiny_config
from tflm_embbert.graph.flatbuffer import inspect_tflite
from tflm_embbert.graph.int8_check import check_int8_graph
from tflm_embbert.graph.lean_graph import LeanOptions, lean_tflite
from tflm_embbert.graph.macs import count_macs
from tflm_embbert.graph.memory_plan import with_offline_plan
from tflm_embbert.quantize.convert import to_int8_tflite
from tflm_embbert.tflm.check import measure_arena_bytes, run_tflm
from tflm_embbert.tflm.int8_eval import smallest_lean

SEQ_LEN = 32
HIDDEN = 16
KERNEL = 4


def _inputs(count: int, seed: int) -> dict:
    """Random ids with real lengths from 2 to SEQ_LEN, [PAD]=0 after; segments 1 then 2."""
    rng = np.random.default_rng(seed)
    token_ids = np.zeros((count, SEQ_LEN), np.int32)
    segment_ids = np.zeros((count, SEQ_LEN), np.int32)
    for row, length in enumerate(rng.integers(2, SEQ_LEN + 1, count)):
        token_ids[row, :length] = rng.integers(5, 120, length)
        segment_ids[row, :length] = 1
        segment_ids[row, length // 2 : length] = 2
    return {"token_ids": token_ids, "segment_ids": segment_ids}


@pytest.fixture(scope="module")
def converted():
    """{(preset-like name, per_channel_dense): int8 .tflite} of tiny random classifiers."""
    models = {
        "embbert": build_classifier(tiny_config(kernel_size=KERNEL), 3),
        "bert": build_classifier(
            tiny_config(arch="bert", num_heads=2, intermediate_dim=32, embedding_dim=None), 3
        ),
        "embedder_conv": build_classifier(
            tiny_config(arch="embedder", num_layers=0, kernel_size=KERNEL, pooling="rms"), 3
        ),
    }
    calibration = _inputs(32, seed=1)
    found = {}
    for name, model in models.items():
        for per_channel in (True, False) if name == "embbert" else (True,):
            found[name, per_channel] = to_int8_tflite(
                model, SEQ_LEN, calibration, per_channel_dense=per_channel
            )
    return found


@pytest.mark.parametrize("mask_bias", [True, False])
@pytest.mark.parametrize("scope", ["layer", "attention"])
@pytest.mark.parametrize("chunk_rows", [0, 8, 5])
@pytest.mark.parametrize("per_channel", [True, False])
def test_embbert_outputs_are_bit_identical(converted, chunk_rows, per_channel, scope, mask_bias):
    straight = converted["embbert", per_channel]
    options = LeanOptions(chunk_rows=chunk_rows, chunk_scope=scope, mask_bias=mask_bias)
    lean = lean_tflite(straight, options)
    check_int8_graph(lean)
    inputs = _inputs(40, seed=2)
    expected = run_tflm(straight, inputs).raw
    got = run_tflm(lean, inputs).raw
    np.testing.assert_array_equal(got, expected)


def test_mask_bias_replaces_the_per_row_floor(converted):
    straight = converted["embbert", False]
    exact = inspect_tflite(lean_tflite(straight, LeanOptions(chunk_rows=8, mask_bias=False)))
    biased = inspect_tflite(lean_tflite(straight, LeanOptions(chunk_rows=8)))
    assert exact.op_counts["REDUCE_MIN"] > 0 and "SELECT_V2" not in exact.op_counts
    # One keep test for the model, one bias per layer, no floor left.
    assert "REDUCE_MIN" not in biased.op_counts
    assert biased.op_counts["NOT_EQUAL"] == 1 and biased.op_counts["SELECT_V2"] == 2
    # Per chunk (4 in the first layer, the [CLS] row in the last) REDUCE_MIN, SUB and
    # MUL(1 - keep, floor) go, and so does 1 - keep; NOT_EQUAL and a SELECT_V2 per layer come.
    assert len(exact.ops) - len(biased.ops) == 3 * (SEQ_LEN // 8 + 1) + 1 - 3
    before = measure_arena_bytes(
        with_offline_plan(lean_tflite(straight, LeanOptions(8, mask_bias=False)))[0]
    )
    after = measure_arena_bytes(with_offline_plan(lean_tflite(straight, LeanOptions(8)))[0])
    assert after["planned"] < before["planned"] and after["persistent"] < before["persistent"]


def test_a_bias_that_does_not_mask_changes_the_outputs(converted):
    """The equality above can fail: padded keys given the bias of real keys are attended to."""
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

    from tflm_embbert.graph.lean_graph import write_model

    straight = converted["embbert", False]
    lean = lean_tflite(straight, LeanOptions(chunk_rows=8), keep_names=True)
    model = schema_fb.ModelT.InitFromObj(schema_fb.Model.GetRootAsModel(lean, 0))
    tensors = {t.name: t for t in model.subgraphs[0].tensors}
    zero = model.buffers[tensors[b"lean/bias_zero"].buffer].data
    model.buffers[tensors[b"lean/bias_lowest"].buffer].data = zero
    broken = write_model(model)
    inputs = _inputs(40, seed=2)
    assert not np.array_equal(run_tflm(broken, inputs).raw, run_tflm(straight, inputs).raw)
    np.testing.assert_array_equal(run_tflm(lean, inputs).raw, run_tflm(straight, inputs).raw)


@pytest.mark.parametrize("name", ["bert", "embedder_conv"])
def test_other_architectures_stay_exact(converted, name):
    straight = converted[name, True]
    lean = lean_tflite(straight, LeanOptions(chunk_rows=8))
    inputs = _inputs(24, seed=3)
    np.testing.assert_array_equal(run_tflm(lean, inputs).raw, run_tflm(straight, inputs).raw)


def test_rewrite_shapes_the_graph_as_intended(converted):
    straight = converted["embbert", True]
    lean = lean_tflite(straight, LeanOptions(chunk_rows=8))
    report = inspect_tflite(lean)
    ops = report.op_counts
    # Pre-transposed values: one TRANSPOSE per layer, no BATCH_MATMUL left with adj_y=False.
    assert ops["TRANSPOSE"] == 2
    assert all(op.options.adjY for op in report.ops if op.name == "BATCH_MATMUL")
    # Every attention tensor of the first layer is at most a chunk of rows high.
    scores = [report.tensors[op.outputs[0]].shape for op in report.ops if op.name == "SOFTMAX"]
    assert max(shape[1] for shape in scores) == 8
    # [CLS]-only last layer: its one SOFTMAX is one row; the first layer has SEQ_LEN / 8.
    assert sorted(shape[1] for shape in scores) == [1] + [8] * (SEQ_LEN // 8)


def test_attention_scope_chunks_only_the_attention_chain(converted):
    straight = converted["embbert", True]
    layer = inspect_tflite(lean_tflite(straight, LeanOptions(chunk_rows=8)))
    attention = inspect_tflite(
        lean_tflite(straight, LeanOptions(chunk_rows=8, chunk_scope="attention"))
    )

    def shapes(name):
        return [attention.tensors[op.outputs[0]].shape for op in attention.ops if op.name == name]

    scores = shapes("SOFTMAX")
    assert sorted(shape[1] for shape in scores) == [1] + [8] * (SEQ_LEN // 8)
    # The first layer's conv and norm run once on all rows (the [CLS]-only layer's on 1 row).
    convs = shapes("LOGISTIC")
    assert sorted(int(np.prod(shape)) // HIDDEN for shape in convs) == [1, SEQ_LEN]
    assert len(attention.ops) < len(layer.ops)


def test_cls_only_last_layer_cuts_macs_exactly(converted):
    straight = converted["embbert", True]
    lean = lean_tflite(straight, LeanOptions(chunk_rows=0))
    full, lean_macs = count_macs(straight)["total"], count_macs(lean)["total"]
    # The last layer keeps the whole keys/values but computes one query row: Wq, Wo, Wc and
    # the conv for 1 row instead of SEQ_LEN, and 2 * 1 * SEQ_LEN * HIDDEN for attention.
    last_layer_full = 3 * SEQ_LEN * HIDDEN * HIDDEN + SEQ_LEN * HIDDEN * KERNEL
    last_layer_full += 2 * SEQ_LEN * SEQ_LEN * HIDDEN
    last_layer_cls = 3 * HIDDEN * HIDDEN + HIDDEN * KERNEL + 2 * SEQ_LEN * HIDDEN
    assert full - lean_macs == last_layer_full - last_layer_cls


def test_chunks_lower_the_planned_arena(converted):
    straight = converted["embbert", False]
    before = measure_arena_bytes(straight)
    after = measure_arena_bytes(lean_tflite(straight, LeanOptions(chunk_rows=8)))
    assert after["planned"] < before["planned"]
    # The persistent part grows with the op count (a cost the bench reports).
    assert after["persistent"] > before["persistent"]


def test_smallest_lean_keeps_the_graph_with_the_smallest_measured_arena(converted):
    straight = converted["bert", True]
    graph, choice, arena = smallest_lean(straight, (0, 8), True, progress=lambda line: None)
    by_variant = choice["arena_by_variant"]
    # The converter's graph is a candidate; both chunk scopes at 8 rows.
    assert set(by_variant) == {
        "converter",
        "chunk_rows=0",
        "chunk_rows=8/layer",
        "chunk_rows=8/attention",
    }
    assert arena == measure_arena_bytes(graph)
    assert arena["minimum"] == min(by_variant.values())
    rows, scope, bias = choice["chunk_rows"], choice["chunk_scope"], choice["mask_bias"]
    options = LeanOptions(rows, chunk_scope=scope, mask_bias=bias) if rows is not None else None
    kept = straight if options is None else lean_tflite(straight, options)
    assert graph == with_offline_plan(kept)[0]


def test_count_macs_matches_the_layer_formula(converted):
    macs = count_macs(converted["embbert", True])
    per_layer = 3 * SEQ_LEN * HIDDEN * HIDDEN + SEQ_LEN * HIDDEN * KERNEL
    per_layer += 2 * SEQ_LEN * SEQ_LEN * HIDDEN
    embedder = SEQ_LEN * 8 * HIDDEN  # token up-projection (positions fold into a constant)
    head = HIDDEN * 3
    assert macs["total"] == 2 * per_layer + embedder + head
    assert macs["by_op"]["BATCH_MATMUL"] == 2 * 2 * SEQ_LEN * SEQ_LEN * HIDDEN
    assert macs["elementwise"] > 0


def test_negative_chunk_rows_is_refused():
    with pytest.raises(ValueError, match="chunk_rows"):
        LeanOptions(chunk_rows=-1)


def test_unknown_chunk_scope_is_refused():
    with pytest.raises(ValueError, match="chunk_scope: expected one of layer, attention"):
        LeanOptions(chunk_rows=8, chunk_scope="heads")
