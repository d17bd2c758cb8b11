// The computational cores of the EmbBERT library's own int8 kernels: plain C++17, no TFLM, so
// they compile and run on the host (tests/test_kernels_cpp.py) and for the Cortex-M4 (bench/).
// Each core gives TFLM's reference integer kernel's output bit for bit (double-rounding
// MultiplyByQuantizedMultiplier, TFLM's default): the arithmetic is TFLM's / gemmlowp's, the
// loops are rearranged (broadcast strides resolved once, per-row constants hoisted, SOFTMAX's exp
// read from a 256-entry table, depthwise taps that only see the input zero point skipped). The
// parameters (multipliers, shifts, offsets) are the ones TFLM's own Prepare computes; the
// TFLM-facing wrappers in embbert_kernels.cpp pass them in.
#ifndef EMBBERT_INT8_OPS_H_
#define EMBBERT_INT8_OPS_H_

#include <stddef.h>
#include <stdint.h>

namespace embbert {

// gemmlowp's SaturatingRoundingDoublingHighMul.
inline int32_t SaturatingRoundingDoublingHighMul(int32_t a, int32_t b) {
  if (a == b && a == INT32_MIN) return INT32_MAX;
  const int64_t ab = static_cast<int64_t>(a) * static_cast<int64_t>(b);
  const int64_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
  return static_cast<int32_t>((ab + nudge) / (int64_t{1} << 31));
}

// gemmlowp's RoundingDivideByPOT (round half away from zero), 0 <= exponent <= 31.
inline int32_t RoundingDivideByPOT(int32_t x, int exponent) {
  const int32_t mask = static_cast<int32_t>((int64_t{1} << exponent) - 1);
  const int32_t remainder = x & mask;
  const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
  return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

// TFLM's MultiplyByQuantizedMultiplier (int32 x, double rounding), multiplier >= 0.
inline int32_t MultiplyByQuantizedMultiplier(int32_t x, int32_t multiplier, int shift) {
  const int left = shift > 0 ? shift : 0;
  const int right = shift > 0 ? 0 : -shift;
  return RoundingDivideByPOT(
      SaturatingRoundingDoublingHighMul(static_cast<int32_t>(static_cast<uint32_t>(x) << left),
                                        multiplier),
      right);
}

// ADD / SUB / MUL parameters as TFLM's ArithmeticParams holds them (offsets = -zero point for
// the inputs, +zero point for the output; ADD/SUB: left_shift 20 and three multipliers; MUL:
// the output multiplier only).
struct ArithmeticParams {
  int32_t input1_offset;
  int32_t input2_offset;
  int32_t output_offset;
  int left_shift;
  int32_t input1_multiplier;
  int input1_shift;
  int32_t input2_multiplier;
  int input2_shift;
  int32_t output_multiplier;
  int output_shift;
  int32_t activation_min;
  int32_t activation_max;
};

// A NumPy-style broadcast of two tensors of rank <= 4, resolved once: the output is contiguous
// with dims[4]; input k reads element sum(i[d] * strides_k[d]) (stride 0 = broadcast). Adjacent
// dimensions that can be walked as one are merged, so the innermost loop is as long as possible.
struct Broadcast4 {
  int32_t dims[4];
  int32_t strides1[4];
  int32_t strides2[4];
};

// false: a rank above 4 or dimensions that do not broadcast (then out is unchanged).
bool MakeBroadcast4(const int* dims1, int rank1, const int* dims2, int rank2,
                    Broadcast4* out);

enum class BinaryOp { kAdd, kSub, kMul };

// out = op(in1, in2) elementwise with broadcasting, int8, as TFLM's reference AddFunc /
// SubElementwise / MulElementwise (and their BroadcastXxx4DSlow forms). `tables` (ADD / SUB; 512
// int32, kBinaryTableWords): each input's rescaled value (input offset, left shift, multiplier)
// is computed once for all 256 int8 values into it, then read per element; worth it from
// kBinaryTableMinElements output elements. MUL ignores it.
constexpr int kBinaryTableWords = 512;
constexpr int kBinaryTableMinElements = 1024;
void BinaryInt8(BinaryOp op, const ArithmeticParams& params, const Broadcast4& shape,
                const int8_t* input1, const int8_t* input2, int8_t* output,
                int32_t* tables = nullptr);

// MEAN over the last axis of `rows` rows of `depth` int8 values, as TFLM's reference
// QuantizedMeanOrSum (multiplier/shift: QuantizeMultiplier(input_scale / output_scale)).
struct MeanParams {
  int32_t input_zero_point;
  int32_t output_zero_point;
  int32_t multiplier;
  int shift;
};
void MeanLastAxisInt8(const MeanParams& params, const int8_t* input, int rows, int depth,
                      int8_t* output);

// MEAN over any set of axes (bit d of axis_mask: dimension d is reduced) of a tensor of rank
// <= 8; temp_sum holds one int32 per output element. Same arithmetic as MeanLastAxisInt8.
void MeanInt8(const MeanParams& params, const int8_t* input, const int32_t* dims, int rank,
              unsigned axis_mask, int32_t* temp_sum, int8_t* output);

// SOFTMAX int8 -> int8 (output scale 1/256, zero point -128) over the last axis, as TFLM's
// reference integer Softmax. exp() of the 256 possible input differences (x - row max) is
// computed once into a table by SoftmaxInt8Table (TFLM's input_multiplier, input_left_shift,
// diff_min from PreprocessSoftmaxScaling / CalculateInputRadius); 0 where diff < diff_min.
constexpr int kSoftmaxTableSize = 256;
void SoftmaxInt8Table(int32_t input_multiplier, int input_left_shift, int diff_min,
                      int32_t table[kSoftmaxTableSize]);
void SoftmaxInt8(const int32_t table[kSoftmaxTableSize], const int8_t* input, int rows,
                 int depth, int8_t* output);

// gemmlowp's exp_on_negative_values for a Q5.26 input (raw), result Q0.31 raw; and TFLM's
// GetReciprocal (x_integer_digits 12). Exposed for the tests.
int32_t ExpOnNegativeValuesQ5(int32_t raw);
int32_t GetReciprocal(int32_t x, int x_integer_digits, int* num_bits_over_unit);

// DEPTHWISE_CONV_2D int8 with per-channel requantization, NHWC, as TFLM's reference
// DepthwiseConvPerChannel. filter is [1, fh, fw, out_ch]; bias may be null. Input elements
// equal to the input zero point contribute 0 to every sum ((v + input_offset) == 0), so taps
// that only see leading rows made of the zero point (the causal conv's padding, written by PAD
// as the zero point) are skipped: same sums, fewer MACs on short buckets.
struct DepthwiseParams {
  int32_t input_offset;  // -input zero point
  int32_t output_offset;
  int32_t activation_min;
  int32_t activation_max;
  int stride_height, stride_width;
  int dilation_height, dilation_width;
  int pad_height, pad_width;
  int depth_multiplier;
};
void DepthwiseConvInt8(const DepthwiseParams& params, const int32_t* output_multiplier,
                       const int32_t* output_shift, int batches, int in_h, int in_w, int in_ch,
                       const int8_t* input, int filter_h, int filter_w, const int8_t* filter,
                       const int32_t* bias, int out_h, int out_w, int8_t* output);

// FULLY_CONNECTED int8 (embbert_int8_matmul.cpp), as TFLM's reference integer FullyConnected
// (per-tensor) / FullyConnectedPerChannel: input [batches, depth], filter [channels, depth],
// output [batches, channels]. The bias and input_offset * sum(weights) part of every sum is
// computed once per node by FullyConnectedChannelOffsets (channels int32, kept by the caller);
// FullyConnectedInt8 then only takes the dot products: four input rows at a time widened into
// `scratch` (FullyConnectedScratchWords(depth) words, 4-byte aligned; nullptr: no 4-row blocks)
// and SMLAD on the M4. multiplier/shift: one value (per_channel false) or one per channel.
struct FullyConnectedParams {
  int32_t input_offset;   // -input zero point
  int32_t filter_offset;  // -filter zero point (0 for TFLite's int8 weights)
  int32_t output_offset;
  int32_t activation_min;
  int32_t activation_max;
};
int FullyConnectedScratchWords(int depth);
void FullyConnectedChannelOffsets(const FullyConnectedParams& params, const int8_t* filter,
                                  const int32_t* bias, int channels, int depth,
                                  int32_t* channel_offset);
void FullyConnectedInt8(const FullyConnectedParams& params, const int32_t* channel_offset,
                        const int32_t* multiplier, const int32_t* shift, bool per_channel,
                        int batches, int depth, int channels, const int8_t* input,
                        const int8_t* filter, uint32_t* scratch, int8_t* output);

// BATCH_MATMUL int8 (adj_x false), as TFLM's reference BatchMatMul: per batch, lhs (rows, depth)
// times rhs^T, rhs (cols, depth) when rhs_transposed (adj_y), else (depth, cols) and transposed
// into the scratch first; out (rows, cols). params: input_offset = -lhs zero point,
// filter_offset = -rhs zero point, activation -128..127. The FULLY_CONNECTED core with the
// per-column offsets computed per call. *_broadcast: that input has one batch for all.
// scratch: BatchMatMulScratchWords(...) words, 4-byte aligned.
// The 1-D depthwise conv's inner sums (embbert_int8_matmul.cpp), depth multiplier 1, channels a
// multiple of 4: sums[c] += sum over taps k of f[k * stride + c] * (x[k * stride + c] +
// input_offset), two taps per SMLAD. Used by DepthwiseConvInt8.
void DepthwiseTapSums(const int8_t* x, const int8_t* f, int stride, int taps, int channels,
                      int32_t input_offset, int32_t* sums);
// TFLM's reference DepthwiseConvPerChannel loops (any stride, dilation, 2-D filter).
void DepthwiseConvGenericInt8(const DepthwiseParams& p, const int32_t* mult, const int32_t* shift,
                              int batches, int in_h, int in_w, int in_ch, const int8_t* input,
                              int filter_h, int filter_w, const int8_t* filter,
                              const int32_t* bias, int out_h, int out_w, int8_t* output);
// One output position of the 1-D depthwise conv with DepthwiseTapSums (rows and filter taps
// `channels` apart); false (nothing written) unless depth multiplier 1, channels % 4 == 0 and
// channels <= 256.
bool DepthwiseRowSimd(const DepthwiseParams& params, const int32_t* mult, const int32_t* shift,
                      int channels, const int8_t* rows, int taps, const int8_t* filter,
                      const int32_t* bias, int8_t* out);

int BatchMatMulScratchWords(int rows, int depth, int cols, bool rhs_transposed);
void BatchMatMulInt8(const FullyConnectedParams& params, int32_t multiplier, int32_t shift,
                     int batches, bool lhs_broadcast, bool rhs_broadcast, int rows, int depth,
                     int cols, bool rhs_transposed, const int8_t* lhs, const int8_t* rhs,
                     uint32_t* scratch, int8_t* output);

}  // namespace embbert

#endif  // EMBBERT_INT8_OPS_H_
