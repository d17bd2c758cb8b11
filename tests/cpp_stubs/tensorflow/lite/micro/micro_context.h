// Stub: tensorflow/lite/micro/micro_context.h, the subset used.
#ifndef EMBBERT_STUB_MICRO_CONTEXT_H_
#define EMBBERT_STUB_MICRO_CONTEXT_H_
#include "tensorflow/lite/c/common.h"
namespace tflite {
class MicroContext {
 public:
  virtual ~MicroContext() = default;
  TfLiteTensor* AllocateTempInputTensor(const TfLiteNode* node, int index);
  TfLiteTensor* AllocateTempOutputTensor(const TfLiteNode* node, int index);
  virtual void DeallocateTempTfLiteTensor(TfLiteTensor* tensor) = 0;
};
MicroContext* GetMicroContext(const struct TfLiteContext* context);
}  // namespace tflite
#endif  // EMBBERT_STUB_MICRO_CONTEXT_H_
