"""The Cortex-M4 latency estimate (tflm_embbert/tflm/latency.py).

Model level: the shipped backbone's classifier (random weights: the op list and shapes, hence
the estimate, do not depend on them), converted to int8 at L = 16, 32 and 256 and made lean as
the export makes its bucket graphs, estimated with TFLM + CMSIS-NN kernels, against what real
TFLM + CMSIS-NN executed per classify() on QEMU's Cortex-M4 for the demo library's buckets
(../shared/notes/m4-measurements.md). Unit level: the own kernels' work counts against brute
force, and, when the cross toolchain and QEMU are installed, the committed own-kernel costs
against a fresh measurement of the current cores.
"""

import numpy as np
import pytest

from tflm_embbert.tflm import latency

# Instructions per classify() measured on real TFLM 90b983c2 + CMSIS-NN 4ab83cc3 under QEMU
# (mps2-an386, -icount), demo library buckets 16/32 and an L=256 export (248 tokens).
MEASURED = {16: (13.85e6, 13.97e6), 32: (28.3e6, 28.9e6), 256: (402e6, 422e6)}
TOLERANCE = 0.15


@pytest.fixture(scope="module")
def graphs():
    from keras_models.backend import keras
    from keras_models.models import build_classifier, read_backbone_config
    from tflm_embbert.common import paths
    from tflm_embbert.graph.lean_graph import lean_tflite
    from tflm_embbert.quantize.convert import to_int8_tflite
    from tflm_embbert.quantize.rewrites import export_rewrites

    config = read_backbone_config(paths.SHIPPED_BACKBONE_DIR)
    keras.utils.set_random_seed(0)
    model = export_rewrites(build_classifier(config, 7))
    rng = np.random.default_rng(0)
    out = {}
    for length in MEASURED:
        ids = rng.integers(5, config.vocabulary_size, (8, length)).astype(np.int32)
        segments = np.ones_like(ids)
        for row in range(len(ids)):
            real = int(rng.integers(length // 2, length + 1))
            ids[row, real:], segments[row, real:] = 0, 0
        calibration = {"token_ids": ids, "segment_ids": segments}
        out[length] = lean_tflite(to_int8_tflite(model, length, calibration, 8))
    return out


@pytest.mark.parametrize("length", sorted(MEASURED))
def test_plain_tflm_estimate_is_within_15_percent_of_the_measured_classify(graphs, length):
    estimate = latency.estimate_tflite(graphs[length])
    low, high = MEASURED[length]
    assert low * (1 - TOLERANCE) <= estimate.instructions <= high * (1 + TOLERANCE), (
        f"L={length}: estimate {estimate.instructions / 1e6:.2f} M, measured "
        f"{low / 1e6:.2f}-{high / 1e6:.2f} M"
    )
    ops = estimate.by_op
    assert list(ops)[0] in ("FULLY_CONNECTED", "BATCH_MATMUL")  # the notes' profile leaders
    assert estimate.ms(1.5) == pytest.approx(estimate.instructions * 1.5 / 64e6 * 1e3)


def test_own_kernels_cost_less_where_they_replace_slow_reference_kernels(graphs):
    plain = latency.estimate_tflite(graphs[32])
    own = latency.estimate_tflite(graphs[32], latency.own_kernel_ops())
    assert own.by_op["LOGISTIC"] < plain.by_op["LOGISTIC"] / 10
    assert own.by_op["MEAN"] < plain.by_op["MEAN"] / 10
    assert own.by_op["SOFTMAX"] < plain.by_op["SOFTMAX"] / 2
    # the own FULLY_CONNECTED / BATCH_MATMUL (zero-point terms hoisted, SMLAD on 4 rows)
    assert own.by_op["FULLY_CONNECTED"] < plain.by_op["FULLY_CONNECTED"] * 0.85
    assert own.by_op["BATCH_MATMUL"] < plain.by_op["BATCH_MATMUL"]
    # ops without an own kernel keep their TFLM cost
    assert own.by_op["TRANSPOSE"] == plain.by_op["TRANSPOSE"]
    kinds = {c.op: c.kernel for c in own.ops}
    assert kinds["LOGISTIC"] == kinds["FULLY_CONNECTED"] == kinds["BATCH_MATMUL"] == "own"
    assert kinds["TRANSPOSE"] == "tflm"


def test_own_kernel_costs_cover_every_registered_own_kernel():
    from export.cpp_sources import OWN_KERNELS

    assert latency.own_kernel_ops() == frozenset(OWN_KERNELS)


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((1, 16, 128), (1, 16, 128), (1, 2048, "vector")),
        ((1, 16, 128), (128,), (16, 128, "vector")),
        ((1, 16, 128), (1, 16, 1), (16, 128, "scalar")),
        ((1, 16, 1), (), (1, 16, "scalar")),
        ((1, 16, 16), (1, 1, 16), (16, 16, "vector")),
        ((1, 1, 1), (), (1, 1, "fill")),
        ((4, 1, 3), (1, 5, 1), (20, 3, "scalar")),
    ],
)
def test_broadcast_walk(a, b, expected):
    assert latency.broadcast_walk(a, b) == expected


@pytest.mark.parametrize("length", [1, 8, 16, 31, 32, 40])
def test_causal_conv_walk_counts_the_taps_that_reach_a_real_row(length):
    """VALID conv over k - 1 padding rows + `length` rows: tap j of output t reads row t + j,
    a real row when t + j >= k - 1."""
    k, channels = 32, 4
    walked = sum(1 for t in range(length) for j in range(k) if t + j >= k - 1)
    work = latency.causal_conv_walk(
        (1, 1, length + k - 1, channels), (1, 1, k, channels), (1, 1, length, channels)
    )
    assert work == {
        "scanned": (k - 1) * channels,
        "outputs": length * channels,
        "macs": walked * channels,
    }


def test_missing_cost_file_is_one_clear_line(tmp_path):
    with pytest.raises(FileNotFoundError, match="m4_kernels.py writes them"):
        latency.load_own_kernel_costs(tmp_path / "none.json")


def test_committed_own_kernel_costs_match_a_fresh_measurement():
    """The costs file the estimate reads predicts what the current cores execute under QEMU (a
    few shapes) as well as it fitted its own cases (+2%): a core changed without re-running
    bench/m4_kernels.py fails."""
    from bench import m4_kernels

    tools = m4_kernels.Tools(timeout=120)
    if tools.missing():
        pytest.skip(f"not installed: {', '.join(tools.missing())}")
    cases = [c for c in m4_kernels.cases([16, 32], 128, 32) if c["inputs"][0][1] in (1, 16, 32)]
    m4_kernels.measure(cases, tools)
    models = latency.load_own_kernel_costs()
    for case in cases:
        model = models[case["family"]]
        predicted = sum(model["coefficients"][f] * n for f, n in case["work"].items())
        tolerance = model["max_rel_residual"] + 0.02
        assert predicted == pytest.approx(case["instructions"], rel=tolerance), case["name"]
