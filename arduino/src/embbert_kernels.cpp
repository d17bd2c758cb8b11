// The EmbBERT library's TFLM kernels (see embbert_kernels.h). LOGISTIC: TFLM's own reference
// code, evaluated once per quantization into a table (embbert_lut.h). The others: TFLM's own
// Prepare computes the op data (multipliers, shifts, scratch buffers: the arena need is TFLM's),
// stored as the first member of this library's node data; Invoke runs the library's cores
// (embbert_int8_ops.h), bit-exact with TFLM's reference integer kernels. int8 only.
#include "tflm_embbert_tflm_config.h"
#include "embbert_kernels.h"

#include "embbert_int8_ops.h"
#include "embbert_lut.h"
#include "tensorflow/lite/c/builtin_op_data.h"
#include "tensorflow/lite/c/common.h"
#include "tensorflow/lite/kernels/internal/reference/integer_ops/logistic.h"
#include "tensorflow/lite/kernels/internal/tensor_ctypes.h"
#include "tensorflow/lite/kernels/internal/types.h"
#include "tensorflow/lite/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/add.h"
#include "tensorflow/lite/micro/kernels/conv.h"
#include "tensorflow/lite/micro/kernels/depthwise_conv.h"
#include "tensorflow/lite/micro/kernels/kernel_util.h"
#include "tensorflow/lite/micro/kernels/logistic.h"
#include "tensorflow/lite/micro/kernels/mul.h"
#include "tensorflow/lite/micro/kernels/reduce.h"
#include "tensorflow/lite/micro/kernels/softmax.h"
#include "tensorflow/lite/micro/kernels/sub.h"
#include "tensorflow/lite/micro/micro_context.h"
#include "tensorflow/lite/micro/micro_log.h"
#include "tensorflow/lite/micro/micro_utils.h"

namespace embbert {
namespace internal {

// Every input and output of the node is int8 (else a one-line error naming the op).
TfLiteStatus EnsureInt8(TfLiteContext* context, TfLiteNode* node, int inputs, const char* op) {
  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  bool ok = true;
  for (int i = 0; i < inputs; ++i) {
    TfLiteTensor* t = micro_context->AllocateTempInputTensor(node, i);
    TF_LITE_ENSURE(context, t != nullptr);
    ok = ok && t->type == kTfLiteInt8;
    micro_context->DeallocateTempTfLiteTensor(t);
  }
  TfLiteTensor* out = micro_context->AllocateTempOutputTensor(node, 0);
  TF_LITE_ENSURE(context, out != nullptr);
  ok = ok && out->type == kTfLiteInt8;
  micro_context->DeallocateTempTfLiteTensor(out);
  if (!ok) {
    MicroPrintf("embbert %s kernel: int8 tensors only", op);
    return kTfLiteError;
  }
  return kTfLiteOk;
}

}  // namespace internal

namespace {

using internal::EnsureInt8;

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

// ---- shared helpers ----

template <class Data>
void* DataInit(TfLiteContext* context, const char* buffer, size_t length) {
  (void)buffer;
  (void)length;
  return context->AllocatePersistentBuffer(context, sizeof(Data));
}

// ---- ADD / SUB / MUL ----

template <class TflmData>
struct BinaryData {
  TflmData tflm;  // first: TFLM's Prepare writes it through node->user_data
  ArithmeticParams params;
  Broadcast4 shape;
  int table_index;  // ADD / SUB with >= kBinaryTableMinElements outputs: a scratch, else -1
};

// tflite::OpDataAdd and OpDataSub name their fields alike; ArithmeticParams lists them in order.
template <class AddOrSub>
void FillAddSub(const AddOrSub& d, ArithmeticParams* p) {
  *p = ArithmeticParams{d.input1_offset,      d.input2_offset,         d.output_offset,
                        d.left_shift,         d.input1_multiplier,     d.input1_shift,
                        d.input2_multiplier,  d.input2_shift,          d.output_multiplier,
                        d.output_shift,       d.output_activation_min, d.output_activation_max};
}

void Fill(const tflite::OpDataAdd& d, ArithmeticParams* p) { FillAddSub(d, p); }
void Fill(const tflite::OpDataSub& d, ArithmeticParams* p) { FillAddSub(d, p); }

// MUL: no input rescaling (left shift, input multipliers and shifts 0).
void Fill(const tflite::OpDataMul& d, ArithmeticParams* p) {
  *p = ArithmeticParams{-d.input1_zero_point, -d.input2_zero_point,    d.output_zero_point,
                        0,                    0,                       0,
                        0,                    0,                       d.output_multiplier,
                        d.output_shift,       d.output_activation_min, d.output_activation_max};
}

template <class TflmData, TfLiteStatus (*kTflmPrepare)(TfLiteContext*, TfLiteNode*),
          bool kUseTables>
TfLiteStatus BinaryPrepare(TfLiteContext* context, TfLiteNode* node, const char* op) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  TF_LITE_ENSURE_STATUS(EnsureInt8(context, node, 2, op));
  TF_LITE_ENSURE_STATUS(kTflmPrepare(context, node));
  auto* data = static_cast<BinaryData<TflmData>*>(node->user_data);
  Fill(data->tflm, &data->params);
  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TfLiteTensor* a = micro_context->AllocateTempInputTensor(node, 0);
  TfLiteTensor* b = micro_context->AllocateTempInputTensor(node, 1);
  const bool ok = MakeBroadcast4(a->dims->data, a->dims->size, b->dims->data, b->dims->size,
                                 &data->shape);
  micro_context->DeallocateTempTfLiteTensor(a);
  micro_context->DeallocateTempTfLiteTensor(b);
  if (!ok) {
    MicroPrintf("embbert %s kernel: inputs of rank <= 4 that broadcast expected", op);
    return kTfLiteError;
  }
  data->table_index = -1;
  const Broadcast4& shape = data->shape;
  const int32_t elements = shape.dims[0] * shape.dims[1] * shape.dims[2] * shape.dims[3];
  if (kUseTables && elements >= kBinaryTableMinElements) {
    return context->RequestScratchBufferInArena(context, sizeof(int32_t) * kBinaryTableWords,
                                                &data->table_index);
  }
  return kTfLiteOk;
}

template <class TflmData, BinaryOp kOp>
TfLiteStatus BinaryEval(TfLiteContext* context, TfLiteNode* node) {
  const auto* data = static_cast<const BinaryData<TflmData>*>(node->user_data);
  const TfLiteEvalTensor* a = tflite::micro::GetEvalInput(context, node, 0);
  const TfLiteEvalTensor* b = tflite::micro::GetEvalInput(context, node, 1);
  TfLiteEvalTensor* out = tflite::micro::GetEvalOutput(context, node, 0);
  auto* tables = data->table_index >= 0 ? static_cast<int32_t*>(context->GetScratchBuffer(
                                               context, data->table_index))
                                         : nullptr;
  BinaryInt8(kOp, data->params, data->shape, tflite::micro::GetTensorData<int8_t>(a),
             tflite::micro::GetTensorData<int8_t>(b), tflite::micro::GetTensorData<int8_t>(out),
             tables);
  return kTfLiteOk;
}

TfLiteStatus AddPrepareInt8(TfLiteContext* context, TfLiteNode* node) {
  return BinaryPrepare<tflite::OpDataAdd, tflite::AddPrepare, true>(context, node, "ADD");
}
TfLiteStatus SubPrepareInt8(TfLiteContext* context, TfLiteNode* node) {
  return BinaryPrepare<tflite::OpDataSub, tflite::SubPrepare, true>(context, node, "SUB");
}
TfLiteStatus MulPrepareInt8(TfLiteContext* context, TfLiteNode* node) {
  return BinaryPrepare<tflite::OpDataMul, tflite::MulPrepare, false>(context, node, "MUL");
}

// ---- MEAN ----

struct MeanData {
  tflite::OpDataReduce tflm;
  embbert::MeanParams params;
  int32_t dims[8];
  int rank;
  unsigned axis_mask;
};

TfLiteStatus MeanPrepareInt8(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  TF_LITE_ENSURE_STATUS(EnsureInt8(context, node, 1, "MEAN"));
  auto* data = static_cast<MeanData*>(node->user_data);
  TF_LITE_ENSURE_STATUS(tflite::PrepareMeanOrSumHelper(context, node, &data->tflm));
  data->params.input_zero_point = data->tflm.input_zp;
  data->params.output_zero_point = data->tflm.output_zp;
  data->params.multiplier = data->tflm.multiplier;
  data->params.shift = data->tflm.shift;
  tflite::MicroContext* micro_context = tflite::GetMicroContext(context);
  TfLiteTensor* input = micro_context->AllocateTempInputTensor(node, 0);
  TfLiteTensor* axis = micro_context->AllocateTempInputTensor(node, 1);
  TF_LITE_ENSURE(context, input != nullptr && axis != nullptr);
  const int rank = input->dims->size;
  bool ok = rank <= 8 && tflite::IsConstantTensor(axis) && axis->type == kTfLiteInt32;
  data->rank = rank;
  data->axis_mask = 0;
  for (int d = 0; ok && d < rank; ++d) data->dims[d] = input->dims->data[d];
  const int axes = ok ? static_cast<int>(tflite::NumElements(axis)) : 0;
  for (int i = 0; ok && i < axes; ++i) {
    int a = tflite::GetTensorData<int32_t>(axis)[i];
    if (a < 0) a += rank;
    ok = a >= 0 && a < rank;
    if (ok) data->axis_mask |= 1u << a;
  }
  micro_context->DeallocateTempTfLiteTensor(input);
  micro_context->DeallocateTempTfLiteTensor(axis);
  if (!ok) {
    MicroPrintf("embbert MEAN kernel: a constant int32 axis and rank <= 8 expected");
    return kTfLiteError;
  }
  return kTfLiteOk;
}

TfLiteStatus MeanEvalInt8(TfLiteContext* context, TfLiteNode* node) {
  const auto* data = static_cast<const MeanData*>(node->user_data);
  const TfLiteEvalTensor* input = tflite::micro::GetEvalInput(context, node, 0);
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, 0);
  const int8_t* in = tflite::micro::GetTensorData<int8_t>(input);
  int8_t* out = tflite::micro::GetTensorData<int8_t>(output);
  const int last = data->rank - 1;
  if (data->rank >= 1 && data->axis_mask == (1u << last)) {
    int rows = 1;
    for (int d = 0; d < last; ++d) rows *= data->dims[d];
    MeanLastAxisInt8(data->params, in, rows, data->dims[last], out);
  } else {
    auto* temp_sum = static_cast<int32_t*>(
        context->GetScratchBuffer(context, data->tflm.scratch_accumulator_idx));
    MeanInt8(data->params, in, data->dims, data->rank, data->axis_mask, temp_sum, out);
  }
  return kTfLiteOk;
}

// ---- SOFTMAX ----

struct SoftmaxData {
  tflite::SoftmaxParams tflm;
  int32_t exp_table[kSoftmaxTableSize];
};

TfLiteStatus SoftmaxPrepareInt8(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  TF_LITE_ENSURE_STATUS(EnsureInt8(context, node, 1, "SOFTMAX"));
  auto* data = static_cast<SoftmaxData*>(node->user_data);
  TF_LITE_ENSURE_STATUS(tflite::SoftmaxPrepare(context, node));
  SoftmaxInt8Table(data->tflm.input_multiplier, data->tflm.input_left_shift,
                   data->tflm.diff_min, data->exp_table);
  return kTfLiteOk;
}

TfLiteStatus SoftmaxEvalInt8(TfLiteContext* context, TfLiteNode* node) {
  const auto* data = static_cast<const SoftmaxData*>(node->user_data);
  const TfLiteEvalTensor* input = tflite::micro::GetEvalInput(context, node, 0);
  TfLiteEvalTensor* output = tflite::micro::GetEvalOutput(context, node, 0);
  const int rank = input->dims->size;
  const int depth = rank > 0 ? input->dims->data[rank - 1] : 1;
  const int rows = depth > 0 ? tflite::ElementCount(*input->dims) / depth : 0;
  SoftmaxInt8(data->exp_table, tflite::micro::GetTensorData<int8_t>(input), rows, depth,
              tflite::micro::GetTensorData<int8_t>(output));
  return kTfLiteOk;
}

// ---- DEPTHWISE_CONV_2D ----

struct DepthwiseData {
  tflite::OpDataConv tflm;
  embbert::DepthwiseParams params;
};

TfLiteStatus DepthwisePrepareInt8(TfLiteContext* context, TfLiteNode* node) {
  TF_LITE_ENSURE(context, node->user_data != nullptr);
  TF_LITE_ENSURE_STATUS(EnsureInt8(context, node, 2, "DEPTHWISE_CONV_2D"));
  auto* data = static_cast<DepthwiseData*>(node->user_data);
  TF_LITE_ENSURE_STATUS(tflite::DepthwiseConvPrepare(context, node));
  const auto& builtin = *static_cast<const TfLiteDepthwiseConvParams*>(node->builtin_data);
  DepthwiseParams& p = data->params;
  p.input_offset = -data->tflm.input_zero_point;
  p.output_offset = data->tflm.output_zero_point;
  p.activation_min = data->tflm.output_activation_min;
  p.activation_max = data->tflm.output_activation_max;
  p.stride_height = builtin.stride_height;
  p.stride_width = builtin.stride_width;
  p.dilation_height = builtin.dilation_height_factor;
  p.dilation_width = builtin.dilation_width_factor;
  p.pad_height = data->tflm.padding.height;
  p.pad_width = data->tflm.padding.width;
  p.depth_multiplier = builtin.depth_multiplier;
  return kTfLiteOk;
}

TfLiteStatus DepthwiseEvalInt8(TfLiteContext* context, TfLiteNode* node) {
  const auto* data = static_cast<const DepthwiseData*>(node->user_data);
  const TfLiteEvalTensor* input =
      tflite::micro::GetEvalInput(context, node, tflite::kDepthwiseConvInputTensor);
  const TfLiteEvalTensor* filter =
      tflite::micro::GetEvalInput(context, node, tflite::kDepthwiseConvWeightsTensor);
  const TfLiteEvalTensor* bias =
      node->inputs->size == 3
          ? tflite::micro::GetEvalInput(context, node, tflite::kDepthwiseConvBiasTensor)
          : nullptr;
  TfLiteEvalTensor* output =
      tflite::micro::GetEvalOutput(context, node, tflite::kDepthwiseConvOutputTensor);
  const int* in = input->dims->data;
  const int* f = filter->dims->data;
  const int* o = output->dims->data;
  TF_LITE_ENSURE(context, in[3] * data->params.depth_multiplier == o[3]);
  DepthwiseConvInt8(data->params, data->tflm.per_channel_output_multiplier,
                    data->tflm.per_channel_output_shift, in[0], in[1], in[2], in[3],
                    tflite::micro::GetTensorData<int8_t>(input), f[1], f[2],
                    tflite::micro::GetTensorData<int8_t>(filter),
                    tflite::micro::GetOptionalTensorData<int32_t>(bias), o[1], o[2],
                    tflite::micro::GetTensorData<int8_t>(output));
  return kTfLiteOk;
}

}  // namespace

TFLMRegistration Register_LOGISTIC_INT8_TABLE() {
  return tflite::micro::RegisterOp(TableInit, LogisticPrepare, TableEval);
}

TFLMRegistration Register_ADD_INT8() {
  return tflite::micro::RegisterOp(DataInit<BinaryData<tflite::OpDataAdd>>, AddPrepareInt8,
                                   BinaryEval<tflite::OpDataAdd, BinaryOp::kAdd>);
}

TFLMRegistration Register_SUB_INT8() {
  return tflite::micro::RegisterOp(DataInit<BinaryData<tflite::OpDataSub>>, SubPrepareInt8,
                                   BinaryEval<tflite::OpDataSub, BinaryOp::kSub>);
}

TFLMRegistration Register_MUL_INT8() {
  return tflite::micro::RegisterOp(DataInit<BinaryData<tflite::OpDataMul>>, MulPrepareInt8,
                                   BinaryEval<tflite::OpDataMul, BinaryOp::kMul>);
}

TFLMRegistration Register_MEAN_INT8() {
  return tflite::micro::RegisterOp(DataInit<MeanData>, MeanPrepareInt8, MeanEvalInt8);
}

TFLMRegistration Register_SOFTMAX_INT8_TABLE() {
  return tflite::micro::RegisterOp(DataInit<SoftmaxData>, SoftmaxPrepareInt8, SoftmaxEvalInt8);
}

TFLMRegistration Register_DEPTHWISE_CONV_2D_INT8() {
  return tflite::micro::RegisterOp(DataInit<DepthwiseData>, DepthwisePrepareInt8,
                                   DepthwiseEvalInt8);
}

}  // namespace embbert
