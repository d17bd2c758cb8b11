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
// adds the pairs of the four rows (Cortex-M4 DSP instructions: 15 instructions per 16 MACs in
// Dot4; elsewhere the same arithmetic in C). Leftover rows (batches % 4) take 2 x 2 blocks in C.
// Then TFLM's MultiplyByQuantizedMultiplier, the output offset and the activation clamp.
#include <string.h>

#include "embbert_int8_ops.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define EMBBERT_DSP 1
#else
#define EMBBERT_DSP 0
#endif

namespace embbert {
namespace {

inline uint32_t Load32(const int8_t* p) {
  uint32_t v;
  memcpy(&v, p, 4);  // one LDR on the M4 (unaligned loads allowed)
  return v;
}

#if EMBBERT_DSP
// int8 lanes 0 and 2 -> two int16 lanes.
inline uint32_t Sxtb16(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1" : "=r"(r) : "r"(x));
  return r;
}
// int8 lanes 1 and 3 -> two int16 lanes.
inline uint32_t Sxtb16Ror8(uint32_t x) {
  uint32_t r;
  __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
  return r;
}
// acc + a.lo * b.lo + a.hi * b.hi (int16 lanes).
inline int32_t Smlad(uint32_t a, uint32_t b, int32_t acc) {
  int32_t r;
  __asm__("smlad %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(acc));
  return r;
}
// Lane-wise int16 a + b.
inline uint32_t Sadd16(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("sadd16 %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
// (a.lo, b.lo) and (a.hi, b.hi).
inline uint32_t PackLo(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("pkhbt %0, %1, %2, lsl #16" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
inline uint32_t PackHi(uint32_t a, uint32_t b) {
  uint32_t r;
  __asm__("pkhtb %0, %2, %1, asr #16" : "=r"(r) : "r"(a), "r"(b));
  return r;
}
#else
inline uint32_t Pack16(int32_t lo, int32_t hi) {
  return (static_cast<uint32_t>(lo) & 0xFFFFu) | (static_cast<uint32_t>(hi) << 16);
}
inline uint32_t Sxtb16(uint32_t x) {
  return Pack16(static_cast<int8_t>(x & 0xFF), static_cast<int8_t>((x >> 16) & 0xFF));
}
inline uint32_t Sxtb16Ror8(uint32_t x) {
  return Pack16(static_cast<int8_t>((x >> 8) & 0xFF), static_cast<int8_t>(x >> 24));
}
inline int32_t Smlad(uint32_t a, uint32_t b, int32_t acc) {
  const int32_t lo = static_cast<int16_t>(a & 0xFFFF) * static_cast<int16_t>(b & 0xFFFF);
  const int32_t hi = static_cast<int16_t>(a >> 16) * static_cast<int16_t>(b >> 16);
  return static_cast<int32_t>(static_cast<uint32_t>(acc) + static_cast<uint32_t>(lo) +
                              static_cast<uint32_t>(hi));
}
inline uint32_t Sadd16(uint32_t a, uint32_t b) {
  return Pack16(static_cast<int16_t>(a & 0xFFFF) + static_cast<int16_t>(b & 0xFFFF),
                static_cast<int16_t>(a >> 16) + static_cast<int16_t>(b >> 16));
}
inline uint32_t PackLo(uint32_t a, uint32_t b) { return (a & 0xFFFFu) | (b << 16); }
inline uint32_t PackHi(uint32_t a, uint32_t b) { return (b & 0xFFFF0000u) | (a >> 16); }
#endif

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

// acc[r] = sum over `quads` quads of row r of the interleaved scratch x the int8 filter row w.
#if EMBBERT_DSP
// r0 = xs, r1 = w, r2 = quads, r3 = acc (AAPCS); r4-r7 the four sums.
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
      "ldr r8, [r1], #4\n"
      "sxtb16 r9, r8\n"
      "sxtb16 r8, r8, ror #8\n"
      "ldmia r0!, {r10, r11, r12, lr}\n"
      "smlad r4, r10, r9, r4\n"
      "smlad r4, r11, r8, r4\n"
      "smlad r5, r12, r9, r5\n"
      "smlad r5, lr, r8, r5\n"
      "ldmia r0!, {r10, r11, r12, lr}\n"
      "smlad r6, r10, r9, r6\n"
      "smlad r6, r11, r8, r6\n"
      "smlad r7, r12, r9, r7\n"
      "smlad r7, lr, r8, r7\n"
      "subs r2, r2, #1\n"
      "bne 1b\n"
      "2:\n"
      "stm r3, {r4-r7}\n"
      "pop {r4-r11, pc}\n");
}
#else
void Dot4(const uint32_t* xs, const int8_t* w, int quads, int32_t* acc) {
  int32_t a[4] = {0, 0, 0, 0};
  for (int q = 0; q < quads; ++q, xs += 8) {
    const uint32_t v = Load32(w + 4 * q);
    const uint32_t lo = Sxtb16(v), hi = Sxtb16Ror8(v);
    for (int r = 0; r < 4; ++r) a[r] = Smlad(xs[2 * r + 1], hi, Smlad(xs[2 * r], lo, a[r]));
  }
  for (int r = 0; r < 4; ++r) acc[r] = a[r];
}
#endif

// sum_d x[d] (SMLAD with int16 ones on the M4).
int32_t SumInt8(const int8_t* x, int n) {
  const uint32_t ones = 0x00010001u;
  int32_t s = 0;
  int d = 0;
  for (; d + 4 <= n; d += 4) {
    const uint32_t v = Load32(x + d);
    s = Smlad(Sxtb16Ror8(v), ones, Smlad(Sxtb16(v), ones, s));
  }
  for (; d < n; ++d) s += x[d];
  return s;
}

inline int32_t RowTerm(const int8_t* x, int depth, int32_t filter_offset) {
  if (filter_offset == 0) return 0;
  const int32_t s = SumInt8(x, depth);
  return static_cast<int32_t>(static_cast<uint32_t>(s) * static_cast<uint32_t>(filter_offset));
}

// (a * m + 2^30) >> 31 (one SMLAL on the M4).
inline int32_t HighMulFloor(int32_t a, int32_t m) {
#if EMBBERT_DSP
  uint32_t lo = 1u << 30;
  int32_t hi = 0;
  __asm__("smlal %0, %1, %2, %3" : "+r"(lo), "+r"(hi) : "r"(a), "r"(m));
  return static_cast<int32_t>((static_cast<uint32_t>(hi) << 1) | (lo >> 31));
#else
  return static_cast<int32_t>((static_cast<int64_t>(a) * m + (int64_t{1} << 30)) >> 31);
#endif
}

// TFLM's MultiplyByQuantizedMultiplier (double rounding) for a multiplier >= 0, the shift split
// once. SaturatingRoundingDoublingHighMul's round-half-away-from-zero, (a*m + nudge) / 2^31
// truncated, equals floor((a*m + 2^30) / 2^31) for both signs of a*m (for a*m < 0 the
// truncation is a ceiling of (a*m + 1 - 2^30) / 2^31), and its one saturating case needs m < 0.
// Then the output offset and the activation clamp (kFull: the whole int8 range).
struct Requant {
  int32_t multiplier;
  int left;
  int right;
  int32_t mask;
  int32_t half;
  int32_t output_offset;
  int32_t act_min;
  int32_t act_max;
  Requant(int32_t m, int shift, const FullyConnectedParams& p)
      : multiplier(m),
        left(shift > 0 ? shift : 0),
        right(shift > 0 ? 0 : -shift),
        mask(static_cast<int32_t>((int64_t{1} << right) - 1)),
        half(mask >> 1),
        output_offset(p.output_offset),
        act_min(p.activation_min),
        act_max(p.activation_max) {}
  template <bool kFull = false>
  inline int8_t Apply(int32_t x) const {
    const int32_t h =
        HighMulFloor(static_cast<int32_t>(static_cast<uint32_t>(x) << left), multiplier);
    const int32_t threshold = half + static_cast<int32_t>(static_cast<uint32_t>(h) >> 31);
    int32_t v = (h >> right) + ((h & mask) > threshold ? 1 : 0) + output_offset;
    if (kFull) {
      v = v < -128 ? -128 : (v > 127 ? 127 : v);
    } else {
      v = v < act_min ? act_min : v;
      v = v > act_max ? act_max : v;
    }
    return static_cast<int8_t>(v);
  }
  inline int8_t operator()(int32_t x) const { return Apply<false>(x); }
};

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
  const bool tail = 4 * quads != depth;
  Requant requant(multiplier[0], static_cast<int>(shift[0]), p);
  for (int c = 0; c < channels; ++c) {
    const int8_t* w = filter + static_cast<size_t>(c) * depth;
    int32_t acc[4];
    Dot4(scratch, w, quads, acc);
    if (tail) {
      for (int r = 0; r < 4; ++r) {
        const int8_t* xr = x + static_cast<size_t>(r) * depth;
        for (int d = 4 * quads; d < depth; ++d) acc[r] = Mac(acc[r], xr[d], w[d]);
      }
    }
    if (per_channel || c == 0) {
      requant = Requant(multiplier[per_channel * c], static_cast<int>(shift[per_channel * c]), p);
    }
    const uint32_t offset = static_cast<uint32_t>(channel_offset[c]);
    int8_t* out = output + static_cast<size_t>(b) * channels + c;
    for (int r = 0; r < 4; ++r) {
      const uint32_t sum = static_cast<uint32_t>(acc[r]) + static_cast<uint32_t>(row_term[r]);
      out[static_cast<size_t>(r) * channels] =
          requant.Apply<kFull>(static_cast<int32_t>(sum + offset));
    }
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

namespace embbert {

void DepthwiseTapSums(const int8_t* x, const int8_t* f, int stride, int taps, int channels,
                      int32_t input_offset, int32_t* sums) {
  const uint32_t offsets = (static_cast<uint32_t>(input_offset) & 0xFFFFu) |
                           (static_cast<uint32_t>(input_offset) << 16);
  const size_t step = static_cast<size_t>(stride);
  for (int c = 0; c + 4 <= channels; c += 4) {
    int32_t a0 = sums[c], a1 = sums[c + 1], a2 = sums[c + 2], a3 = sums[c + 3];
    const int8_t* xp = x + c;
    const int8_t* fp = f + c;
    int k = 0;
    for (; k + 2 <= taps; k += 2, xp += 2 * step, fp += 2 * step) {
      // lanes: x (x + offset) and f of taps k, k + 1; "e" channels c, c + 2; "o" c + 1, c + 3
      const uint32_t xk = Load32(xp), xk1 = Load32(xp + step);
      const uint32_t fk = Load32(fp), fk1 = Load32(fp + step);
      const uint32_t xe0 = Sadd16(Sxtb16(xk), offsets), xe1 = Sadd16(Sxtb16(xk1), offsets);
      const uint32_t fe0 = Sxtb16(fk), fe1 = Sxtb16(fk1);
      a0 = Smlad(PackLo(xe0, xe1), PackLo(fe0, fe1), a0);
      a2 = Smlad(PackHi(xe0, xe1), PackHi(fe0, fe1), a2);
      const uint32_t xo0 = Sadd16(Sxtb16Ror8(xk), offsets);
      const uint32_t xo1 = Sadd16(Sxtb16Ror8(xk1), offsets);
      const uint32_t fo0 = Sxtb16Ror8(fk), fo1 = Sxtb16Ror8(fk1);
      a1 = Smlad(PackLo(xo0, xo1), PackLo(fo0, fo1), a1);
      a3 = Smlad(PackHi(xo0, xo1), PackHi(fo0, fo1), a3);
    }
    if (k < taps) {
      a0 += fp[0] * (xp[0] + input_offset);
      a1 += fp[1] * (xp[1] + input_offset);
      a2 += fp[2] * (xp[2] + input_offset);
      a3 += fp[3] * (xp[3] + input_offset);
    }
    sums[c] = a0;
    sums[c + 1] = a1;
    sums[c + 2] = a2;
    sums[c + 3] = a3;
  }
}

bool DepthwiseRowSimd(const DepthwiseParams& p, const int32_t* mult, const int32_t* shift,
                      int channels, const int8_t* rows, int taps, const int8_t* filter,
                      const int32_t* bias, int8_t* out) {
  constexpr int kMaxChannels = 256;  // the sums live on the stack
  if (p.depth_multiplier != 1 || channels % 4 != 0 || channels > kMaxChannels) return false;
  int32_t acc[kMaxChannels];
  for (int c = 0; c < channels; ++c) acc[c] = bias ? bias[c] : 0;
  DepthwiseTapSums(rows, filter, channels, taps, channels, p.input_offset, acc);
  FullyConnectedParams q = {};
  q.output_offset = p.output_offset;
  q.activation_min = p.activation_min;
  q.activation_max = p.activation_max;
  for (int c = 0; c < channels; ++c) {
    out[c] = Requant(mult[c], static_cast<int>(shift[c]), q)(acc[c]);
  }
  return true;
}

}  // namespace embbert
