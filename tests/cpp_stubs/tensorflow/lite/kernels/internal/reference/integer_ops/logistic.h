// Stub: tensorflow/lite/kernels/internal/reference/integer_ops/logistic.h (int8 overload).
#ifndef EMBBERT_STUB_LOGISTIC_REF_H_
#define EMBBERT_STUB_LOGISTIC_REF_H_
#include <stdint.h>
namespace tflite {
namespace reference_integer_ops {
void Logistic(int32_t input_zero_point, int32_t input_range_radius,
                     int32_t input_multiplier, int32_t input_left_shift, int32_t input_size,
                     const int8_t* input_data, int8_t* output_data);
}  // namespace reference_integer_ops
}  // namespace tflite
#endif  // EMBBERT_STUB_LOGISTIC_REF_H_
