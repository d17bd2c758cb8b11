// Stub: tensorflow/lite/micro/kernels/sub.h, the subset used.
#ifndef EMBBERT_STUB_SUB_H_
#define EMBBERT_STUB_SUB_H_
#include "tensorflow/lite/c/common.h"
namespace tflite {
struct OpDataSub {
#include "tensorflow/lite/micro/kernels/embbert_stub_arithmetic_fields.inc"
};
TfLiteStatus SubPrepare(TfLiteContext* context, TfLiteNode* node);
}  // namespace tflite
#endif  // EMBBERT_STUB_SUB_H_
