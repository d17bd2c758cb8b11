// Stub: tensorflow/lite/micro/kernels/add.h, the subset used.
#ifndef EMBBERT_STUB_ADD_H_
#define EMBBERT_STUB_ADD_H_
#include "tensorflow/lite/c/common.h"
namespace tflite {
struct OpDataAdd {
#include "tensorflow/lite/micro/kernels/embbert_stub_arithmetic_fields.inc"
  float output_activation_min_f32;
  float output_activation_max_f32;
};
TfLiteStatus AddPrepare(TfLiteContext* context, TfLiteNode* node);
}  // namespace tflite
#endif  // EMBBERT_STUB_ADD_H_
