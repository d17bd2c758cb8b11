// Stub: tensorflow/lite/micro/kernels/reduce.h, the subset used.
#ifndef EMBBERT_STUB_REDUCE_H_
#define EMBBERT_STUB_REDUCE_H_
#include "tensorflow/lite/c/common.h"
namespace tflite {
struct OpDataReduce {
  int32_t multiplier;
  int shift;
  int scratch_accumulator_idx;
  int scratch_resolved_axis_idx;
  int scratch_input_iter_idx;
  int input_zp;
  float input_scale;
  int output_zp;
  float output_scale;
  int num_output_elements;
  int num_axis;
};
TfLiteStatus PrepareMeanOrSumHelper(TfLiteContext* context, TfLiteNode* node,
                                    OpDataReduce* op_data);
}  // namespace tflite
#endif  // EMBBERT_STUB_REDUCE_H_
