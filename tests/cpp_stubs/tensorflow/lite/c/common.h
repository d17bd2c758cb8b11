// Stub: tensorflow/lite/core/c/common.h (reached via tensorflow/lite/c/common.h), the subset used.
#ifndef EMBBERT_STUB_COMMON_H_
#define EMBBERT_STUB_COMMON_H_
#include <stddef.h>
#include <stdint.h>

typedef enum TfLiteStatus { kTfLiteOk = 0, kTfLiteError = 1 } TfLiteStatus;
typedef enum {
  kTfLiteNoType = 0, kTfLiteFloat32 = 1, kTfLiteInt32 = 2, kTfLiteUInt8 = 3, kTfLiteInt64 = 4,
  kTfLiteString = 5, kTfLiteBool = 6, kTfLiteInt16 = 7, kTfLiteComplex64 = 8, kTfLiteInt8 = 9,
  kTfLiteFloat16 = 10, kTfLiteInt4 = 18,
} TfLiteType;
typedef struct TfLiteIntArray {
  int size;
  int data[];
} TfLiteIntArray;
typedef struct TfLiteQuantizationParams {
  float scale;
  int32_t zero_point;
} TfLiteQuantizationParams;
typedef enum TfLiteQuantizationType {
  kTfLiteNoQuantization = 0, kTfLiteAffineQuantization = 1,
} TfLiteQuantizationType;
typedef struct TfLiteQuantization {
  TfLiteQuantizationType type;
  void* params;
} TfLiteQuantization;
typedef union TfLitePtrUnion {
  int32_t* i32;
  int8_t* int8;
  float* f;
  void* data;
} TfLitePtrUnion;
typedef enum TfLiteAllocationType {
  kTfLiteMemNone = 0, kTfLiteMmapRo, kTfLiteArenaRw, kTfLiteArenaRwPersistent, kTfLiteDynamic,
  kTfLitePersistentRo, kTfLiteCustom, kTfLiteVariantObject,
} TfLiteAllocationType;
typedef struct TfLiteTensor {  // the TF_LITE_STATIC_MEMORY layout
  TfLiteType type;
  TfLitePtrUnion data;
  TfLiteIntArray* dims;
  TfLiteQuantizationParams params;
  TfLiteAllocationType allocation_type;
  size_t bytes;
  TfLiteQuantization quantization;
} TfLiteTensor;
typedef struct TfLiteEvalTensor {
  TfLitePtrUnion data;
  TfLiteIntArray* dims;
  TfLiteType type;
} TfLiteEvalTensor;
typedef struct TfLiteNode {  // the TF_LITE_STATIC_MEMORY layout
  TfLiteIntArray* inputs;
  TfLiteIntArray* outputs;
  TfLiteIntArray* intermediates;
  void* user_data;
  void* builtin_data;
  const void* custom_initial_data;
  int custom_initial_data_size;
} TfLiteNode;
typedef struct TfLiteContext {
  void (*ReportError)(struct TfLiteContext*, const char* msg, ...);
  void* (*AllocatePersistentBuffer)(struct TfLiteContext* ctx, size_t bytes);
  TfLiteStatus (*RequestScratchBufferInArena)(struct TfLiteContext* ctx, size_t bytes,
                                              int* buffer_idx);
  void* (*GetScratchBuffer)(struct TfLiteContext* ctx, int buffer_idx);
} TfLiteContext;

#define TF_LITE_KERNEL_LOG(context, ...) ((void)(context))
#define TF_LITE_ENSURE_MSG(context, value, msg) \
  do {                                          \
    if (!(value)) {                             \
      TF_LITE_KERNEL_LOG((context), msg);       \
      return kTfLiteError;                      \
    }                                           \
  } while (0)
#define TF_LITE_ENSURE(context, a) TF_LITE_ENSURE_MSG(context, a, #a)
#define TF_LITE_ENSURE_STATUS(a)          \
  do {                                    \
    const TfLiteStatus s = (a);           \
    if (s != kTfLiteOk) return s;         \
  } while (0)
#define TF_LITE_ENSURE_EQ(context, a, b) TF_LITE_ENSURE(context, (a) == (b))
#endif  // EMBBERT_STUB_COMMON_H_
