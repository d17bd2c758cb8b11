// Host driver for tests/test_kernels_cpp.py: reads requests (whitespace-separated integers) on
// stdin, runs the library's int8 cores (arduino/src/embbert_int8_ops.*) and prints the outputs.
#include <stdio.h>
#include <string.h>

#include <vector>

#include "embbert_int8_ops.h"

namespace {

long Next() {
  long v;
  if (scanf("%ld", &v) != 1) {
    fprintf(stderr, "driver: truncated request\n");
    throw 1;
  }
  return v;
}

template <class T>
std::vector<T> Read(long n) {
  std::vector<T> out(static_cast<size_t>(n));
  for (auto& v : out) v = static_cast<T>(Next());
  return out;
}

template <class T>
void Print(const T* data, long n) {
  printf("%ld", n);
  for (long i = 0; i < n; ++i) printf(" %ld", static_cast<long>(data[i]));
  printf("\n");
}

void Binary(bool tables) {
  const auto op = static_cast<embbert::BinaryOp>(Next());
  embbert::ArithmeticParams p;
  p.input1_offset = Next();
  p.input2_offset = Next();
  p.output_offset = Next();
  p.left_shift = Next();
  p.input1_multiplier = Next();
  p.input1_shift = Next();
  p.input2_multiplier = Next();
  p.input2_shift = Next();
  p.output_multiplier = Next();
  p.output_shift = Next();
  p.activation_min = Next();
  p.activation_max = Next();
  const int r1 = Next();
  auto d1 = Read<int>(r1);
  const int r2 = Next();
  auto d2 = Read<int>(r2);
  long n1 = 1, n2 = 1;
  for (auto d : d1) n1 *= d;
  for (auto d : d2) n2 *= d;
  auto a = Read<int8_t>(n1);
  auto b = Read<int8_t>(n2);
  embbert::Broadcast4 shape;
  if (!embbert::MakeBroadcast4(d1.data(), r1, d2.data(), r2, &shape)) {
    printf("-1\n");
    return;
  }
  long n = 1;
  for (int i = 0; i < 4; ++i) n *= shape.dims[i];
  std::vector<int8_t> out(n);
  std::vector<int32_t> table(embbert::kBinaryTableWords);
  embbert::BinaryInt8(op, p, shape, a.data(), b.data(), out.data(),
                      tables ? table.data() : nullptr);
  Print(out.data(), n);
}

embbert::MeanParams MeanParamsIn() {
  embbert::MeanParams p;
  p.input_zero_point = Next();
  p.output_zero_point = Next();
  p.multiplier = Next();
  p.shift = Next();
  return p;
}

void Mean() {
  const auto p = MeanParamsIn();
  const int rows = Next(), depth = Next();
  auto x = Read<int8_t>(static_cast<long>(rows) * depth);
  std::vector<int8_t> out(rows);
  embbert::MeanLastAxisInt8(p, x.data(), rows, depth, out.data());
  Print(out.data(), rows);
}

void MeanAxes() {
  const auto p = MeanParamsIn();
  const int rank = Next();
  auto dims = Read<int32_t>(rank);
  const unsigned mask = Next();
  long total = 1, outputs = 1;
  for (int d = 0; d < rank; ++d) {
    total *= dims[d];
    if (!(mask & (1u << d))) outputs *= dims[d];
  }
  auto x = Read<int8_t>(total);
  std::vector<int32_t> temp(outputs);
  std::vector<int8_t> out(outputs);
  embbert::MeanInt8(p, x.data(), dims.data(), rank, mask, temp.data(), out.data());
  Print(out.data(), outputs);
}

void Softmax(bool table_only) {
  const int32_t multiplier = Next();
  const int left_shift = Next();
  const int diff_min = Next();
  int32_t table[embbert::kSoftmaxTableSize];
  embbert::SoftmaxInt8Table(multiplier, left_shift, diff_min, table);
  if (table_only) {
    Print(table, embbert::kSoftmaxTableSize);
    return;
  }
  const int rows = Next(), depth = Next();
  auto x = Read<int8_t>(static_cast<long>(rows) * depth);
  std::vector<int8_t> out(x.size());
  embbert::SoftmaxInt8(table, x.data(), rows, depth, out.data());
  Print(out.data(), static_cast<long>(out.size()));
}

void Reciprocal() {
  const long n = Next();
  std::vector<int32_t> out;
  for (long i = 0; i < n; ++i) {
    int bits;
    out.push_back(embbert::GetReciprocal(static_cast<int32_t>(Next()), 12, &bits));
    out.push_back(bits);
  }
  Print(out.data(), static_cast<long>(out.size()));
}

void Depthwise() {
  embbert::DepthwiseParams p;
  p.input_offset = Next();
  p.output_offset = Next();
  p.activation_min = Next();
  p.activation_max = Next();
  p.stride_height = Next();
  p.stride_width = Next();
  p.dilation_height = Next();
  p.dilation_width = Next();
  p.pad_height = Next();
  p.pad_width = Next();
  p.depth_multiplier = Next();
  const int batches = Next(), ih = Next(), iw = Next(), ic = Next();
  const int fh = Next(), fw = Next(), oh = Next(), ow = Next();
  const int has_bias = Next();
  const int oc = ic * p.depth_multiplier;
  auto filter = Read<int8_t>(static_cast<long>(fh) * fw * oc);
  auto bias = Read<int32_t>(has_bias ? oc : 0);
  auto mult = Read<int32_t>(oc);
  auto shift = Read<int32_t>(oc);
  auto x = Read<int8_t>(static_cast<long>(batches) * ih * iw * ic);
  std::vector<int8_t> out(static_cast<size_t>(batches) * oh * ow * oc);
  embbert::DepthwiseConvInt8(p, mult.data(), shift.data(), batches, ih, iw, ic, x.data(), fh, fw,
                             filter.data(), has_bias ? bias.data() : nullptr, oh, ow, out.data());
  Print(out.data(), static_cast<long>(out.size()));
}

void FullyConnected() {
  const bool per_channel = Next() != 0;
  const bool use_scratch = Next() != 0;
  const int batches = Next(), depth = Next(), channels = Next();
  embbert::FullyConnectedParams p;
  p.input_offset = Next();
  p.filter_offset = Next();
  p.output_offset = Next();
  p.activation_min = Next();
  p.activation_max = Next();
  const int has_bias = Next();
  auto filter = Read<int8_t>(static_cast<long>(channels) * depth);
  auto bias = Read<int32_t>(has_bias ? channels : 0);
  const int quant = per_channel ? channels : 1;
  auto mult = Read<int32_t>(quant);
  auto shift = Read<int32_t>(quant);
  auto x = Read<int8_t>(static_cast<long>(batches) * depth);
  std::vector<int32_t> offsets(static_cast<size_t>(channels));
  embbert::FullyConnectedChannelOffsets(p, filter.data(), has_bias ? bias.data() : nullptr,
                                        channels, depth, offsets.data());
  std::vector<uint32_t> scratch(static_cast<size_t>(embbert::FullyConnectedScratchWords(depth)));
  std::vector<int8_t> out(static_cast<size_t>(batches) * channels);
  embbert::FullyConnectedInt8(p, offsets.data(), mult.data(), shift.data(), per_channel, batches,
                              depth, channels, x.data(), filter.data(),
                              use_scratch ? scratch.data() : nullptr, out.data());
  Print(out.data(), static_cast<long>(out.size()));
}

void BatchMatMul() {
  const bool rhs_transposed = Next() != 0;
  const int lhs_batches = Next(), rhs_batches = Next(), rows = Next(), depth = Next(),
            cols = Next();
  embbert::FullyConnectedParams p;
  p.input_offset = Next();
  p.filter_offset = Next();
  p.output_offset = Next();
  p.activation_min = -128;
  p.activation_max = 127;
  const int32_t mult = Next();
  const int32_t shift = Next();
  auto lhs = Read<int8_t>(static_cast<long>(lhs_batches) * rows * depth);
  auto rhs = Read<int8_t>(static_cast<long>(rhs_batches) * cols * depth);
  const int batches = lhs_batches > rhs_batches ? lhs_batches : rhs_batches;
  std::vector<uint32_t> scratch(static_cast<size_t>(
      embbert::BatchMatMulScratchWords(rows, depth, cols, rhs_transposed)));
  std::vector<int8_t> out(static_cast<size_t>(batches) * rows * cols);
  embbert::BatchMatMulInt8(p, mult, shift, batches, lhs_batches == 1 && batches > 1,
                           rhs_batches == 1 && batches > 1, rows, depth, cols, rhs_transposed,
                           lhs.data(), rhs.data(), scratch.data(), out.data());
  Print(out.data(), static_cast<long>(out.size()));
}

}  // namespace

int main() {
  char op[32];
  try {
    while (scanf("%31s", op) == 1) {
      if (!strcmp(op, "binary")) Binary(false);
      else if (!strcmp(op, "binary_tables")) Binary(true);
      else if (!strcmp(op, "mean")) Mean();
      else if (!strcmp(op, "mean_axes")) MeanAxes();
      else if (!strcmp(op, "softmax_table")) Softmax(true);
      else if (!strcmp(op, "softmax")) Softmax(false);
      else if (!strcmp(op, "reciprocal")) Reciprocal();
      else if (!strcmp(op, "depthwise")) Depthwise();
      else if (!strcmp(op, "fc")) FullyConnected();
      else if (!strcmp(op, "bmm")) BatchMatMul();
      else {
        fprintf(stderr, "driver: unknown request %s\n", op);
        return 2;
      }
    }
  } catch (int) {
    return 2;
  }
  return 0;
}
