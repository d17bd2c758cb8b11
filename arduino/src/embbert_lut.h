// Lookup-table int8 kernels of the EmbBERT library: the part that needs no TFLM (tested on the
// host, counted under QEMU). An int8 elementwise op whose output depends on its input value only
// (LOGISTIC in TFLM's reference integer kernel) takes one of 256 values per quantization: the
// table is filled once, in Prepare, by TFLM's own reference function over all 256 inputs, so a
// lookup gives the reference kernel's output bit for bit.
#ifndef EMBBERT_LUT_H_
#define EMBBERT_LUT_H_

#include <stddef.h>
#include <stdint.h>

namespace embbert {

constexpr int kInt8Values = 256;

// table[v + 128] = element_fn(v) for every int8 v; element_fn maps (const int8_t* in, int8_t*
// out, int count) like TFLM's reference kernels do.
template <class ElementFn>
inline void FillInt8Table(ElementFn element_fn, int8_t table[kInt8Values]) {
  int8_t all[kInt8Values];
  for (int i = 0; i < kInt8Values; ++i) all[i] = static_cast<int8_t>(i - 128);
  element_fn(all, table, kInt8Values);
}

// out[i] = table[in[i] + 128]; in and out may be the same buffer.
inline void ApplyInt8Table(const int8_t table[kInt8Values], const int8_t* in, int8_t* out,
                           size_t count) {
  const int8_t* centre = table + 128;
  size_t i = 0;
  for (; i + 4 <= count; i += 4) {
    const int8_t a = centre[in[i]], b = centre[in[i + 1]];
    const int8_t c = centre[in[i + 2]], d = centre[in[i + 3]];
    out[i] = a;
    out[i + 1] = b;
    out[i + 2] = c;
    out[i + 3] = d;
  }
  for (; i < count; ++i) out[i] = centre[in[i]];
}

}  // namespace embbert

#endif  // EMBBERT_LUT_H_
