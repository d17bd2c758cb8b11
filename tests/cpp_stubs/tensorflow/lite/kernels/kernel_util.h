// Stub: tensorflow/lite/kernels/kernel_util.h, the subset used.
#ifndef EMBBERT_STUB_KERNEL_UTIL_H_
#define EMBBERT_STUB_KERNEL_UTIL_H_
#include "tensorflow/lite/c/common.h"
namespace tflite {
int64_t NumElements(const TfLiteTensor* t);
bool IsConstantTensor(const TfLiteTensor* tensor);
TfLiteStatus GetQuantizedConvolutionMultipler(TfLiteContext* context, const TfLiteTensor* input,
                                              const TfLiteTensor* filter, TfLiteTensor* output,
                                              double* multiplier);
}  // namespace tflite
#endif  // EMBBERT_STUB_KERNEL_UTIL_H_
