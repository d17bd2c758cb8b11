// TFLM registrations of the EmbBERT library's own kernels for builtin ops (the .tflite stays
// standard; a plain TFLM runs it with its own kernels). Registered by the generated op resolver
// through MicroMutableOpResolver's Add<Op>(registration) overloads (tflite-micro PR #3178).
#ifndef EMBBERT_KERNELS_H_
#define EMBBERT_KERNELS_H_

#include "tflm_embbert_tflm_config.h"
#include "tensorflow/lite/micro/micro_common.h"

namespace embbert {

// LOGISTIC, int8: a 256-entry table filled in Prepare by TFLM's reference integer Logistic
// (same OpDataLogistic as TFLM computes), then one lookup per element. Other types: Prepare
// fails (this library's models are int8).
TFLMRegistration Register_LOGISTIC_INT8_TABLE();

// int8 kernels whose Prepare is TFLM's own (same op data, scratch buffers and arena need) and
// whose Invoke runs this library's cores (embbert_int8_ops.h), bit-exact with TFLM's reference
// integer kernels: broadcast ADD / SUB / MUL (rank <= 4), MEAN (any constant axes), SOFTMAX
// (exp from a 256-entry table per node: +1 KiB persistent), DEPTHWISE_CONV_2D (per-channel;
// skips taps that only see leading zero-point rows). A non-int8 tensor fails Prepare.
TFLMRegistration Register_ADD_INT8();
TFLMRegistration Register_SUB_INT8();
TFLMRegistration Register_MUL_INT8();
TFLMRegistration Register_MEAN_INT8();
TFLMRegistration Register_SOFTMAX_INT8_TABLE();
TFLMRegistration Register_DEPTHWISE_CONV_2D_INT8();

// FULLY_CONNECTED, int8 with constant int8 weights (per-tensor or per-channel), int32 bias:
// TFLM's CalculateOpDataFullyConnected, then bias + input_offset * sum(weights) per output
// channel once in Prepare (a persistent int32 per channel) and a scratch of 8 x depth bytes
// (when there are >= 4 input rows); Invoke takes only the dot products (SMLAD, four input rows
// per pass over a weight row). Bit-exact with TFLM's reference integer FullyConnected.
TFLMRegistration Register_FULLY_CONNECTED_INT8();

// BATCH_MATMUL, int8, adj_x false: the FULLY_CONNECTED core per batch with the rhs rows as the
// weights (their sums per call); rhs transposed into the scratch when adj_y is false. Its own
// Prepare (TFLM's quantization: GetQuantizedConvolutionMultipler + QuantizeMultiplier, range
// -128..127, no transposed-tensor buffers). Bit-exact with TFLM's reference BatchMatMul.
TFLMRegistration Register_BATCH_MATMUL_INT8();

}  // namespace embbert

#endif  // EMBBERT_KERNELS_H_
