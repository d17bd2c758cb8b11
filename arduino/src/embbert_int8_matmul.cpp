// The EmbBERT library's int8 FULLY_CONNECTED core (see embbert_int8_ops.h). No TFLM dependency.
//
// TFLM's reference integer FullyConnected computes, per input row b and output channel c,
//   acc = sum_d (w[c][d] + filter_offset) * (x[b][d] + input_offset) + bias[c]
// in int32. Expanded (exact in two's-complement int32, as the reference's sums wrap):
//   acc = sum_d w*x + filter_offset * sum_d x[b][d] + channel_offset[c],
//   channel_offset[c] = bias[c] + input_offset * sum_d (w[c][d] + filter_offset),
// so channel_offset is computed once (Prepare) and the loop is a plain int8 dot product. Four
// input rows at a time are widened once into a scratch of int16 pairs (SXTB16 splits a word of
// four int8 into lanes 0/2 and 1/3), interleaved per four depths; then per channel one pass
// over the scratch: a word of four weights is widened the same way and SMLAD multiplies and
// adds the pairs of the four rows (Cortex-M4 DSP instructions: 28 instructions per 32 MACs in
// Dot4, whose loop takes two quads; elsewhere the same arithmetic in C). Leftover rows
// (batches % 4) take 2 x 2 blocks in C.
// Then TFLM's MultiplyByQuantizedMultiplier, the output offset and the activation clamp.
#include "embbert_int8_ops.h"
#include "embbert_simd.h"

namespace embbert {
namespace {

using namespace simd;  // NOLINT: the helpers of embbert_simd.h

inline int32_t Mac(int32_t acc, int8_t a, int8_t b) {
  return static_cast<int32_t>(static_cast<uint32_t>(acc) +
                              static_cast<uint32_t>(int32_t{a} * int32_t{b}));
}

// sums[r][c] = sum_d x_r[d] * w_c[d] for R rows and C channels (R, C in {1, 2}).
template <int R, int C>
inline void Dots(const int8_t* x0, const int8_t* x1, const int8_t* w0, const int8_t* w1,
                 int depth, int32_t sums[2][2]) {
  int32_t a00 = 0, a01 = 0, a10 = 0, a11 = 0;
  int d = 0;
  for (; d + 4 <= depth; d += 4) {
    const uint32_t xa = Load32(x0 + d);
    const uint32_t x0l = Sxtb16(xa), x0h = Sxtb16Ror8(xa);
    uint32_t x1l = 0, x1h = 0;
    if (R == 2) {
      const uint32_t xb = Load32(x1 + d);
      x1l = Sxtb16(xb);
      x1h = Sxtb16Ror8(xb);
    }
    const uint32_t wa = Load32(w0 + d);
    const uint32_t w0l = Sxtb16(wa), w0h = Sxtb16Ror8(wa);
    a00 = Smlad(x0h, w0h, Smlad(x0l, w0l, a00));
    if (R == 2) a10 = Smlad(x1h, w0h, Smlad(x1l, w0l, a10));
    if (C == 2) {
      const uint32_t wb = Load32(w1 + d);
      const uint32_t w1l = Sxtb16(wb), w1h = Sxtb16Ror8(wb);
      a01 = Smlad(x0h, w1h, Smlad(x0l, w1l, a01));
      if (R == 2) a11 = Smlad(x1h, w1h, Smlad(x1l, w1l, a11));
    }
  }
  for (; d < depth; ++d) {
    a00 = Mac(a00, x0[d], w0[d]);
    if (R == 2) a10 = Mac(a10, x1[d], w0[d]);
    if (C == 2) a01 = Mac(a01, x0[d], w1[d]);
    if (R == 2 && C == 2) a11 = Mac(a11, x1[d], w1[d]);
  }
  sums[0][0] = a00;
  sums[0][1] = a01;
  sums[1][0] = a10;
  sums[1][1] = a11;
}

// Rows x[0..3] (depth apart) as int16 pairs, per quad q of depths: row r's lanes (4q, 4q+2) at
// out[8q + 2r], lanes (4q+1, 4q+3) at out[8q + 2r + 1].
void Interleave4(const int8_t* x, int depth, int quads, uint32_t* out) {
  for (int q = 0; q < quads; ++q) {
    for (int r = 0; r < 4; ++r) {
      const uint32_t v = Load32(x + static_cast<size_t>(r) * depth + 4 * q);
      out[8 * q + 2 * r] = Sxtb16(v);
      out[8 * q + 2 * r + 1] = Sxtb16Ror8(v);
    }
  }
}

// acc[r] = sum over 2 x `pairs` quads of row r of the interleaved scratch x the int8 filter row w.
#if EMBBERT_DSP
// r0 = xs, r1 = w, r2 = pairs, r3 = acc (AAPCS); r4-r7 the four sums; two quads per iteration.
// One quad of depths: 4 filter bytes as two int16 pairs (r9: lanes 0/2, r8: lanes 1/3) against
// the interleaved scratch of rows 0-3, into the sums r4-r7.
#define EMBBERT_DOT4_QUAD \
  "ldr r8, [r1], #4\n" \
  "sxtb16 r9, r8\n" \
  "sxtb16 r8, r8, ror #8\n" \
  "ldmia r0!, {r10, r11, r12, lr}\n" \
  "smlad r4, r10, r9, r4\n" \
  "smlad r4, r11, r8, r4\n" \
  "smlad r5, r12, r9, r5\n" \
  "smlad r5, lr, r8, r5\n" \
  "ldmia r0!, {r10, r11, r12, lr}\n" \
  "smlad r6, r10, r9, r6\n" \
  "smlad r6, r11, r8, r6\n" \
  "smlad r7, r12, r9, r7\n" \
  "smlad r7, lr, r8, r7\n"

__attribute__((naked, noinline)) void Dot4(const uint32_t*, const int8_t*, int, int32_t*) {
  __asm__ volatile(
      "push {r4-r11, lr}\n"
      "movs r4, #0\n"
      "movs r5, #0\n"
      "movs r6, #0\n"
      "movs r7, #0\n"
      "cmp r2, #0\n"
      "beq 2f\n"
      "1:\n"
      EMBBERT_DOT4_QUAD EMBBERT_DOT4_QUAD
      "subs r2, r2, #1\n"
      "bne 1b\n"
      "2:\n"
      "stm r3, {r4-r7}\n"
      "pop {r4-r11, pc}\n");
}
#else
void Dot4(const uint32_t* xs, const int8_t* w, int pairs, int32_t* acc) {
  int32_t a[4] = {0, 0, 0, 0};
  for (int q = 0; q < 2 * pairs; ++q, xs += 8) {
    const uint32_t v = Load32(w + 4 * q);
    const uint32_t lo = Sxtb16(v), hi = Sxtb16Ror8(v);
    for (int r = 0; r < 4; ++r) a[r] = Smlad(xs[2 * r + 1], hi, Smlad(xs[2 * r], lo, a[r]));
  }
  for (int r = 0; r < 4; ++r) acc[r] = a[r];
}
#endif

inline int32_t RowTerm(const int8_t* x, int depth, int32_t filter_offset) {
  if (filter_offset == 0) return 0;
  const int32_t s = SumInt8(x, depth);
  return static_cast<int32_t>(static_cast<uint32_t>(s) * static_cast<uint32_t>(filter_offset));
}

template <int R, int C>
inline void Block(const FullyConnectedParams& p, const int32_t* channel_offset,
                  const int32_t* multiplier, const int32_t* shift, int per_channel, int depth,
                  int channels, const int8_t* x, const int8_t* w, int b, int c,
                  const int32_t row_term[2], int8_t* output) {
  int32_t sums[2][2];
  const int8_t* x0 = x + static_cast<size_t>(b) * depth;
  const int8_t* w0 = w + static_cast<size_t>(c) * depth;
  Dots<R, C>(x0, x0 + depth, w0, w0 + depth, depth, sums);
  for (int i = 0; i < C; ++i) {
    const int ch = c + i;
    const Requant requant(multiplier[per_channel * ch],
                          static_cast<int>(shift[per_channel * ch]), p);
    for (int r = 0; r < R; ++r) {
      const uint32_t acc = static_cast<uint32_t>(sums[r][i]) +
                           static_cast<uint32_t>(row_term[r]) +
                           static_cast<uint32_t>(channel_offset[ch]);
      output[static_cast<size_t>(b + r) * channels + ch] = requant(static_cast<int32_t>(acc));
    }
  }
}

template <int R>
void Rows(const FullyConnectedParams& p, const int32_t* channel_offset, const int32_t* multiplier,
          const int32_t* shift, int per_channel, int depth, int channels, const int8_t* x,
          const int8_t* w, int b, int8_t* output) {
  int32_t row_term[2] = {0, 0};
  for (int r = 0; r < R; ++r) {
    row_term[r] = RowTerm(x + static_cast<size_t>(b + r) * depth, depth, p.filter_offset);
  }
  int c = 0;
  for (; c + 2 <= channels; c += 2) {
    Block<R, 2>(p, channel_offset, multiplier, shift, per_channel, depth, channels, x, w, b, c,
                row_term, output);
  }
  if (c < channels) {
    Block<R, 1>(p, channel_offset, multiplier, shift, per_channel, depth, channels, x, w, b, c,
                row_term, output);
  }
}

// out[r * stride] = requant(acc[r] + row_term[r] + offset), r < 4 (out of line: the caller's loop
// keeps its registers, this one keeps the requantization's in registers).
template <bool kFull>
__attribute__((noinline)) void Store4(const int32_t* acc, const int32_t* row_term, uint32_t offset,
                                      const Requant& q, int8_t* out, int stride) {
  const Requant r = q;
  for (int i = 0; i < 4; ++i) {
    const uint32_t sum = static_cast<uint32_t>(acc[i]) + static_cast<uint32_t>(row_term[i]);
    out[i * stride] = r.Apply<kFull>(static_cast<int32_t>(sum + offset));
  }
}

template <bool kFull>
void Rows4(const FullyConnectedParams& p, const int32_t* channel_offset, const int32_t* multiplier,
           const int32_t* shift, int per_channel, int depth, int channels, const int8_t* input,
           const int8_t* filter, int b, uint32_t* scratch, int8_t* output) {
  const int8_t* x = input + static_cast<size_t>(b) * depth;
  const int quads = depth / 4;
  Interleave4(x, depth, quads, scratch);
  int32_t row_term[4];
  for (int r = 0; r < 4; ++r) {
    row_term[r] = RowTerm(x + static_cast<size_t>(r) * depth, depth, p.filter_offset);
  }
  const int pairs = quads / 2;
  const int done = 8 * pairs;  // depths Dot4 covers; the rest (< 8) in C
  const bool tail = done != depth;
  Requant requant(multiplier[0], static_cast<int>(shift[0]), p);
  for (int c = 0; c < channels; ++c) {
    const int8_t* w = filter + static_cast<size_t>(c) * depth;
    int32_t acc[4];
    Dot4(scratch, w, pairs, acc);
    if (tail) {
      for (int r = 0; r < 4; ++r) {
        const int8_t* xr = x + static_cast<size_t>(r) * depth;
        for (int d = done; d < depth; ++d) acc[r] = Mac(acc[r], xr[d], w[d]);
      }
    }
    if (per_channel || c == 0) {
      requant = Requant(multiplier[per_channel * c], static_cast<int>(shift[per_channel * c]), p);
    }
    Store4<kFull>(acc, row_term, static_cast<uint32_t>(channel_offset[c]), requant,
                  output + static_cast<size_t>(b) * channels + c, channels);
  }
}

}  // namespace

int FullyConnectedScratchWords(int depth) { return 8 * (depth / 4); }

void FullyConnectedChannelOffsets(const FullyConnectedParams& p, const int8_t* filter,
                                  const int32_t* bias, int channels, int depth,
                                  int32_t* channel_offset) {
  for (int c = 0; c < channels; ++c) {
    const int8_t* w = filter + static_cast<size_t>(c) * depth;
    const uint32_t s = static_cast<uint32_t>(SumInt8(w, depth)) +
                       static_cast<uint32_t>(p.filter_offset) * static_cast<uint32_t>(depth);
    const uint32_t term = s * static_cast<uint32_t>(p.input_offset);
    channel_offset[c] =
        static_cast<int32_t>(term + static_cast<uint32_t>(bias != nullptr ? bias[c] : 0));
  }
}

void FullyConnectedInt8(const FullyConnectedParams& p, const int32_t* channel_offset,
                        const int32_t* multiplier, const int32_t* shift, bool per_channel,
                        int batches, int depth, int channels, const int8_t* input,
                        const int8_t* filter, uint32_t* scratch, int8_t* output) {
  const int stride = per_channel ? 1 : 0;
  int b = 0;
  const bool full = p.activation_min == -128 && p.activation_max == 127;
  for (; scratch != nullptr && b + 4 <= batches; b += 4) {
    if (full) {
      Rows4<true>(p, channel_offset, multiplier, shift, stride, depth, channels, input, filter, b,
                  scratch, output);
    } else {
      Rows4<false>(p, channel_offset, multiplier, shift, stride, depth, channels, input, filter,
                   b, scratch, output);
    }
  }
  for (; b + 2 <= batches; b += 2) {
    Rows<2>(p, channel_offset, multiplier, shift, stride, depth, channels, input, filter, b,
            output);
  }
  if (b < batches) {
    Rows<1>(p, channel_offset, multiplier, shift, stride, depth, channels, input, filter, b,
            output);
  }
}

}  // namespace embbert

namespace embbert {

int BatchMatMulScratchWords(int rows, int depth, int cols, bool rhs_transposed) {
  const int fc = rows >= 4 ? FullyConnectedScratchWords(depth) : 0;
  const int transposed = rhs_transposed ? 0 : (cols * depth + 3) / 4;
  return cols + fc + transposed;
}

void BatchMatMulInt8(const FullyConnectedParams& p, int32_t multiplier, int32_t shift,
                     int batches, bool lhs_broadcast, bool rhs_broadcast, int rows, int depth,
                     int cols, bool rhs_transposed, const int8_t* lhs, const int8_t* rhs,
                     uint32_t* scratch, int8_t* output) {
  auto* col_offset = reinterpret_cast<int32_t*>(scratch);
  uint32_t* fc_scratch = rows >= 4 ? scratch + cols : nullptr;
  auto* transposed = reinterpret_cast<int8_t*>(
      scratch + cols + (rows >= 4 ? FullyConnectedScratchWords(depth) : 0));
  const size_t lhs_size = static_cast<size_t>(rows) * depth;
  const size_t rhs_size = static_cast<size_t>(cols) * depth;
  for (int b = 0; b < batches; ++b) {
    const int8_t* l = lhs + (lhs_broadcast ? 0 : b * lhs_size);
    const int8_t* r = rhs + (rhs_broadcast ? 0 : b * rhs_size);
    if (!rhs_transposed) {  // (depth, cols) -> (cols, depth)
      for (int d = 0; d < depth; ++d) {
        for (int c = 0; c < cols; ++c) {
          transposed[static_cast<size_t>(c) * depth + d] = r[static_cast<size_t>(d) * cols + c];
        }
      }
      r = transposed;
    }
    if (b == 0 || !rhs_broadcast) {
      FullyConnectedChannelOffsets(p, r, nullptr, cols, depth, col_offset);
    }
    FullyConnectedInt8(p, col_offset, &multiplier, &shift, false, rows, depth, cols, l, r,
                       fc_scratch, output + static_cast<size_t>(b) * rows * cols);
  }
}

}  // namespace embbert

