// Stub: tensorflow/lite/micro/kernels/conv.h, OpDataConv (without USE_TFLM_COMPRESSION).
#ifndef EMBBERT_STUB_CONV_H_
#define EMBBERT_STUB_CONV_H_
#include "tensorflow/lite/c/builtin_op_data.h"
namespace tflite {
struct OpDataConv {
  TfLitePaddingValues padding;
  int32_t input_zero_point;
  int32_t filter_zero_point;
  int32_t output_zero_point;
  int32_t output_multiplier;
  int output_shift;
  int32_t* per_channel_output_multiplier;
  int32_t* per_channel_output_shift;
  int32_t output_activation_min;
  int32_t output_activation_max;
  int filter_buffer_index;
};
}  // namespace tflite
#endif  // EMBBERT_STUB_CONV_H_
