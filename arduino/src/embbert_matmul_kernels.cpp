// The EmbBERT library's TFLM kernels for FULLY_CONNECTED and BATCH_MATMUL (see
// embbert_kernels.h): the int8 matrix cores of embbert_int8_matmul.cpp behind TFLM's
// registration interface. int8 only.
#include "tflm_embbert_tflm_config.h"
#include "embbert_kernels.h"

#include "embbert_int8_ops.h"
#include "tensorflow/lite/c/builtin_op_data.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/kernels/internal/quantization_util.h"
#include "tensorflow/lite/kernels/internal/tensor_ctypes.h"
#include "tensorflow/lite/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/fully_connected.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_utils.h"

namespace embbert {
namespace internal {
// embbert_kernels.cpp: every input (the first `inputs`) and the output of the node are int8,
// else kTfLiteError with a one-line message naming `op`.
TfLiteStatus EnsureInt8(TfLiteContext* context, TfLiteNode* node, int inputs, const char* op);
}  // namespace internal

namespace {

using internal::EnsureInt8;

template <class Data>
void* DataInit(TfLiteContext* context, const char* buffer, size_t length) {
  (void)buffer;
  (void)length;
  return context->AllocatePersistentBuffer(context, sizeof(Data));
}

// ---- FULLY_CONNECTED ----

struct FullyConnectedData {
  tflite::OpDataFullyConnected tflm;
  embbert::FullyConnectedParams params;
  int32_t* channel_offset;  // persistent: bias + input_offset * sum(weights), per channel
  int32_t shift;            // the per-tensor shift as int32 (per-channel: tflm's array)
  int scratch_index;        // -1: no 4-row blocks
  int channels;
  int depth;
};

TfLiteStatus FullyConnectedPrepareInt8(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr && node->builtin_data != nullptr);
  TF_LITE_ENSURE_STATUS(EnsureInt8(context, node, 2, "FULLY_CONNECTED"));
  auto* data = static_cast<FullyConnectedData*>(node->user_data);
  const auto* builtin = static_cast<const TfLiteFullyConnectedParams*>(node->builtin_data);
  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TfLiteTensor* input =
      micro_context->AllocateTempInputTensor(node, tflite::kFullyConnectedInputTensor);
  TfLiteTensor* filter =
      micro_context->AllocateTempInputTensor(node, tflite::kFullyConnectedWeightsTensor);
  TfLiteTensor* bias =
      micro_context->AllocateTempInputTensor(node, tflite::kFullyConnectedBiasTensor);
  TfLiteTensor* output =
      micro_context->AllocateTempOutputTensor(node, tflite::kFullyConnectedOutputTensor);
  TF_LITE_ENSURE(context, input != nullptr && filter != nullptr && output != nullptr);
  TfLiteStatus status = tflite::CalculateOpDataFullyConnected(
      context, builtin->activation, input->type, input, filter, bias, output, &data->tflm);
  const int out_rank = output->dims->size;
  const int f_rank = filter->dims->size;
  const bool ok = status == kTfLiteOk && tflite::IsConstantTensor(filter) && f_rank == 2 &&
                  out_rank >= 1 && (bias == nullptr || bias->type == kTfLiteInt32);
  if (ok) {
    data->channels = output->dims->data[out_rank - 1];
    data->depth = filter->dims->data[1];
    FullyConnectedParams& p = data->params;
    p.input_offset = -data->tflm.input_zero_point;
    // FullyConnectedPerChannel ignores the filter zero point; FullyConnected adds it.
    p.filter_offset = data->tflm.is_per_channel ? 0 : -data->tflm.filter_zero_point;
    p.output_offset = data->tflm.output_zero_point;
    p.activation_min = data->tflm.output_activation_min;
    p.activation_max = data->tflm.output_activation_max;
    data->shift = data->tflm.output_shift;
    data->channel_offset = static_cast<int32_t*>(
        context->AllocatePersistentBuffer(context, sizeof(int32_t) * data->channels));
    status = data->channel_offset != nullptr ? kTfLiteOk : kTfLiteError;
    if (status == kTfLiteOk) {
      FullyConnectedChannelOffsets(
          p, tflite::GetTensorData<int8_t>(filter),
          bias != nullptr ? tflite::GetTensorData<int32_t>(bias) : nullptr, data->channels,
          data->depth, data->channel_offset);
    }
    const int batches = data->channels > 0 ? tflite::ElementCount(*output->dims) / data->channels
                                           : 0;
    data->scratch_index = -1;
    const int words = FullyConnectedScratchWords(data->depth);
    if (status == kTfLiteOk && batches >= 4 && words > 0) {
      status = context->RequestScratchBufferInArena(context, sizeof(uint32_t) * words,
                                                    &data->scratch_index);
    }
  }
  micro_context->DeallocateTempTfLiteTensor(input);
  micro_context->DeallocateTempTfLiteTensor(filter);
  if (bias != nullptr) micro_context->DeallocateTempTfLiteTensor(bias);
  micro_context->DeallocateTempTfLiteTensor(output);
  if (!ok) {
    MicroPrintf("embbert FULLY_CONNECTED kernel: constant 2-D int8 weights, int32 bias expected");
    return kTfLiteError;
  }
  return status;
}

TfLiteStatus FullyConnectedEvalInt8(TfLiteContext* context, TfLiteNode* node) {
  const auto* data = static_cast<const FullyConnectedData*>(node->user_data);
  const TfLiteEvalTensor* input =
      tflite::micro::GetEvalInput(context, node, tflite::kFullyConnectedInputTensor);
  const TfLiteEvalTensor* filter =
      tflite::micro::GetEvalInput(context, node, tflite::kFullyConnectedWeightsTensor);
  TfLiteEvalTensor* output =
      tflite::micro::GetEvalOutput(context, node, tflite::kFullyConnectedOutputTensor);
  const int batches = tflite::ElementCount(*output->dims) / data->channels;
  auto* scratch =
      data->scratch_index >= 0
          ? static_cast<uint32_t*>(context->GetScratchBuffer(context, data->scratch_index))
          : nullptr;
  const bool per_channel = data->tflm.is_per_channel;
  FullyConnectedInt8(data->params, data->channel_offset,
                     per_channel ? data->tflm.per_channel_output_multiplier
                                 : &data->tflm.output_multiplier,
                     per_channel ? data->tflm.per_channel_output_shift : &data->shift,
                     per_channel, batches, data->depth, data->channels,
                     tflite::micro::GetTensorData<int8_t>(input),
                     tflite::micro::GetTensorData<int8_t>(filter), scratch,
                     tflite::micro::GetTensorData<int8_t>(output));
  return kTfLiteOk;
}

// ---- BATCH_MATMUL ----

struct BatchMatMulData {
  embbert::FullyConnectedParams params;
  int32_t multiplier;
  int32_t shift;
  int batches;
  bool lhs_broadcast;
  bool rhs_broadcast;
  bool rhs_transposed;  // adj_y
  int rows;
  int depth;
  int cols;
  int scratch_index;
};

// Product of the dimensions before the last two.
int BatchCount(const TfLiteIntArray* dims) {
  int n = 1;
  for (int i = 0; i + 2 < dims->size; ++i) n *= dims->data[i];
  return n;
}

TfLiteStatus BatchMatMulPrepareInt8(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr && node->builtin_data != nullptr);
  TF_LITE_ENSURE_STATUS(EnsureInt8(context, node, 2, "BATCH_MATMUL"));
  auto* data = static_cast<BatchMatMulData*>(node->user_data);
  const auto* builtin = static_cast<const TfLiteBatchMatMulParams*>(node->builtin_data);
  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TfLiteTensor* lhs = micro_context->AllocateTempInputTensor(node, 0);
  TfLiteTensor* rhs = micro_context->AllocateTempInputTensor(node, 1);
  TfLiteTensor* output = micro_context->AllocateTempOutputTensor(node, 0);
  TF_LITE_ENSURE(context, lhs != nullptr && rhs != nullptr && output != nullptr);
  double real_multiplier = 0.0;
  TfLiteStatus status = tflite::GetQuantizedConvolutionMultipler(context, lhs, rhs, output,
                                                                 &real_multiplier);
  int shift = 0;
  tflite::QuantizeMultiplier(real_multiplier, &data->multiplier, &shift);
  data->shift = shift;
  FullyConnectedParams& p = data->params;
  p.input_offset = -lhs->params.zero_point;
  p.filter_offset = -rhs->params.zero_point;
  p.output_offset = output->params.zero_point;
  p.activation_min = -128;
  p.activation_max = 127;
  const TfLiteIntArray* l = lhs->dims;
  const TfLiteIntArray* r = rhs->dims;
  const bool ranks = l->size >= 2 && r->size >= 2 && output->dims->size >= 2;
  const int lhs_batches = ranks ? BatchCount(l) : 0;
  const int rhs_batches = ranks ? BatchCount(r) : 0;
  data->batches = ranks ? BatchCount(output->dims) : 0;
  data->lhs_broadcast = lhs_batches == 1 && data->batches > 1;
  data->rhs_broadcast = rhs_batches == 1 && data->batches > 1;
  data->rhs_transposed = builtin->adj_y;
  if (ranks) {
    data->rows = l->data[l->size - 2];
    data->depth = l->data[l->size - 1];
    data->cols = builtin->adj_y ? r->data[r->size - 2] : r->data[r->size - 1];
  }
  const int rhs_depth = ranks ? (builtin->adj_y ? r->data[r->size - 1] : r->data[r->size - 2]) : 0;
  const bool ok = status == kTfLiteOk && ranks && !builtin->adj_x &&
                  rhs_depth == data->depth &&
                  (lhs_batches == data->batches || data->lhs_broadcast) &&
                  (rhs_batches == data->batches || data->rhs_broadcast);
  micro_context->DeallocateTempTfLiteTensor(lhs);
  micro_context->DeallocateTempTfLiteTensor(rhs);
  micro_context->DeallocateTempTfLiteTensor(output);
  if (!ok) {
    MicroPrintf("embbert BATCH_MATMUL kernel: adj_x false and batches equal or 1 expected");
    return kTfLiteError;
  }
  const int words =
      BatchMatMulScratchWords(data->rows, data->depth, data->cols, data->rhs_transposed);
  return context->RequestScratchBufferInArena(context, sizeof(uint32_t) * words,
                                              &data->scratch_index);
}

TfLiteStatus BatchMatMulEvalInt8(TfLiteContext* context, TfLiteNode* node) {
  const auto* data = static_cast<const BatchMatMulData*>(node->user_data);
  const TfLiteEvalTensor* lhs = tflite::micro::GetEvalInput(context, node, 0);
  const TfLiteEvalTensor* rhs = tflite::micro::GetEvalInput(context, node, 1);
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, 0);
  auto* scratch = static_cast<uint32_t*>(context->GetScratchBuffer(context, data->scratch_index));
  BatchMatMulInt8(data->params, data->multiplier, data->shift, data->batches,
                  data->lhs_broadcast, data->rhs_broadcast, data->rows, data->depth, data->cols,
                  data->rhs_transposed, tflite::micro::GetTensorData<int8_t>(lhs),
                  tflite::micro::GetTensorData<int8_t>(rhs), scratch,
                  tflite::micro::GetTensorData<int8_t>(output));
  return kTfLiteOk;
}

}  // namespace

TFLMRegistration Register_FULLY_CONNECTED_INT8() {
  return tflite::micro::RegisterOp(DataInit<FullyConnectedData>, FullyConnectedPrepareInt8,
                                   FullyConnectedEvalInt8);
}

TFLMRegistration Register_BATCH_MATMUL_INT8() {
  return tflite::micro::RegisterOp(DataInit<BatchMatMulData>, BatchMatMulPrepareInt8,
                                   BatchMatMulEvalInt8);
}

}  // namespace embbert
