// Stub: tensorflow/lite/kernels/internal/tensor_ctypes.h.
#ifndef EMBBERT_STUB_TENSOR_CTYPES_H_
#define EMBBERT_STUB_TENSOR_CTYPES_H_
#include "tensorflow/lite/c/common.h"
namespace tflite {
template <typename T>
T* GetTensorData(TfLiteTensor* tensor);
template <typename T>
const T* GetTensorData(const TfLiteTensor* tensor);
}  // namespace tflite
#endif  // EMBBERT_STUB_TENSOR_CTYPES_H_
