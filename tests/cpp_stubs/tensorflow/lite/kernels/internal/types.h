// Stub: tensorflow/lite/kernels/internal/types.h, SoftmaxParams.
#ifndef EMBBERT_STUB_TYPES_H_
#define EMBBERT_STUB_TYPES_H_
#include <stdint.h>
namespace tflite {
struct SoftmaxParams {
  double beta;
  int32_t input_multiplier;
  int32_t input_left_shift;
  int32_t reverse_scaling_divisor;
  int32_t reverse_scaling_right_shift;
  int diff_min;
  int32_t zero_point;
  float scale;
  float* table;
  int16_t* exp_lut;
  int16_t* one_over_one_plus_x_lut;
  uint8_t* uint8_table1;
  uint8_t* uint8_table2;
};
}  // namespace tflite
#endif  // EMBBERT_STUB_TYPES_H_
