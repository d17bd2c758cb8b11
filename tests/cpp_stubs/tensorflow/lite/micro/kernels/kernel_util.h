// Stub: tensorflow/lite/micro/kernels/kernel_util.h, the subset used.
#ifndef EMBBERT_STUB_MICRO_KERNEL_UTIL_H_
#define EMBBERT_STUB_MICRO_KERNEL_UTIL_H_
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/micro_common.h"
namespace tflite {
namespace micro {
TFLMRegistration RegisterOp(
    void* (*init)(TfLiteContext* context, const char* buffer, size_t length),
    TfLiteStatus (*prepare)(TfLiteContext* context, TfLiteNode* node),
    TfLiteStatus (*invoke)(TfLiteContext* context, TfLiteNode* node),
    void (*free)(TfLiteContext* context, void* buffer) = nullptr,
    void (*reset)(TfLiteContext* context, void* buffer) = nullptr);
const TfLiteEvalTensor* GetEvalInput(const TfLiteContext* context, const TfLiteNode* node,
                                     int index);
TfLiteEvalTensor* GetEvalOutput(const TfLiteContext* context, const TfLiteNode* node,
                                int index);
template <typename T>
T* GetTensorData(TfLiteEvalTensor* tensor);
template <typename T>
const T* GetTensorData(const TfLiteEvalTensor* tensor);
template <typename T>
const T* GetOptionalTensorData(const TfLiteEvalTensor* tensor);
}  // namespace micro
}  // namespace tflite
#endif  // EMBBERT_STUB_MICRO_KERNEL_UTIL_H_
