"""The offline memory plan: TFLM places tensors where the plan says, the outputs stay
bit-identical, and the exact aliases (pieces inside their concatenation, reshapes, element-wise
ops in place) shrink the planned arena."""

import numpy as np
import pytest

from keras_models.models import build_classifier
from tests.conftest import tiny_config
from tests.test_lean_graph import SEQ_LEN, _inputs, converted  # noqa: F401 (fixture)
from tflm_embbert.graph.lean_graph import LeanOptions, lean_tflite, write_model
from tflm_embbert.graph.memory_plan import (
    METADATA_NAME,
    offline_plan_model,
    plan,
    with_offline_plan,
)
from tflm_embbert.quantize.convert import to_int8_tflite
from tflm_embbert.tflm.check import measure_arena_bytes, run_tflm


@pytest.fixture(scope="module")
def graphs():
    model = build_classifier(tiny_config(kernel_size=4), 3)
    straight = to_int8_tflite(model, SEQ_LEN, _inputs(32, seed=1), per_channel_dense=False)
    return {
        "straight": straight,
        # Without the mask bias the chunks' score tensors dominate this tiny model's plan.
        "layer": lean_tflite(straight, LeanOptions(chunk_rows=8, mask_bias=False)),
        "attention": lean_tflite(straight, LeanOptions(chunk_rows=8, chunk_scope="attention")),
        "layer, mask bias": lean_tflite(straight, LeanOptions(chunk_rows=8)),
    }


@pytest.mark.parametrize("name", ["straight", "layer", "attention", "layer, mask bias"])
@pytest.mark.parametrize("alias", [True, False])
def test_planned_graph_is_bit_identical_and_tflm_uses_the_plan(graphs, name, alias):
    graph = graphs[name]
    planned, result = with_offline_plan(graph, alias=alias)
    inputs = _inputs(24, seed=5)
    np.testing.assert_array_equal(run_tflm(planned, inputs).raw, run_tflm(graph, inputs).raw)
    arena = measure_arena_bytes(planned)
    assert arena["planned"] == result.head_bytes  # TFLM's head is exactly the plan's
    assert result.head_bytes >= result.lower_bound


def test_aliases_shrink_the_plan(graphs):
    graph = graphs["layer"]
    _, plain = with_offline_plan(graph, alias=False)
    _, aliased = with_offline_plan(graph, alias=True)
    assert aliased.aliases["concatenation"] > 0 and aliased.aliases["in_place"] > 0
    assert aliased.head_bytes < plain.head_bytes
    # No plan beats what TFLM's own planner does with the same graph.
    assert plain.head_bytes <= measure_arena_bytes(graph)["planned"]


def test_a_wrong_plan_changes_the_outputs(graphs):
    """The checks above can fail: with every activation at offset 0 TFLM either gives other
    results or stops with an error (a kernel sees its output over its input)."""
    graph = graphs["layer"]
    model = offline_plan_model(graph)
    buffer = next(m.buffer for m in model.metadata if m.name == METADATA_NAME)
    values = np.frombuffer(bytes(model.buffers[buffer].data), dtype="<i4").copy()
    values[3:] = np.where(values[3:] >= 0, 0, values[3:])
    model.buffers[buffer].data = np.frombuffer(values.tobytes(), dtype=np.uint8)
    broken = write_model(model)
    inputs = _inputs(8, seed=6)
    expected = run_tflm(graph, inputs).raw
    try:
        got = run_tflm(broken, inputs).raw
    except RuntimeError:
        return
    assert not np.array_equal(got, expected)


def test_plan_replaces_an_earlier_plan(graphs):
    once, _ = with_offline_plan(graphs["attention"])
    twice, result = with_offline_plan(once)
    model = offline_plan_model(twice)
    assert [m.name for m in model.metadata].count(METADATA_NAME) == 1
    assert plan(model).head_bytes == result.head_bytes


@pytest.mark.parametrize("name", ["bert", "embedder_conv"])
def test_other_architectures_stay_exact_with_a_plan(converted, name):  # noqa: F811
    graph = converted[name, True]
    planned, result = with_offline_plan(graph)
    inputs = _inputs(16, seed=7)
    np.testing.assert_array_equal(run_tflm(planned, inputs).raw, run_tflm(graph, inputs).raw)
    assert measure_arena_bytes(planned)["planned"] == result.head_bytes
