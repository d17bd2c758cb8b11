// Stub: tensorflow/lite/micro/kernels/depthwise_conv.h, the subset used.
#ifndef EMBBERT_STUB_DEPTHWISE_CONV_H_
#define EMBBERT_STUB_DEPTHWISE_CONV_H_
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/micro/kernels/conv.h"
namespace tflite {
extern const int kDepthwiseConvInputTensor;
extern const int kDepthwiseConvWeightsTensor;
extern const int kDepthwiseConvBiasTensor;
extern const int kDepthwiseConvOutputTensor;
TfLiteStatus DepthwiseConvPrepare(TfLiteContext* context, TfLiteNode* node);
}  // namespace tflite
#endif  // EMBBERT_STUB_DEPTHWISE_CONV_H_
