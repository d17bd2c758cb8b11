// Stub: tensorflow/lite/micro/micro_log.h.
#ifndef EMBBERT_STUB_MICRO_LOG_H_
#define EMBBERT_STUB_MICRO_LOG_H_
void MicroPrintf(const char* format, ...);
#endif  // EMBBERT_STUB_MICRO_LOG_H_
