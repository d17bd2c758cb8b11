// The EmbBERT library's int8 kernel cores (see embbert_int8_ops.h). No TFLM dependency.
#include "embbert_int8_ops.h"

#include "embbert_simd.h"

namespace embbert {
namespace {

inline int32_t Clamp(int32_t v, int32_t lo, int32_t hi) { return v < lo ? lo : (v > hi ? hi : v); }

// MultiplyByQuantizedMultiplier with the shift split once per call site (embbert_simd.h).
using Requant = simd::Rescale;

// ADD / SUB: one input's contribution, (v + offset) << left_shift scaled by its multiplier.
struct AddInput {
  int32_t offset;
  int left_shift;
  Requant scale;
  AddInput(int32_t o, int ls, int32_t m, int s) : offset(o), left_shift(ls), scale(m, s) {}
  inline int32_t operator()(int8_t v) const {
    return scale(static_cast<int32_t>(static_cast<uint32_t>(offset + v) << left_shift));
  }
};

// kTable (ADD / SUB): each input's scaled value read from a 256-entry table (table1/table2,
// indexed by value + 128) that holds AddInput of every int8 value.
template <BinaryOp kOp, bool kTable = false, bool kFull = false>  // kFull: range -128..127
struct Binary {
  const ArithmeticParams& p;
  AddInput in1, in2;
  Requant out;
  const int32_t* table1 = nullptr;
  const int32_t* table2 = nullptr;
  explicit Binary(const ArithmeticParams& params)
      : p(params),
        in1(params.input1_offset, params.left_shift, params.input1_multiplier,
            params.input1_shift),
        in2(params.input2_offset, params.left_shift, params.input2_multiplier,
            params.input2_shift),
        out(params.output_multiplier, params.output_shift) {}

  // The operand prepared once when it is constant along the inner loop.
  inline int32_t Prep1(int8_t a) const {
    if (kTable) return table1[a + 128];
    return kOp == BinaryOp::kMul ? p.input1_offset + a : in1(a);
  }
  inline int32_t Prep2(int8_t b) const {
    if (kTable) return table2[b + 128];
    return kOp == BinaryOp::kMul ? p.input2_offset + b : in2(b);
  }
  inline int8_t Combine(int32_t a, int32_t b) const {
    int32_t raw;
    if (kOp == BinaryOp::kMul) {
      raw = out(a * b);
    } else if (kOp == BinaryOp::kAdd) {
      raw = out(a + b);
    } else {
      raw = out(a - b);
    }
    if (kFull) return static_cast<int8_t>(simd::SatInt8(raw + p.output_offset));
    return static_cast<int8_t>(Clamp(raw + p.output_offset, p.activation_min, p.activation_max));
  }

  void Inner(int n, const int8_t* a, int sa, const int8_t* b, int sb, int8_t* o) const {
    if (sa == 1 && sb == 1) {
      for (int i = 0; i < n; ++i) o[i] = Combine(Prep1(a[i]), Prep2(b[i]));
    } else if (sa == 1) {
      const int32_t vb = Prep2(b[0]);
      for (int i = 0; i < n; ++i) o[i] = Combine(Prep1(a[i]), vb);
    } else if (sb == 1) {
      const int32_t va = Prep1(a[0]);
      for (int i = 0; i < n; ++i) o[i] = Combine(va, Prep2(b[i]));
    } else {
      const int8_t v = Combine(Prep1(a[0]), Prep2(b[0]));
      for (int i = 0; i < n; ++i) o[i] = v;
    }
  }

  void Run(const Broadcast4& s, const int8_t* in1_data, const int8_t* in2_data,
           int8_t* output) const {
    int8_t* o = output;
    for (int i0 = 0; i0 < s.dims[0]; ++i0) {
      for (int i1 = 0; i1 < s.dims[1]; ++i1) {
        for (int i2 = 0; i2 < s.dims[2]; ++i2) {
          const int8_t* a = in1_data + i0 * s.strides1[0] + i1 * s.strides1[1] + i2 * s.strides1[2];
          const int8_t* b = in2_data + i0 * s.strides2[0] + i1 * s.strides2[1] + i2 * s.strides2[2];
          Inner(s.dims[3], a, s.strides1[3], b, s.strides2[3], o);
          o += s.dims[3];
        }
      }
    }
  }
};

inline int CountLeadingZeros64(uint64_t v) {
  int n = 0;
  if (v == 0) return 64;
  while (!(v & (uint64_t{1} << 63))) {
    v <<= 1;
    ++n;
  }
  return n;
}

// TFLM's QuantizedMeanOrSum: the multiplier absorbs 1/count.
struct MeanScale {
  Requant requant;
  int32_t zero_sum;
  MeanScale(const MeanParams& p, int64_t count) : requant(0, 0), zero_sum(0) {
    int shift = 63 - CountLeadingZeros64(static_cast<uint64_t>(count));
    if (shift > 32) shift = 32;
    if (shift > 31 + p.shift) shift = 31 + p.shift;
    const int32_t multiplier =
        static_cast<int32_t>((static_cast<int64_t>(p.multiplier) << shift) / count);
    requant = Requant(multiplier, p.shift - shift);
    zero_sum = static_cast<int32_t>(p.input_zero_point * count);
  }
  inline int8_t operator()(const MeanParams& p, int32_t sum) const {
    const int32_t v = requant(static_cast<int32_t>(static_cast<uint32_t>(sum) -
                                                   static_cast<uint32_t>(zero_sum))) +
                      p.output_zero_point;
    return static_cast<int8_t>(Clamp(v, -128, 127));
  }
};

// gemmlowp fixed-point helpers on raw int32 values.
inline int32_t SatShiftLeft(int32_t x, int exponent) {  // SaturatingRoundingMultiplyByPOT<+e>
  const int32_t threshold = (1 << (31 - exponent)) - 1;
  if (x > threshold) return INT32_MAX;
  if (x < -threshold) return INT32_MIN;
  return static_cast<int32_t>(static_cast<uint32_t>(x) << exponent);
}

inline int32_t RoundingHalfSum(int32_t a, int32_t b) {
  const int64_t sum = static_cast<int64_t>(a) + b;
  const int64_t sign = sum >= 0 ? 1 : -1;
  return static_cast<int32_t>((sum + sign) / 2);
}

// exp(a) for a in [-1/4, 0), Q0.31 in and out.
int32_t ExpOnIntervalNegQuarter(int32_t a) {
  const int32_t constant_term = 1895147668;     // exp(-1/8)
  const int32_t constant_1_over_3 = 715827883;  // 1/3
  const int32_t x = a + (1 << 28);
  const int32_t x2 = SaturatingRoundingDoublingHighMul(x, x);
  const int32_t x3 = SaturatingRoundingDoublingHighMul(x2, x);
  const int32_t x4 = SaturatingRoundingDoublingHighMul(x2, x2);
  const int32_t x4_over_4 = RoundingDivideByPOT(x4, 2);
  const int32_t poly = RoundingDivideByPOT(
      SaturatingRoundingDoublingHighMul(x4_over_4 + x3, constant_1_over_3) + x2, 1);
  return constant_term + SaturatingRoundingDoublingHighMul(constant_term, x + poly);
}

}  // namespace

bool MakeBroadcast4(const int* dims1, int rank1, const int* dims2, int rank2,
                    Broadcast4* out) {
  if (rank1 > 4 || rank2 > 4 || rank1 < 0 || rank2 < 0) return false;
  int32_t d1[4], d2[4], d[4];
  for (int i = 0; i < 4; ++i) {
    d1[i] = i < 4 - rank1 ? 1 : dims1[i - (4 - rank1)];
    d2[i] = i < 4 - rank2 ? 1 : dims2[i - (4 - rank2)];
    if (d1[i] == d2[i] || d2[i] == 1) {
      d[i] = d1[i];
    } else if (d1[i] == 1) {
      d[i] = d2[i];
    } else {
      return false;
    }
  }
  int32_t s1[4], s2[4];
  int32_t acc1 = 1, acc2 = 1;
  for (int i = 3; i >= 0; --i) {
    s1[i] = d1[i] == 1 ? 0 : acc1;
    s2[i] = d2[i] == 1 ? 0 : acc2;
    acc1 *= d1[i];
    acc2 *= d2[i];
  }
  // Keep the dimensions above 1, merging each into the one inside it when both inputs walk
  // them as one (stride_outer == stride_inner * dim_inner, which covers stride 0 twice).
  int32_t md[4], m1[4], m2[4];
  int n = 0;
  for (int i = 0; i < 4; ++i) {
    if (d[i] == 1) continue;
    if (n > 0 && m1[n - 1] == s1[i] * d[i] && m2[n - 1] == s2[i] * d[i]) {
      md[n - 1] *= d[i];
      m1[n - 1] = s1[i];
      m2[n - 1] = s2[i];
      continue;
    }
    md[n] = d[i];
    m1[n] = s1[i];
    m2[n] = s2[i];
    ++n;
  }
  for (int i = 0; i < 4; ++i) {
    const int k = i - (4 - n);
    out->dims[i] = k >= 0 ? md[k] : 1;
    out->strides1[i] = k >= 0 ? m1[k] : 0;
    out->strides2[i] = k >= 0 ? m2[k] : 0;
  }
  return true;
}

template <BinaryOp kOp, bool kFull>
void RunWithTables(const ArithmeticParams& params, const Broadcast4& shape, const int8_t* input1,
                   const int8_t* input2, int32_t* tables, int8_t* output) {
  Binary<kOp, true, kFull> binary(params);
  for (int v = -128; v < 128; ++v) {
    tables[v + 128] = binary.in1(static_cast<int8_t>(v));
    tables[v + 384] = binary.in2(static_cast<int8_t>(v));
  }
  binary.table1 = tables;
  binary.table2 = tables + 256;
  binary.Run(shape, input1, input2, output);
}

void BinaryInt8(BinaryOp op, const ArithmeticParams& params, const Broadcast4& shape,
                const int8_t* input1, const int8_t* input2, int8_t* output, int32_t* tables) {
  const bool full = params.activation_min == -128 && params.activation_max == 127;
  if (tables != nullptr && op != BinaryOp::kMul) {
    using Op = BinaryOp;
    auto run = op == Op::kAdd ? (full ? RunWithTables<Op::kAdd, true> : RunWithTables<Op::kAdd, false>)
                              : (full ? RunWithTables<Op::kSub, true> : RunWithTables<Op::kSub, false>);
    run(params, shape, input1, input2, tables, output);
    return;
  }
  if (op == BinaryOp::kMul && full) {
    Binary<BinaryOp::kMul, false, true>(params).Run(shape, input1, input2, output);
    return;
  }
  switch (op) {
    case BinaryOp::kAdd:
      Binary<BinaryOp::kAdd>(params).Run(shape, input1, input2, output);
      break;
    case BinaryOp::kSub:
      Binary<BinaryOp::kSub>(params).Run(shape, input1, input2, output);
      break;
    case BinaryOp::kMul:
      Binary<BinaryOp::kMul>(params).Run(shape, input1, input2, output);
      break;
  }
}

void MeanLastAxisInt8(const MeanParams& params, const int8_t* input, int rows, int depth,
                      int8_t* output) {
  if (depth <= 0) {
    for (int r = 0; r < rows; ++r) output[r] = 0;
    return;
  }
  const MeanScale scale(params, depth);
  for (int r = 0; r < rows; ++r) {
    const int8_t* row = input + static_cast<size_t>(r) * depth;
    int32_t sum = 0;
    int c = 0;
    for (; c + 4 <= depth; c += 4) sum += row[c] + row[c + 1] + row[c + 2] + row[c + 3];
    for (; c < depth; ++c) sum += row[c];
    output[r] = scale(params, sum);
  }
}

void MeanInt8(const MeanParams& params, const int8_t* input, const int32_t* dims, int rank,
              unsigned axis_mask, int32_t* temp_sum, int8_t* output) {
  int64_t outputs = 1, count = 1, total = 1;
  for (int d = 0; d < rank; ++d) {
    total *= dims[d];
    if (axis_mask & (1u << d)) {
      count *= dims[d];
    } else {
      outputs *= dims[d];
    }
  }
  for (int64_t i = 0; i < outputs; ++i) {
    temp_sum[i] = 0;
    output[i] = 0;
  }
  if (total == 0 || count == 0) return;
  int32_t index[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  for (int64_t i = 0; i < total; ++i) {
    int64_t out_index = 0;
    for (int d = 0; d < rank; ++d) {
      if (!(axis_mask & (1u << d))) out_index = out_index * dims[d] + index[d];
    }
    temp_sum[out_index] += input[i];
    for (int d = rank - 1; d >= 0; --d) {
      if (++index[d] < dims[d]) break;
      index[d] = 0;
    }
  }
  const MeanScale scale(params, count);
  for (int64_t i = 0; i < outputs; ++i) output[i] = scale(params, temp_sum[i]);
}

int32_t ExpOnNegativeValuesQ5(int32_t a) {
  constexpr int kIntegerBits = 5;
  constexpr int kFractionalBits = 31 - kIntegerBits;
  const int32_t one_quarter = 1 << (kFractionalBits - 2);
  const int32_t mask = one_quarter - 1;
  const int32_t a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter;
  int32_t result = ExpOnIntervalNegQuarter(SatShiftLeft(a_mod_quarter_minus_one_quarter, 5));
  const int32_t remainder = a_mod_quarter_minus_one_quarter - a;
  static const int32_t kMultipliers[7] = {1672461947, 1302514674, 790015084, 290630308,
                                          39332535,   720401,     242};
  for (int k = 0; k < 7; ++k) {  // exponents -2 .. +4
    const int shift_amount = kFractionalBits + (k - 2);
    if (remainder & (1 << shift_amount)) {
      result = SaturatingRoundingDoublingHighMul(result, kMultipliers[k]);
    }
  }
  return a == 0 ? INT32_MAX : result;
}

int32_t GetReciprocal(int32_t x, int x_integer_digits, int* num_bits_over_unit) {
  int headroom_plus_one = 0;
  for (uint32_t v = static_cast<uint32_t>(x); v && !(v & 0x80000000u); v <<= 1) {
    ++headroom_plus_one;
  }
  if (x == 0) headroom_plus_one = 32;
  *num_bits_over_unit = x_integer_digits - headroom_plus_one;
  const int32_t shifted_sum_minus_one = static_cast<int32_t>(
      (static_cast<uint32_t>(x) << headroom_plus_one) - (static_cast<uint32_t>(1) << 31));
  // gemmlowp's one_over_one_plus_x_for_x_in_0_1 (Newton-Raphson in Q2.29).
  const int32_t half_denominator = RoundingHalfSum(shifted_sum_minus_one, INT32_MAX);
  const int32_t constant_48_over_17 = 1515870810;
  const int32_t constant_neg_32_over_17 = -1010580540;
  int32_t xr = constant_48_over_17 +
               SaturatingRoundingDoublingHighMul(half_denominator, constant_neg_32_over_17);
  for (int i = 0; i < 3; ++i) {
    const int32_t half_denominator_times_x = SaturatingRoundingDoublingHighMul(half_denominator, xr);
    const int32_t one_minus = (1 << 29) - half_denominator_times_x;
    xr = xr + SatShiftLeft(SaturatingRoundingDoublingHighMul(xr, one_minus), 2);
  }
  return SatShiftLeft(xr, 1);
}

void SoftmaxInt8Table(int32_t input_multiplier, int input_left_shift, int diff_min,
                      int32_t table[kSoftmaxTableSize]) {
  for (int d = 0; d < kSoftmaxTableSize; ++d) {
    const int32_t diff = -d;
    if (diff < diff_min) {
      table[d] = 0;  // the reference skips it: adds nothing, outputs -128 (as exp 0 does)
      continue;
    }
    // MultiplyByQuantizedMultiplierGreaterThanOne
    const int32_t rescaled = SaturatingRoundingDoublingHighMul(
        static_cast<int32_t>(static_cast<uint32_t>(diff) << input_left_shift), input_multiplier);
    table[d] = ExpOnNegativeValuesQ5(rescaled);
  }
}

void SoftmaxInt8(const int32_t table[kSoftmaxTableSize], const int8_t* input, int rows,
                 int depth, int8_t* output) {
  constexpr int kAccumulationIntegerBits = 12;
  for (int r = 0; r < rows; ++r) {
    const int8_t* in = input + static_cast<size_t>(r) * depth;
    int8_t* out = output + static_cast<size_t>(r) * depth;
    int32_t max_in_row = -128;
    for (int c = 0; c < depth; ++c) max_in_row = in[c] > max_in_row ? in[c] : max_in_row;
    const int32_t* exp_of = table + max_in_row;  // exp_of[-v] = table[max - v]
    int32_t sum_of_exps = 0;
    for (int c = 0; c < depth; ++c) {
      sum_of_exps += RoundingDivideByPOT(exp_of[-in[c]], kAccumulationIntegerBits);
    }
    int num_bits_over_unit;
    const int32_t shifted_scale =
        GetReciprocal(sum_of_exps, kAccumulationIntegerBits, &num_bits_over_unit);
    const int exponent = num_bits_over_unit + 31 - 8;
    for (int c = 0; c < depth; ++c) {
      const int32_t unsat =
          RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(shifted_scale, exp_of[-in[c]]),
                              exponent);
      out[c] = static_cast<int8_t>(Clamp(unsat - 128, -128, 127));
    }
  }
}

namespace {

constexpr int kBlock = 8;

// One output position of the 1-D case: `taps` filter rows (out_ch values each) against as many
// input rows (in_ch values each), output channels in blocks of kBlock.
template <bool kMultiplierOne>
void DepthwiseRow(const DepthwiseParams& p, const int32_t* mult, const int32_t* shift,
                  int in_ch, int out_ch, const int8_t* rows, int taps, const int8_t* filter,
                  const int32_t* bias, int8_t* out) {
  const int32_t off = p.input_offset;
  const int m = p.depth_multiplier;
  if (kMultiplierOne && DepthwiseRowSimd(p, mult, shift, out_ch, rows, taps, filter, bias, out)) {
    return;
  }
  int oc0 = 0;
  for (; oc0 < out_ch; oc0 += kBlock) {
    const int n = out_ch - oc0 < kBlock ? out_ch - oc0 : kBlock;
    int32_t acc[kBlock];
    for (int j = 0; j < kBlock; ++j) acc[j] = (bias && j < n) ? bias[oc0 + j] : 0;
    if (n == kBlock) {
      for (int k = 0; k < taps; ++k) {
        const int8_t* f = filter + k * out_ch + oc0;
        const int8_t* x = rows + k * in_ch;
        for (int j = 0; j < kBlock; ++j) {
          const int32_t v = kMultiplierOne ? x[oc0 + j] : x[(oc0 + j) / m];
          acc[j] += f[j] * (v + off);
        }
      }
    } else {
      for (int k = 0; k < taps; ++k) {
        const int8_t* f = filter + k * out_ch + oc0;
        const int8_t* x = rows + k * in_ch;
        for (int j = 0; j < n; ++j) {
          const int32_t v = kMultiplierOne ? x[oc0 + j] : x[(oc0 + j) / m];
          acc[j] += f[j] * (v + off);
        }
      }
    }
    for (int j = 0; j < n; ++j) {
      const int oc = oc0 + j;
      const int32_t v = MultiplyByQuantizedMultiplier(acc[j], mult[oc], shift[oc]) +
                        p.output_offset;
      out[oc] = static_cast<int8_t>(Clamp(v, p.activation_min, p.activation_max));
    }
  }
}

}  // namespace

void DepthwiseConvInt8(const DepthwiseParams& p, const int32_t* mult, const int32_t* shift,
                       int batches, int in_h, int in_w, int in_ch, const int8_t* input,
                       int filter_h, int filter_w, const int8_t* filter, const int32_t* bias,
                       int out_h, int out_w, int8_t* output) {
  // 1-D (a Conv1D lowered with H = 1, or W = 1), stride 1, no dilation: a length axis.
  const bool along_w = in_h == 1 && filter_h == 1 && out_h == 1 && p.pad_height == 0 &&
                       p.stride_width == 1 && p.dilation_width == 1;
  const bool along_h = in_w == 1 && filter_w == 1 && out_w == 1 && p.pad_width == 0 &&
                       p.stride_height == 1 && p.dilation_height == 1;
  if (!along_w && !along_h) {
    DepthwiseConvGenericInt8(p, mult, shift, batches, in_h, in_w, in_ch, input, filter_h, filter_w,
                     filter, bias, out_h, out_w, output);
    return;
  }
  if (!along_w) {  // the same loops with the roles of H and W swapped
    in_w = in_h;
    filter_w = filter_h;
    out_w = out_h;
  }
  const int pad = along_w ? p.pad_width : p.pad_height;
  const int out_ch = in_ch * p.depth_multiplier;
  const int8_t zero_point = static_cast<int8_t>(-p.input_offset);
  for (int b = 0; b < batches; ++b) {
    const int8_t* in = input + static_cast<size_t>(b) * in_w * in_ch;
    int8_t* out = output + static_cast<size_t>(b) * out_w * out_ch;
    // Leading positions made only of the zero point contribute nothing: skip their taps.
    int lead = 0;
    for (const int8_t* v = in; lead < in_w; ++lead) {
      int c = 0;
      while (c < in_ch && v[c] == zero_point) ++c;
      if (c < in_ch) break;
      v += in_ch;
    }
    for (int ox = 0; ox < out_w; ++ox) {
      const int x0 = ox - pad;  // input position of tap 0
      int k_lo = lead - x0;
      if (k_lo < 0) k_lo = 0;
      int k_hi = in_w - x0;
      if (k_hi > filter_w) k_hi = filter_w;
      if (k_hi < k_lo) k_hi = k_lo;
      // Tap k reads input position x0 + k; only taps k_lo .. k_hi - 1 are walked.
      const int8_t* rows = in + static_cast<size_t>(x0 + k_lo) * in_ch;
      const int8_t* taps = filter + static_cast<size_t>(k_lo) * out_ch;
      int8_t* o = out + static_cast<size_t>(ox) * out_ch;
      if (p.depth_multiplier == 1) {
        DepthwiseRow<true>(p, mult, shift, in_ch, out_ch, rows, k_hi - k_lo, taps, bias, o);
      } else {
        DepthwiseRow<false>(p, mult, shift, in_ch, out_ch, rows, k_hi - k_lo, taps, bias, o);
      }
    }
  }
}

}  // namespace embbert
