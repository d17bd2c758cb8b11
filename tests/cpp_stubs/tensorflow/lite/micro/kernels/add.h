// Stub: tensorflow/lite/micro/kernels/add.h, the subset used.
#ifndef EMBBERT_STUB_ADD_H_
#define EMBBERT_STUB_ADD_H_
#include "tensorflow/lite/c/common.h"
namespace tflite {
struct OpDataAdd {
  bool requires_broadcast;
  int input1_shift;
  int input2_shift;
  int32_t output_activation_min;
  int32_t output_activation_max;
  int32_t input1_multiplier;
  int32_t input2_multiplier;
  int32_t output_multiplier;
  int output_shift;
  int left_shift;
  int32_t input1_offset;
  int32_t input2_offset;
  int32_t output_offset;
  float output_activation_min_f32;
  float output_activation_max_f32;
};
TfLiteStatus AddPrepare(TfLiteContext* context, TfLiteNode* node);
}  // namespace tflite
#endif  // EMBBERT_STUB_ADD_H_
