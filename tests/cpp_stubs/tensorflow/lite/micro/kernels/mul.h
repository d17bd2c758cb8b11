// Stub: tensorflow/lite/micro/kernels/mul.h, the subset used.
#ifndef EMBBERT_STUB_MUL_H_
#define EMBBERT_STUB_MUL_H_
#include "tensorflow/lite/c/common.h"
namespace tflite {
struct OpDataMul {
  int32_t input1_zero_point;
  int32_t input2_zero_point;
  int32_t output_activation_min;
  int32_t output_activation_max;
  int32_t output_zero_point;
  int32_t output_multiplier;
  int output_shift;
  float output_activation_min_f32;
  float output_activation_max_f32;
};
TfLiteStatus MulPrepare(TfLiteContext* context, TfLiteNode* node);
}  // namespace tflite
#endif  // EMBBERT_STUB_MUL_H_
