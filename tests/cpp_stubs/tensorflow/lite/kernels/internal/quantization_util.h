// Stub: tensorflow/lite/kernels/internal/quantization_util.h, the subset used.
#ifndef EMBBERT_STUB_QUANTIZATION_UTIL_H_
#define EMBBERT_STUB_QUANTIZATION_UTIL_H_
#include <stdint.h>
namespace tflite {
void QuantizeMultiplier(double double_multiplier, int32_t* quantized_multiplier, int* shift);
}  // namespace tflite
#endif  // EMBBERT_STUB_QUANTIZATION_UTIL_H_
