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

}  // namespace embbert

#endif  // EMBBERT_KERNELS_H_
