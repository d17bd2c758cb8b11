// The EmbBERT library's depthwise conv helpers (see embbert_int8_ops.h): the 1-D causal conv's
// tap sums two taps per SMLAD, and TFLM's reference loops for any other shape. No TFLM
// dependency.
#include "embbert_int8_ops.h"
#include "embbert_simd.h"

namespace embbert {

using namespace simd;  // NOLINT: the helpers of embbert_simd.h

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

void DepthwiseConvGenericInt8(const DepthwiseParams& p, const int32_t* mult, const int32_t* shift,
                              int batches, int in_h, int in_w, int in_ch, const int8_t* input,
                              int filter_h, int filter_w, const int8_t* filter,
                              const int32_t* bias, int out_h, int out_w, int8_t* output) {
  const int out_ch = in_ch * p.depth_multiplier;
  for (int b = 0; b < batches; ++b) {
    for (int oy = 0; oy < out_h; ++oy) {
      for (int ox = 0; ox < out_w; ++ox) {
        for (int ic = 0; ic < in_ch; ++ic) {
          for (int m = 0; m < p.depth_multiplier; ++m) {
            const int oc = m + ic * p.depth_multiplier;
            const int x0 = ox * p.stride_width - p.pad_width;
            const int y0 = oy * p.stride_height - p.pad_height;
            int32_t acc = 0;
            for (int fy = 0; fy < filter_h; ++fy) {
              for (int fx = 0; fx < filter_w; ++fx) {
                const int x = x0 + p.dilation_width * fx;
                const int y = y0 + p.dilation_height * fy;
                if (x >= 0 && x < in_w && y >= 0 && y < in_h) {
                  const int32_t v = input[((b * in_h + y) * in_w + x) * in_ch + ic];
                  const int32_t f = filter[(fy * filter_w + fx) * out_ch + oc];
                  acc += f * (v + p.input_offset);
                }
              }
            }
            if (bias) acc += bias[oc];
            acc = MultiplyByQuantizedMultiplier(acc, mult[oc], shift[oc]) + p.output_offset;
            output[((b * out_h + oy) * out_w + ox) * out_ch + oc] =
                static_cast<int8_t>(
                acc < p.activation_min ? p.activation_min
                                       : (acc > p.activation_max ? p.activation_max : acc));
          }
        }
      }
    }
  }
}

}  // namespace embbert
