"""The C++ cores of the library's own int8 kernels (arduino/src/embbert_int8_ops.*), compiled on
the host with g++, against the NumPy port of TFLM's integer arithmetic (tests/tflm_int8_port.py,
itself checked against the `tflite_micro` runtime in tests/test_kernels.py): every int8 input
where one element's output depends on one value (SOFTMAX's exp table, all 256 differences), all
256 x 256 operand pairs for ADD/SUB/MUL, random tensors otherwise, on the shapes the EmbBERT
graphs use and on odd ones (broadcast both ways, tails of the unrolled loops)."""

import shutil
import subprocess

import numpy as np
import pytest

from tests import tflm_int8_port as port
from tflm_embbert.common.paths import REPO_ROOT

GXX = shutil.which("g++")
SRC = REPO_ROOT / "arduino" / "src"
# (scale, zero point) triples: typical, asymmetric and extreme ratios
QUANTS = [
    ((0.05, -3), (0.02, 10), (0.04, 0)),
    ((0.0123, -128), (0.3, 127), (0.5, -20)),
    ((1.7, 5), (0.001, -60), (0.00321, 33)),
]


@pytest.fixture(scope="module")
def driver(tmp_path_factory):
    if GXX is None:
        pytest.skip("g++ not installed")
    binary = tmp_path_factory.mktemp("kernels") / "driver"
    done = subprocess.run(
        [
            GXX,
            "-std=c++17",
            "-O2",
            "-Wall",
            "-Wextra",
            "-Werror",
            "-I",
            str(SRC),
            str(SRC / "embbert_int8_ops.cpp"),
            str(SRC / "embbert_int8_matmul.cpp"),
            str(SRC / "embbert_int8_conv.cpp"),
            str(REPO_ROOT / "tests" / "kernels_driver.cpp"),
            "-o",
            str(binary),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]

    def run(requests: list[list]) -> list[np.ndarray]:
        text = "\n".join(
            " ".join(str(int(v)) if not isinstance(v, str) else v for v in r) for r in requests
        )
        ran = subprocess.run([str(binary)], input=text + "\n", capture_output=True, text=True)
        assert ran.returncode == 0, ran.stderr
        outputs = []
        for line in ran.stdout.splitlines():
            values = np.asarray(line.split(), np.int64)
            outputs.append(values[1:] if values[0] >= 0 else None)
        return outputs

    return run


def _binary_request(op, p, a, b):
    code = {"ADD": 0, "SUB": 1, "MUL": 2}[op]
    fields = [
        p[k]
        for k in (
            "off1",
            "off2",
            "offo",
            "left_shift",
            "m1",
            "sh1",
            "m2",
            "sh2",
            "mo",
            "sho",
            "act_min",
            "act_max",
        )
    ]
    return (
        ["binary", code, *fields, a.ndim, *a.shape, b.ndim, *b.shape]
        + a.reshape(-1).tolist()
        + b.reshape(-1).tolist()
    )


def _params(op, quant):
    (s1, z1), (s2, z2), (so, zo) = quant
    if op == "MUL":
        return port.mul_params(s1, z1, s2, z2, so, zo)
    return port.add_sub_params(s1, z1, s2, z2, so, zo, sub=op == "SUB")


@pytest.mark.parametrize("tables", [False, True])
@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
def test_binary_all_operand_pairs(driver, op, tables):
    """tables: ADD / SUB read each input's rescaled value from 256-entry tables (MUL: none)."""
    a = np.repeat(np.arange(-128, 128), 256).astype(np.int8)
    b = np.tile(np.arange(-128, 128), 256).astype(np.int8)
    requests, expected = [], []
    for quant in QUANTS:
        p = _params(op, quant)
        request = _binary_request(op, p, a, b)
        requests.append(["binary_tables", *request[1:]] if tables else request)
        expected.append(port.binary(op, p, a, b))
    for got, want in zip(driver(requests), expected, strict=True):
        np.testing.assert_array_equal(got, want)


# the graphs' shapes, then broadcasts of the other operand, scalars, odd sizes
SHAPES = [
    ((1, 32, 128), (1, 32, 128)),
    ((1, 32, 128), (128,)),
    ((1, 32, 128), (1, 32, 1)),
    ((1, 32, 32), (1, 1, 32)),
    ((1, 32, 1), ()),
    ((1, 1, 32), (1, 32, 1)),
    ((128,), (1, 32, 128)),
    ((1, 32, 1), (1, 32, 128)),
    ((2, 3, 5, 7), (2, 1, 5, 1)),
    ((3, 1, 7), (1, 5, 1)),
    ((), ()),
    ((9,), (1,)),
]


@pytest.mark.parametrize("tables", [False, True])
@pytest.mark.parametrize("op", ["ADD", "SUB", "MUL"])
def test_binary_broadcast_shapes(driver, op, tables):
    rng = np.random.default_rng(0)
    requests, expected = [], []
    for i, (shape1, shape2) in enumerate(SHAPES):
        p = _params(op, QUANTS[i % len(QUANTS)])
        a = rng.integers(-128, 128, shape1).astype(np.int8)
        b = rng.integers(-128, 128, shape2).astype(np.int8)
        request = _binary_request(op, p, a, b)
        requests.append(["binary_tables", *request[1:]] if tables else request)
        expected.append(port.binary(op, p, a, b).reshape(-1))
    for got, want in zip(driver(requests), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_binary_rejects_shapes_that_do_not_broadcast(driver):
    p = _params("ADD", QUANTS[0])
    a = np.zeros((2, 3), np.int8)
    b = np.zeros((4, 3), np.int8)
    assert driver([_binary_request("ADD", p, a, b)]) == [None]


MEAN_QUANTS = [((0.05, -3), (0.02, 10)), ((0.4, -128), (0.001, -100)), ((0.001, 100), (3.0, 0))]


def test_mean_last_axis_and_other_axes(driver):
    rng = np.random.default_rng(1)
    requests, expected = [], []
    for (si, zi), (so, zo) in MEAN_QUANTS:
        p = port.mean_params(si, zi, so, zo)
        fields = [p["zi"], p["zo"], p["m"], p["sh"]]
        for rows, depth in [(32, 128), (7, 13), (1, 1), (3, 300)]:
            x = rng.integers(-128, 128, (rows, depth)).astype(np.int8)
            requests.append(["mean", *fields, rows, depth, *x.reshape(-1).tolist()])
            expected.append(port.mean(p, x, [1]).reshape(-1))
        for dims, axes in [((2, 3, 4, 5), (1, 3)), ((4, 6, 8), (0,)), ((1, 32, 128), (1,))]:
            x = rng.integers(-128, 128, dims).astype(np.int8)
            mask = sum(1 << a for a in axes)
            requests.append(["mean_axes", *fields, len(dims), *dims, mask, *x.reshape(-1).tolist()])
            expected.append(port.mean(p, x, axes).reshape(-1))
    for got, want in zip(driver(requests), expected, strict=True):
        np.testing.assert_array_equal(got, want)


SOFTMAX_SCALES = [0.0039, 0.02, 0.0625, 0.1, 0.25, 0.9]


def test_softmax_exp_table_all_differences(driver):
    requests, expected = [], []
    for scale in SOFTMAX_SCALES:
        p = port.softmax_params(scale)
        requests.append(["softmax_table", p["multiplier"], p["left_shift"], p["diff_min"]])
        expected.append(port.softmax_table(p))
    results = driver(requests)
    for got, want in zip(results, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    assert len(set(results[2].tolist())) > 100  # a real curve


def test_reciprocal_matches_port(driver):
    rng = np.random.default_rng(2)
    values = [1, 2, 4095, 4096, 4097, (1 << 19), (1 << 31) - 1] + rng.integers(
        1, 1 << 31, 200
    ).tolist()
    got = driver([["reciprocal", len(values), *values]])[0].reshape(-1, 2)
    for (scale, bits), value in zip(got, values, strict=True):
        assert (scale, bits) == port.get_reciprocal(value, 12), value


def test_softmax_rows(driver):
    rng = np.random.default_rng(3)
    requests, expected = [], []
    for scale in SOFTMAX_SCALES:
        p = port.softmax_params(scale)
        for rows, depth in [(32, 32), (1, 256), (5, 3), (4, 255)]:
            x = rng.integers(-128, 128, (rows, depth)).astype(np.int8)
            x[0, : min(depth, 3)] = [-128, 127, 127][: min(depth, 3)]  # ties and both ends
            requests.append(
                [
                    "softmax",
                    p["multiplier"],
                    p["left_shift"],
                    p["diff_min"],
                    rows,
                    depth,
                    *x.reshape(-1).tolist(),
                ]
            )
            expected.append(port.softmax(p, x).reshape(-1))
    for got, want in zip(driver(requests), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def _depthwise_case(rng, width, taps, channels, pad, lead, zi, multiplier=1, bias=True):
    out_ch = channels * multiplier
    x = rng.integers(-128, 128, (1, 1, width, channels)).astype(np.int8)
    x[0, 0, :lead] = zi  # the causal conv's PAD rows: the zero point
    filt = rng.integers(-127, 128, (1, 1, taps, out_ch)).astype(np.int8)
    b = rng.integers(-20000, 20000, out_ch) if bias else None
    mults, shifts = port.depthwise_params(0.05, rng.uniform(0.001, 0.02, out_ch), 0.07)
    zo = int(rng.integers(-20, 20))
    out_w = width + pad - taps + 1
    want = port.depthwise(
        x, filt, b, mults, shifts, zi=zi, zo=zo, pad_w=pad, depth_multiplier=multiplier
    )
    request = [
        "depthwise",
        -zi,
        zo,
        -128,
        127,
        1,
        1,
        1,
        1,
        0,
        pad,
        multiplier,
        1,
        1,
        width,
        channels,
        1,
        taps,
        1,
        out_w,
        int(bias),
        *filt.reshape(-1).tolist(),
        *([] if b is None else b.tolist()),
        *mults,
        *shifts,
        *x.reshape(-1).tolist(),
    ]
    return request, want.reshape(-1)


def test_depthwise_causal_conv_and_padding_skip(driver):
    rng = np.random.default_rng(4)
    cases = [
        dict(width=63, taps=32, channels=128, pad=0, lead=31, zi=-5),  # bucket 32, k 32
        dict(width=47, taps=32, channels=128, pad=0, lead=31, zi=7),  # bucket 16
        dict(width=32, taps=32, channels=128, pad=0, lead=0, zi=3),  # the lean last row
        dict(width=40, taps=32, channels=20, pad=0, lead=35, zi=-128),  # zp also in real rows
        dict(width=20, taps=5, channels=13, pad=4, lead=2, zi=1),  # implicit padding too
        dict(width=18, taps=4, channels=6, pad=0, lead=3, zi=0, multiplier=3, bias=False),
        dict(width=10, taps=4, channels=9, pad=0, lead=10, zi=-1),  # all padding
        dict(width=21, taps=5, channels=12, pad=4, lead=3, zi=-9),  # SMLAD pairs + odd tap
        dict(width=9, taps=7, channels=260, pad=0, lead=2, zi=5),  # above the SMLAD limit
    ]
    requests, expected = zip(*[_depthwise_case(rng, **case) for case in cases], strict=True)
    for got, want in zip(driver(list(requests)), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def _fc_case(rng, batches, depth, channels, per_channel, zw=0, bias=True, scratch=True):
    x = rng.integers(-128, 128, (batches, depth)).astype(np.int8)
    w = rng.integers(-127, 128, (channels, depth)).astype(np.int8)
    b = rng.integers(-30000, 30000, channels) if bias else None
    scales = rng.uniform(0.002, 0.02, channels if per_channel else 1)
    mults, shifts = port.depthwise_params(0.05, scales, 0.09)
    zi, zo = int(rng.integers(-128, 128)), int(rng.integers(-20, 20))
    want = port.fully_connected(x, w, b, mults, shifts, zi=zi, zw=0 if per_channel else zw, zo=zo)
    request = [
        "fc",
        int(per_channel),
        int(scratch),
        batches,
        depth,
        channels,
        -zi,
        -zw,
        zo,
        -128,
        127,
        int(bias),
        *w.reshape(-1).tolist(),
        *([] if b is None else b.tolist()),
        *mults,
        *shifts,
        *x.reshape(-1).tolist(),
    ]
    return request, want.reshape(-1)


def test_fully_connected_blocks_and_tails(driver):
    """The graphs' shapes (16 rows x 128 -> 128, the [CLS] row, the 7-label head, the 16-wide
    embedding projection) and odd ones: rows % 4 (the 2 x 2 and 1-row tails), depth % 4, odd
    channels, per-tensor with a filter zero point, no bias, no scratch."""
    rng = np.random.default_rng(5)
    cases = [
        dict(batches=16, depth=128, channels=128, per_channel=False),
        dict(batches=16, depth=16, channels=128, per_channel=False),
        dict(batches=1, depth=128, channels=7, per_channel=False),
        dict(batches=32, depth=128, channels=128, per_channel=True),
        dict(batches=7, depth=130, channels=5, per_channel=False, zw=3),
        dict(batches=6, depth=9, channels=3, per_channel=True, bias=False),
        dict(batches=5, depth=3, channels=1, per_channel=False, zw=-2),
        dict(batches=9, depth=64, channels=10, per_channel=False, scratch=False),
    ]
    requests, expected = zip(*[_fc_case(rng, **case) for case in cases], strict=True)
    for got, want in zip(driver(list(requests)), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def test_fully_connected_extreme_sums(driver):
    """Depth 1024 with constant inputs at both int8 extremes (large sums of one sign)."""
    rng = np.random.default_rng(6)
    requests, expected = [], []
    for fill in (-128, 127):
        request, want = _fc_case(rng, 4, 1024, 4, per_channel=False)
        x_at = len(request) - 4 * 1024
        request[x_at:] = [fill] * (4 * 1024)
        x = np.full((4, 1024), fill, np.int8)
        w = np.asarray(request[12 : 12 + 4 * 1024], np.int8).reshape(4, 1024)
        b = np.asarray(request[12 + 4 * 1024 : 12 + 4 * 1024 + 4])
        mults, shifts = request[-4 * 1024 - 2 : -4 * 1024 - 1], request[-4 * 1024 - 1 : -4 * 1024]
        want = port.fully_connected(x, w, b, mults, shifts, zi=-request[6], zw=0, zo=request[8])
        requests.append(request)
        expected.append(want.reshape(-1))
    for got, want in zip(driver(requests), expected, strict=True):
        np.testing.assert_array_equal(got, want)


def _bmm_case(rng, lhs_batches, rhs_batches, rows, depth, cols, adj_y=True):
    lhs = rng.integers(-128, 128, (lhs_batches, rows, depth)).astype(np.int8)
    rhs_shape = (rhs_batches, cols, depth) if adj_y else (rhs_batches, depth, cols)
    rhs = rng.integers(-128, 128, rhs_shape).astype(np.int8)
    (mult,), (shift,) = port.depthwise_params(0.05, [0.03], 0.4)
    zl, zr, zo = (int(v) for v in rng.integers(-128, 128, 3))
    want = port.batch_matmul(lhs, rhs, mult, shift, zl=zl, zr=zr, zo=zo, adj_y=adj_y)
    request = ["bmm", int(adj_y), lhs_batches, rhs_batches, rows, depth, cols, -zl, -zr, zo,
               mult, shift, *lhs.reshape(-1).tolist(), *rhs.reshape(-1).tolist()]  # fmt: skip
    return request, want.reshape(-1)


def test_batch_matmul_shapes_of_the_graphs_and_odd_ones(driver):
    """Attention scores (L x d by L x d^T), probabilities x values (L x L by d x L^T), the [CLS]
    row, the chunked L=256 attention; rhs not transposed (adj_y false), broadcast batches,
    leftover rows and depths."""
    rng = np.random.default_rng(8)
    cases = [
        dict(lhs_batches=1, rhs_batches=1, rows=16, depth=128, cols=16),
        dict(lhs_batches=1, rhs_batches=1, rows=16, depth=16, cols=128),
        dict(lhs_batches=1, rhs_batches=1, rows=1, depth=128, cols=32),
        dict(lhs_batches=1, rhs_batches=1, rows=64, depth=256, cols=128),
        dict(lhs_batches=2, rhs_batches=2, rows=7, depth=10, cols=5, adj_y=False),
        dict(lhs_batches=3, rhs_batches=1, rows=5, depth=9, cols=6),
        dict(lhs_batches=1, rhs_batches=2, rows=4, depth=12, cols=3, adj_y=False),
    ]
    requests, expected = zip(*[_bmm_case(rng, **case) for case in cases], strict=True)
    for got, want in zip(driver(list(requests)), expected, strict=True):
        np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("compiler", ["g++", "arm-none-eabi-g++"])
def test_tflm_wrappers_compile_against_tflm_stubs(compiler, tmp_path):
    """The TFLM-facing wrappers (embbert_kernels.cpp) and the cores against tests/cpp_stubs, which
    mirror the tflite-micro declarations they use (fields, types, signatures): CI has no TFLM
    sources. The Cortex-M compiler catches what the host's does not (int32_t is long there)."""
    cxx = shutil.which(compiler)
    if cxx is None:
        pytest.skip(f"{compiler} not installed")
    from export.tflm_tree import CONFIG_HEADER, config_header

    (tmp_path / CONFIG_HEADER).write_text(config_header(cmsis_nn=False))
    arch = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=hard"] if compiler.startswith("arm") else []
    sources = ("embbert_kernels.cpp", "embbert_matmul_kernels.cpp", "embbert_int8_ops.cpp",
               "embbert_int8_matmul.cpp", "embbert_int8_conv.cpp")  # fmt: skip
    for source in sources:
        done = subprocess.run(
            [
                cxx,
                "-std=gnu++17",
                "-fsyntax-only",
                "-Wall",
                "-Wextra",
                "-Werror",
                *arch,
                "-I",
                str(REPO_ROOT / "tests" / "cpp_stubs"),
                "-I",
                str(tmp_path),
                "-I",
                str(SRC),
                str(SRC / source),
            ],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{source}: {done.stderr[-3000:]}"
