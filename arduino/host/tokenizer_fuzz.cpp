// libFuzzer target for the C++ tokenizer (bench/fuzz_tokenizer.py builds and runs it): any bytes,
// several sequence lengths; traps when an invariant of Encode's output breaks.
#include <stddef.h>
#include <stdint.h>

#include "embbert_tokenizer.h"
#include "embbert_tokenizer_data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const embbert::WordPieceTokenizer tokenizer(embbert_tokenizer_data);
  static const int kLengths[] = {3, 4, 8, 32, 128, 256};
  int32_t ids[256];
  for (int seq_len : kLengths) {
    const int count =
        tokenizer.Encode(reinterpret_cast<const char*>(data), size, ids, seq_len);
    if (count < 2 || count > seq_len) __builtin_trap();
    if (ids[0] != embbert_tokenizer_data.cls_id) __builtin_trap();
    if (ids[count - 1] != embbert_tokenizer_data.sep_id) __builtin_trap();
    for (int i = 0; i < seq_len; ++i) {
      if (ids[i] < 0 || ids[i] >= tokenizer.vocab_size()) __builtin_trap();
      if (i >= count && ids[i] != embbert_tokenizer_data.pad_id) __builtin_trap();
      if (i > 0 && i < count - 1 && (ids[i] == embbert_tokenizer_data.pad_id ||
                                     ids[i] == embbert_tokenizer_data.cls_id)) {
        __builtin_trap();
      }
    }
  }
  return 0;
}
