// Stub: tensorflow/lite/micro/kernels/fully_connected.h, the subset used.
#ifndef EMBBERT_STUB_FULLY_CONNECTED_H_
#define EMBBERT_STUB_FULLY_CONNECTED_H_
#include <stdint.h>
#include "tensorflow/lite/c/builtin_op_data.h"
#include "tensorflow/lite/c/common.h"
namespace tflite {
struct OpDataFullyConnected {
  int32_t output_multiplier;
  int output_shift;
  int32_t output_activation_min;
  int32_t output_activation_max;
  int input_quantized_index;
  int32_t input_zero_point;
  int32_t filter_zero_point;
  int32_t output_zero_point;
  int filter_buffer_index;
  int32_t* per_channel_output_multiplier;
  int32_t* per_channel_output_shift;
  bool is_per_channel;
};
extern const int kFullyConnectedInputTensor;
extern const int kFullyConnectedWeightsTensor;
extern const int kFullyConnectedBiasTensor;
extern const int kFullyConnectedOutputTensor;
TfLiteStatus CalculateOpDataFullyConnected(TfLiteContext* context,
                                           TfLiteFusedActivation activation,
                                           TfLiteType data_type, const TfLiteTensor* input,
                                           const TfLiteTensor* filter, const TfLiteTensor* bias,
                                           TfLiteTensor* output, OpDataFullyConnected* data);
}  // namespace tflite
#endif  // EMBBERT_STUB_FULLY_CONNECTED_H_
