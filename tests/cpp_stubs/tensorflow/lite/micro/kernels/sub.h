// Stub: tensorflow/lite/micro/kernels/sub.h, the subset used.
#ifndef EMBBERT_STUB_SUB_H_
#define EMBBERT_STUB_SUB_H_
#include "tensorflow/lite/c/common.h"
namespace tflite {
struct OpDataSub {
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
};
TfLiteStatus SubPrepare(TfLiteContext* context, TfLiteNode* node);
}  // namespace tflite
#endif  // EMBBERT_STUB_SUB_H_
