// Stub: tensorflow/lite/micro/kernels/softmax.h, the subset used.
#ifndef EMBBERT_STUB_SOFTMAX_H_
#define EMBBERT_STUB_SOFTMAX_H_
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/kernels/internal/types.h"
namespace tflite {
TfLiteStatus SoftmaxPrepare(TfLiteContext* context, TfLiteNode* node);
}  // namespace tflite
#endif  // EMBBERT_STUB_SOFTMAX_H_
