"""A NumPy port of TFLM's integer arithmetic for the ops the library has its own kernels for
(tensorflow/lite/kernels/internal/{common,quantization_util}.*, reference/integer_ops/*,
reference/{softmax,reduce,sub}.h, micro/kernels/*_common.cc; gemmlowp's fixedpoint.h), double
rounding (TFLM's default). The oracle of tests/test_kernels_cpp.py; itself checked against the
`tflite_micro` runtime in tests/test_kernels.py. Values are int64 arrays; 32-bit wrap-around is
applied where the C++ wraps."""

from __future__ import annotations

import math

import numpy as np

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1


def _wrap32(x):
    x = np.asarray(x, np.int64)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def _trunc_div(x, d):
    return np.where(x >= 0, x // d, -((-x) // d))


def srdhm(a, b):
    """gemmlowp SaturatingRoundingDoublingHighMul on int32 values."""
    a = np.asarray(a, np.int64)
    b = np.asarray(b, np.int64)
    ab = a * b  # |ab| <= 2^62 fits int64
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    out = _trunc_div(ab + nudge, 1 << 31)
    return np.where((a == b) & (a == INT32_MIN), INT32_MAX, out)


def rdbpot(x, exponent):
    """gemmlowp RoundingDivideByPOT."""
    x = np.asarray(x, np.int64)
    mask = (1 << int(exponent)) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> int(exponent)) + (remainder > threshold)


def mbqm(x, multiplier, shift):
    """MultiplyByQuantizedMultiplier(int32 x, ...), double rounding; shift may be an array."""
    shift = np.asarray(shift, np.int64)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    shifted = _wrap32(np.asarray(x, np.int64) << left)
    high = srdhm(shifted, multiplier)
    if right.ndim == 0:
        return rdbpot(high, int(right))
    pairs = zip(high.reshape(-1), right.reshape(-1), strict=True)
    return np.array([rdbpot(h, int(r)) for h, r in pairs]).reshape(high.shape)


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLM QuantizeMultiplier (frexp, round half away from zero, 2^31 carried)."""
    if real == 0.0:
        return 0, 0
    fraction, shift = math.frexp(real)
    q = int(math.floor(abs(fraction) * (1 << 31) + 0.5)) * (1 if fraction >= 0 else -1)
    if q == 1 << 31:
        q //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return q, shift


def _f32(x) -> float:
    return float(np.float32(x))


# --- ADD / SUB / MUL -------------------------------------------------------------------------


def add_sub_params(s1, z1, s2, z2, so, zo, *, sub: bool) -> dict:
    """CalculateOpDataAdd (double arithmetic) / CalculateOpDataSub (float arithmetic)."""
    left_shift = 20
    if sub:
        twice = np.float32(2) * np.float32(max(np.float32(s1), np.float32(s2)))
        r1 = float(np.float32(s1) / twice)
        r2 = float(np.float32(s2) / twice)
        ro = float(twice / (np.float32(1 << left_shift) * np.float32(so)))
    else:
        twice = 2 * float(max(np.float32(s1), np.float32(s2)))
        r1 = _f32(s1) / twice
        r2 = _f32(s2) / twice
        ro = twice / ((1 << left_shift) * _f32(so))
    m1, sh1 = quantize_multiplier(r1)
    m2, sh2 = quantize_multiplier(r2)
    mo, sho = quantize_multiplier(ro)
    return dict(
        off1=-z1,
        off2=-z2,
        offo=zo,
        left_shift=left_shift,
        m1=m1,
        sh1=sh1,
        m2=m2,
        sh2=sh2,
        mo=mo,
        sho=sho,
        act_min=-128,
        act_max=127,
    )


def mul_params(s1, z1, s2, z2, so, zo) -> dict:
    mo, sho = quantize_multiplier(_f32(s1) * _f32(s2) / _f32(so))
    return dict(
        off1=-z1,
        off2=-z2,
        offo=zo,
        left_shift=0,
        m1=0,
        sh1=0,
        m2=0,
        sh2=0,
        mo=mo,
        sho=sho,
        act_min=-128,
        act_max=127,
    )


def binary(op: str, p: dict, a, b):
    """TFLM reference int8 ADD / SUB / MUL with NumPy broadcasting."""
    a, b = np.broadcast_arrays(np.asarray(a, np.int64), np.asarray(b, np.int64))
    va, vb = a + p["off1"], b + p["off2"]
    if op == "MUL":
        raw = mbqm(va * vb, p["mo"], p["sho"])
    else:
        sa = mbqm(va << p["left_shift"], p["m1"], p["sh1"])
        sb = mbqm(vb << p["left_shift"], p["m2"], p["sh2"])
        raw = mbqm(sa + sb if op == "ADD" else sa - sb, p["mo"], p["sho"])
    return np.clip(raw + p["offo"], p["act_min"], p["act_max"]).astype(np.int8)


# --- MEAN ------------------------------------------------------------------------------------


def mean_params(s_in, z_in, s_out, z_out) -> dict:
    m, sh = quantize_multiplier(_f32(s_in) / _f32(s_out))
    return dict(zi=z_in, zo=z_out, m=m, sh=sh)


def mean(p: dict, x, axes) -> np.ndarray:
    """QuantizedMeanOrSum (compute_sum false) over `axes`, keep_dims shape."""
    x = np.asarray(x, np.int64)
    count = int(np.prod([x.shape[a] for a in axes]))
    total = _wrap32(x.sum(axis=tuple(axes), keepdims=True))
    shift = min(count.bit_length() - 1, 32, 31 + p["sh"])
    multiplier = (p["m"] << shift) // count
    out = mbqm(_wrap32(total - p["zi"] * count), multiplier, p["sh"] - shift) + p["zo"]
    return np.clip(out, -128, 127).astype(np.int8)


# --- SOFTMAX ---------------------------------------------------------------------------------


def softmax_params(input_scale, beta: float = 1.0) -> dict:
    """PreprocessSoftmaxScaling + CalculateInputRadius (kScaledDiffIntegerBits 5)."""
    bits = 5
    real = min(beta * _f32(input_scale) * (1 << (31 - bits)), (1 << 31) - 1.0)
    multiplier, left_shift = quantize_multiplier(real)
    radius = ((1 << bits) - 1) * (1 << (31 - bits)) / (1 << left_shift)
    return dict(multiplier=multiplier, left_shift=left_shift, diff_min=-math.floor(radius))


def _sat_shift_left(x, exponent):
    threshold = (1 << (31 - exponent)) - 1
    x = np.asarray(x, np.int64)
    return np.where(x > threshold, INT32_MAX, np.where(x < -threshold, INT32_MIN, x << exponent))


def exp_on_negative_values_q5(a):
    """gemmlowp exp_on_negative_values, FixedPoint<int32, 5> in, Q0.31 out (raw values)."""
    a = np.asarray(a, np.int64)
    frac_bits = 26
    quarter = 1 << (frac_bits - 2)
    a_mod = (a & (quarter - 1)) - quarter
    x = _sat_shift_left(a_mod, 5) + (1 << 28)
    x2 = srdhm(x, x)
    x3 = srdhm(x2, x)
    x4 = srdhm(x2, x2)
    poly = rdbpot(srdhm(rdbpot(x4, 2) + x3, 715827883) + x2, 1)
    result = 1895147668 + srdhm(1895147668, x + poly)
    remainder = a_mod - a
    for k, multiplier in enumerate(
        [1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242]
    ):
        bit = 1 << (frac_bits + k - 2)
        result = np.where(remainder & bit, srdhm(result, multiplier), result)
    return np.where(a == 0, INT32_MAX, result)


def get_reciprocal(x: int, integer_digits: int) -> tuple[int, int]:
    """TFLM GetReciprocal via gemmlowp one_over_one_plus_x_for_x_in_0_1."""
    headroom = 32 - int(x).bit_length() if x > 0 else (0 if x < 0 else 32)
    bits_over_unit = integer_digits - headroom
    shifted = int(_wrap32(((int(x) & 0xFFFFFFFF) << headroom) - (1 << 31)))
    total = shifted + INT32_MAX
    nudged = total + (1 if total >= 0 else -1)  # gemmlowp RoundingHalfSum
    half = nudged // 2 if nudged >= 0 else -((-nudged) // 2)
    xr = int(_wrap32(1515870810 + srdhm(half, -1010580540)))
    for _ in range(3):
        one_minus = (1 << 29) - int(srdhm(half, xr))
        xr = int(_wrap32(xr + _sat_shift_left(srdhm(xr, one_minus), 2)))
    return int(_sat_shift_left(xr, 1)), bits_over_unit


def softmax_table(p: dict) -> np.ndarray:
    diffs = -np.arange(256, dtype=np.int64)
    rescaled = srdhm(_wrap32(diffs << p["left_shift"]), p["multiplier"])
    return np.where(diffs >= p["diff_min"], exp_on_negative_values_q5(rescaled), 0)


def softmax(p: dict, x) -> np.ndarray:
    """Reference integer Softmax, int8 in, int8 out (scale 1/256, zero point -128)."""
    x = np.asarray(x, np.int64)
    rows = x.reshape(-1, x.shape[-1])
    out = np.empty_like(rows)
    for r, row in enumerate(rows):
        diff = row - row.max()
        keep = diff >= p["diff_min"]
        rescaled = srdhm(_wrap32(diff << p["left_shift"]), p["multiplier"])
        exps = exp_on_negative_values_q5(rescaled)
        total = int(_wrap32(np.where(keep, rdbpot(exps, 12), 0).sum()))
        scale, bits_over_unit = get_reciprocal(total, 12)
        exponent = bits_over_unit + 31 - 8
        value = rdbpot(srdhm(scale, exps), exponent) - 128
        out[r] = np.where(keep, np.clip(value, -128, 127), -128)
    return out.reshape(x.shape).astype(np.int8)


# --- DEPTHWISE_CONV_2D -----------------------------------------------------------------------


def depthwise_params(input_scale, filter_scales, output_scale) -> tuple[list[int], list[int]]:
    """Per-channel multipliers (PopulateConvolutionQuantizationParams: input * filter / output
    in double)."""
    mults, shifts = [], []
    for fs in filter_scales:
        real = _f32(input_scale) * _f32(fs) / _f32(output_scale)
        m, s = quantize_multiplier(real)
        mults.append(m)
        shifts.append(s)
    return mults, shifts


def depthwise(x, filt, bias, mults, shifts, *, zi, zo, pad_w=0, depth_multiplier=1):
    """DepthwiseConvPerChannel for NHWC x with H = 1, stride 1, filter [1, 1, K, C_out]."""
    x = np.asarray(x, np.int64)
    filt = np.asarray(filt, np.int64)
    _, _, width, in_ch = x.shape
    taps, out_ch = filt.shape[2], filt.shape[3]
    out_w = width + pad_w - taps + 1
    channel = np.arange(out_ch) // depth_multiplier
    padded = np.concatenate([np.full((pad_w, in_ch), zi), x[0, 0]]) if pad_w else x[0, 0]
    valid = np.concatenate([np.zeros(pad_w, bool), np.ones(width, bool)])
    out = np.empty((out_w, out_ch), np.int64)
    for t in range(out_w):
        rows = padded[t : t + taps][:, channel] - zi
        rows = rows * valid[t : t + taps, None]
        acc = _wrap32((rows * filt[0, 0]).sum(axis=0) + (0 if bias is None else bias))
        out[t] = mbqm(acc, np.asarray(mults), np.asarray(shifts)) + zo
    return np.clip(out, -128, 127).astype(np.int8).reshape(1, 1, out_w, out_ch)


def fully_connected(x, w, bias, mults, shifts, *, zi, zw, zo):
    """reference_integer_ops FullyConnected (one multiplier; weights offset -zw) or
    FullyConnectedPerChannel (a multiplier per channel; pass zw=0: it ignores the filter zero
    point): x [B, D], w [C, D] -> int8 [B, C]."""
    x = np.asarray(x, np.int64)
    w = np.asarray(w, np.int64)
    acc = _wrap32((x[:, None, :] - zi) * (w[None, :, :] - zw)).sum(axis=-1)
    acc = _wrap32(acc + (0 if bias is None else np.asarray(bias, np.int64)))
    mults, shifts = np.asarray(mults, np.int64), np.asarray(shifts, np.int64)
    if mults.size == 1:
        out = mbqm(acc, int(mults.reshape(-1)[0]), int(shifts.reshape(-1)[0]))
    else:
        out = mbqm(acc, mults[None, :], np.broadcast_to(shifts[None, :], acc.shape))
    return np.clip(out + zo, -128, 127).astype(np.int8)


def batch_matmul(lhs, rhs, mult, shift, *, zl, zr, zo, adj_y=True):
    """reference_ops::BatchMatMul int8 (adj_x false): lhs (B, rows, depth), rhs (B, cols,
    depth) if adj_y else (B, depth, cols); B may be 1 on either side (broadcast)."""
    lhs = np.asarray(lhs, np.int64) - zl
    rhs = np.asarray(rhs, np.int64) - zr
    if not adj_y:
        rhs = np.swapaxes(rhs, -1, -2)
    acc = _wrap32((lhs[:, :, None, :] * rhs[:, None, :, :]).sum(axis=-1))
    return np.clip(mbqm(acc, mult, shift) + zo, -128, 127).astype(np.int8)
