// The EmbBERT library's TFLM kernels (see embbert_kernels.h); the arithmetic is TFLM's own
// reference code, evaluated once per quantization into a table (embbert_lut.h).
#include "tflm_embbert_tflm_config.h"
#include "embbert_kernels.h"

#include "embbert_lut.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/logistic.h"
#include "tensorflow/lite/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/logistic.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_utils.h"

namespace embbert {
namespace {

struct Int8Table {
  int8_t table[kInt8Values];
};

void* TableInit(TfLiteContext* context, const char* buffer, size_t length) {
  (void)buffer;
  (void)length;
  return context->AllocatePersistentBuffer(context, sizeof(Int8Table));
}

TfLiteStatus LogisticPrepare(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TfLiteTensor* input =
      micro_context->AllocateTempInputTensor(node, tflite::kLogisticInputTensor);
  TF_LITE_ENSURE(context, input != nullptr);
  const bool is_int8 = input->type == kTfLiteInt8;
  micro_context->DeallocateTempTfLiteTensor(input);
  TF_LITE_ENSURE_MSG(context, is_int8, "embbert LOGISTIC table kernel: int8 only");
  tflite::OpDataLogistic op;
  TF_LITE_ENSURE_STATUS(tflite::CalculateArithmeticOpDataLogistic(context, node, &op));
  FillInt8Table(
      [&op](const int8_t* in, int8_t* out, int count) {
        tflite::reference_integer_ops::Logistic(op.input_zero_point, op.input_range_radius,
                                                op.input_multiplier, op.input_left_shift,
                                                count, in, out);
      },
      static_cast<Int8Table*>(node->user_data)->table);
  return kTfLiteOk;
}

TfLiteStatus TableEval(TfLiteContext* context, TfLiteNode* node) {
  const TfLiteEvalTensor* input = tflite::micro::GetEvalInput(context, node, 0);
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, 0);
  ApplyInt8Table(static_cast<const Int8Table*>(node->user_data)->table,
                 tflite::micro::GetTensorData<int8_t>(input),
                 tflite::micro::GetTensorData<int8_t>(output),
                 static_cast<size_t>(tflite::ElementCount(*input->dims)));
  return kTfLiteOk;
}

}  // namespace

TFLMRegistration Register_LOGISTIC_INT8_TABLE() {
  return tflite::micro::RegisterOp(TableInit, LogisticPrepare, TableEval);
}

}  // namespace embbert
