// Internal to the EmbBERT library's int8 cores (embbert_int8_matmul.cpp, embbert_int8_conv.cpp):
// the Cortex-M4 DSP instructions they use (SXTB16, SMLAD, SADD16, PKHBT/PKHTB, SMLAL) as inline
// functions, with the same arithmetic in C where the DSP extension is absent (the host tests),
// and TFLM's double-rounding requantization with the shift split once.
#ifndef EMBBERT_SIMD_H_
#define EMBBERT_SIMD_H_

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "embbert_int8_ops.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define EMBBERT_DSP 1
#else
#define EMBBERT_DSP 0
#endif

namespace embbert {
namespace simd {

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

// sum_d x[d] (SMLAD with int16 ones on the M4).
inline int32_t SumInt8(const int8_t* x, int n) {
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

// v clamped to -128..127 (one SSAT on the M4).
inline int32_t SatInt8(int32_t v) {
#if EMBBERT_DSP
  __asm__("ssat %0, #8, %1" : "=r"(v) : "r"(v));
  return v;
#else
  return v < -128 ? -128 : (v > 127 ? 127 : v);
#endif
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
struct Rescale {
  int32_t multiplier;
  int left;
  int right;
  int32_t mask;
  int32_t half;
  explicit Rescale(int32_t m, int shift)
      : multiplier(m),
        left(shift > 0 ? shift : 0),
        right(shift > 0 ? 0 : -shift),
        mask(static_cast<int32_t>((int64_t{1} << right) - 1)),
        half(mask >> 1) {}
  inline int32_t operator()(int32_t x) const {
    const int32_t h =
        HighMulFloor(static_cast<int32_t>(static_cast<uint32_t>(x) << left), multiplier);
    const int32_t threshold = half + static_cast<int32_t>(static_cast<uint32_t>(h) >> 31);
    return (h >> right) + ((h & mask) > threshold ? 1 : 0);
  }
};

// Rescale, then the output offset and the activation clamp (kFull: the whole int8 range).
struct Requant : Rescale {
  int32_t output_offset;
  int32_t act_min;
  int32_t act_max;
  Requant(int32_t m, int shift, const FullyConnectedParams& p)
      : Rescale(m, shift),
        output_offset(p.output_offset),
        act_min(p.activation_min),
        act_max(p.activation_max) {}
  template <bool kFull = false>
  inline int8_t Apply(int32_t x) const {
    int32_t v = Rescale::operator()(x) + output_offset;
    if (kFull) {
      v = SatInt8(v);
    } else {
      v = v < act_min ? act_min : v;
      v = v > act_max ? act_max : v;
    }
    return static_cast<int8_t>(v);
  }
  inline int8_t operator()(int32_t x) const { return Apply<false>(x); }
};

}  // namespace simd
}  // namespace embbert

#endif  // EMBBERT_SIMD_H_
