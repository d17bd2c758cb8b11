// Instruction counts of the library's own kernel cores (arduino/src) on a Cortex-M4 under QEMU
// (bench/m4_kernels.py builds and runs this). The cases come from cases.inc, which the script
// writes: one macro line per kernel and shape. For each case the core is called `calls` times
// between two reads of the counter (counter.h) and the script turns ticks into instructions.
//
// Output lines (semihosting stdout):
//   calibration <loop iterations> <ticks>
//   empty <calls> <ticks>                  the loop around an empty call
//   case <name> <calls> <ticks>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "counter.h"
#include "embbert_int8_ops.h"
#include "embbert_lut.h"

namespace {

using m4bench::CounterNow;
using m4bench::CounterStart;
using m4bench::TicksBetween;

// Buffers for the largest case (L=256: a 256 x 256 score tensor; a 287 x 128 conv input).
constexpr int kMaxElements = 96 * 1024;
int8_t g_in1[kMaxElements];
int8_t g_in2[kMaxElements];
int8_t g_out[kMaxElements];
int8_t g_filter[64 * 1024];
int32_t g_bias[1024];
int32_t g_mult[1024];
int32_t g_shift[1024];
int32_t g_softmax_table[embbert::kSoftmaxTableSize];
int8_t g_table[embbert::kInt8Values];
int32_t g_binary_tables[embbert::kBinaryTableWords];

// Spans stay far below SysTick's 2^24 ticks and long enough that one tick is noise.
constexpr uint32_t kTargetTicks = 200000;

uint32_t g_seed = 12345;
int8_t RandomInt8() {
  g_seed = g_seed * 1664525u + 1013904223u;
  return static_cast<int8_t>(g_seed >> 24);
}
void Fill(int8_t* data, int count) {
  for (int i = 0; i < count; ++i) data[i] = RandomInt8();
}

// TFLM's QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31).
void QuantizeMultiplier(double real, int32_t* multiplier, int* shift) {
  if (real == 0.0) {
    *multiplier = 0;
    *shift = 0;
    return;
  }
  const double q = frexp(real, shift);
  int64_t q_fixed = static_cast<int64_t>(llround(q * (1ll << 31)));
  if (q_fixed == (1ll << 31)) {
    q_fixed /= 2;
    ++*shift;
  }
  *multiplier = static_cast<int32_t>(q_fixed);
}

__attribute__((noinline)) void EmptyCall() { __asm volatile(""); }

template <class Fn>
__attribute__((noinline)) uint32_t Span(Fn& fn, uint32_t calls) {
  CounterStart();
  const uint32_t start = CounterNow();
  for (uint32_t i = 0; i < calls; ++i) fn();
  return TicksBetween(start, CounterNow());
}

// One call to size the span, then `calls` calls in one span.
template <class Fn>
void Measure(const char* name, Fn fn) {
  const uint32_t one = Span(fn, 1);
  uint32_t calls = one == 0 ? 1000 : kTargetTicks / one;
  if (calls < 1) calls = 1;
  if (calls > 1000) calls = 1000;
  printf("case %s %lu %lu\n", name, static_cast<unsigned long>(calls),
         static_cast<unsigned long>(Span(fn, calls)));
}

void Logistic(const char* name, int elements) {
  for (int i = 0; i < embbert::kInt8Values; ++i) g_table[i] = RandomInt8();
  Fill(g_in1, elements);
  Measure(name, [=] { embbert::ApplyInt8Table(g_table, g_in1, g_out, elements); });
}

embbert::ArithmeticParams BinaryParams(embbert::BinaryOp op) {
  embbert::ArithmeticParams p = {};
  const double s1 = 0.05, s2 = 0.04, s_out = 0.06;
  p.input1_offset = 3;
  p.input2_offset = -10;
  p.output_offset = -5;
  p.activation_min = -128;
  p.activation_max = 127;
  if (op == embbert::BinaryOp::kMul) {
    QuantizeMultiplier(s1 * s2 / s_out, &p.output_multiplier, &p.output_shift);
    return p;
  }
  p.left_shift = 20;  // TFLM's int8 ADD/SUB
  const double twice_max = 2.0 * (s1 > s2 ? s1 : s2);
  QuantizeMultiplier(s1 / twice_max, &p.input1_multiplier, &p.input1_shift);
  QuantizeMultiplier(s2 / twice_max, &p.input2_multiplier, &p.input2_shift);
  QuantizeMultiplier(twice_max / ((1 << 20) * s_out), &p.output_multiplier, &p.output_shift);
  return p;
}

void Binary(const char* name, embbert::BinaryOp op, int rank1, const int* dims1, int rank2,
            const int* dims2) {
  embbert::Broadcast4 shape;
  if (!embbert::MakeBroadcast4(dims1, rank1, dims2, rank2, &shape)) {
    printf("error %s: shapes do not broadcast\n", name);
    return;
  }
  int count1 = 1, count2 = 1;
  for (int i = 0; i < rank1; ++i) count1 *= dims1[i];
  for (int i = 0; i < rank2; ++i) count2 *= dims2[i];
  Fill(g_in1, count1);
  Fill(g_in2, count2);
  const embbert::ArithmeticParams params = BinaryParams(op);
  // as the TFLM wrapper: ADD / SUB with kBinaryTableMinElements outputs get the table scratch
  const int elements = shape.dims[0] * shape.dims[1] * shape.dims[2] * shape.dims[3];
  int32_t* tables = op != embbert::BinaryOp::kMul && elements >= embbert::kBinaryTableMinElements
                        ? g_binary_tables
                        : nullptr;
  Measure(name, [=, &params, &shape] {
    embbert::BinaryInt8(op, params, shape, g_in1, g_in2, g_out, tables);
  });
}

void Mean(const char* name, int rows, int depth) {
  embbert::MeanParams p = {};
  p.input_zero_point = -4;
  p.output_zero_point = 7;
  QuantizeMultiplier(0.05 / 0.03, &p.multiplier, &p.shift);
  Fill(g_in1, rows * depth);
  Measure(name, [=] { embbert::MeanLastAxisInt8(p, g_in1, rows, depth, g_out); });
}

void Softmax(const char* name, int rows, int depth) {
  // TFLM's PreprocessSoftmaxScaling(beta 1, input scale 0.1, 5 integer bits) and diff_min.
  int32_t multiplier;
  int left_shift;
  QuantizeMultiplier(0.1 * (1 << 26), &multiplier, &left_shift);
  const double radius = 31.0 * (1ll << 26) / static_cast<double>(1ll << left_shift);
  embbert::SoftmaxInt8Table(multiplier, left_shift, -static_cast<int>(floor(radius)),
                            g_softmax_table);
  Fill(g_in1, rows * depth);
  Measure(name, [=] { embbert::SoftmaxInt8(g_softmax_table, g_in1, rows, depth, g_out); });
}

// The causal conv as the graphs run it: (1, 1, in_w, ch) input whose first `lead` rows are the
// input zero point (PAD's rows), filter (1, 1, k, ch), VALID, stride 1, out_w positions.
void Depthwise(const char* name, int in_w, int out_w, int ch, int k, int lead) {
  embbert::DepthwiseParams p = {};
  p.input_offset = 6;  // zero point -6
  p.output_offset = -2;
  p.activation_min = -128;
  p.activation_max = 127;
  p.stride_height = p.stride_width = 1;
  p.dilation_height = p.dilation_width = 1;
  p.depth_multiplier = 1;
  Fill(g_in1, in_w * ch);
  memset(g_in1, -6, static_cast<size_t>(lead) * ch);
  Fill(g_filter, k * ch);
  for (int c = 0; c < ch; ++c) {
    g_bias[c] = RandomInt8() * 37;
    int shift;
    QuantizeMultiplier(0.0004 + 0.00001 * (c % 17), &g_mult[c], &shift);
    g_shift[c] = shift;
  }
  Measure(name, [=] {
    embbert::DepthwiseConvInt8(p, g_mult, g_shift, 1, 1, in_w, ch, g_in1, 1, k, g_filter,
                               g_bias, 1, out_w, g_out);
  });
}

// FULLY_CONNECTED: input (rows, depth), filter (channels, depth), per-tensor multiplier; the
// per-channel offsets are Prepare's work (not timed), the scratch as the TFLM wrapper gives it.
uint32_t g_fc_scratch[2048];
int32_t g_fc_offsets[1024];
void FullyConnected(const char* name, int rows, int depth, int channels) {
  embbert::FullyConnectedParams p = {};
  p.input_offset = 5;
  p.filter_offset = 0;
  p.output_offset = -3;
  p.activation_min = -128;
  p.activation_max = 127;
  int shift;
  QuantizeMultiplier(0.05 * 0.01 / 0.08, &g_mult[0], &shift);
  g_shift[0] = shift;
  Fill(g_in1, rows * depth);
  Fill(g_filter, channels * depth);
  for (int c = 0; c < channels; ++c) g_bias[c] = RandomInt8() * 91;
  embbert::FullyConnectedChannelOffsets(p, g_filter, g_bias, channels, depth, g_fc_offsets);
  uint32_t* scratch = rows >= 4 ? g_fc_scratch : nullptr;
  Measure(name, [=] {
    embbert::FullyConnectedInt8(p, g_fc_offsets, g_mult, g_shift, false, rows, depth, channels,
                                g_in1, g_filter, scratch, g_out);
  });
}

// BATCH_MATMUL: lhs (batches, rows, depth) x rhs (batches, cols, depth)^T (adj_y), zero points
// -3 (lhs) and 2 (rhs): the rhs-row and lhs-row sums are part of each call.
uint32_t g_bmm_scratch[4096];
void BatchMatMul(const char* name, int batches, int rows, int depth, int cols) {
  embbert::FullyConnectedParams p = {};
  p.input_offset = 3;
  p.filter_offset = -2;
  p.output_offset = 4;
  p.activation_min = -128;
  p.activation_max = 127;
  int32_t multiplier;
  int shift;
  QuantizeMultiplier(0.05 * 0.04 / 0.3, &multiplier, &shift);
  Fill(g_in1, batches * rows * depth);
  Fill(g_in2, batches * cols * depth);
  Measure(name, [=] {
    embbert::BatchMatMulInt8(p, multiplier, shift, batches, false, false, rows, depth, cols, true,
                             g_in1, g_in2, g_bmm_scratch, g_out);
  });
}

}  // namespace

#define LOGISTIC(name, elements) Logistic(name, elements)
#define BINARY(name, op, rank1, dims1, rank2, dims2) \
  do {                                               \
    const int d1[] = dims1;                          \
    const int d2[] = dims2;                          \
    Binary(name, embbert::BinaryOp::op, rank1, d1, rank2, d2); \
  } while (0)
#define DIMS(...) {__VA_ARGS__}
#define MEAN(name, rows, depth) Mean(name, rows, depth)
#define SOFTMAX(name, rows, depth) Softmax(name, rows, depth)
#define DEPTHWISE(name, in_w, out_w, ch, k, lead) Depthwise(name, in_w, out_w, ch, k, lead)
#define FC(name, rows, depth, channels) FullyConnected(name, rows, depth, channels)
#define BMM(name, batches, rows, depth, cols) BatchMatMul(name, batches, rows, depth, cols)

int main() {
  const uint32_t loops[2] = {100000u, 1100000u};
  for (uint32_t iterations : loops) {
    CounterStart();
    const uint32_t start = CounterNow();
    m4bench::CalibrationLoop(iterations);
    printf("calibration %lu %lu\n", static_cast<unsigned long>(iterations),
           static_cast<unsigned long>(TicksBetween(start, CounterNow())));
  }
  auto empty = [] { EmptyCall(); };
  printf("empty 1000 %lu\n", static_cast<unsigned long>(Span(empty, 1000)));
#include "cases.inc"
  printf("done\n");
  return 0;
}
