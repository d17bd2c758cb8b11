// Stub: tensorflow/lite/micro/kernels/logistic.h.
#ifndef EMBBERT_STUB_LOGISTIC_H_
#define EMBBERT_STUB_LOGISTIC_H_
#include "tensorflow/lite/c/common.h"
namespace tflite {
extern const int kLogisticInputTensor;
extern const int kLogisticOutputTensor;
struct OpDataLogistic {
  int32_t input_zero_point;
  int32_t input_range_radius;
  int32_t input_multiplier;
  int input_left_shift;
};
TfLiteStatus CalculateArithmeticOpDataLogistic(TfLiteContext* context, TfLiteNode* node,
                                               OpDataLogistic* data);
}  // namespace tflite
#endif  // EMBBERT_STUB_LOGISTIC_H_
