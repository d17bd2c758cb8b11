// Stub: tensorflow/lite/micro/micro_utils.h, the subset used.
#ifndef EMBBERT_STUB_MICRO_UTILS_H_
#define EMBBERT_STUB_MICRO_UTILS_H_
#include "tensorflow/lite/c/common.h"
namespace tflite {
int ElementCount(const TfLiteIntArray& dims);
}  // namespace tflite
#endif  // EMBBERT_STUB_MICRO_UTILS_H_
