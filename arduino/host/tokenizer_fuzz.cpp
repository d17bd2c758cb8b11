// libFuzzer target for the C++ tokenizer (bench/fuzz_tokenizer.py builds and runs it): any bytes,
// several sequence lengths; traps when an invariant of Encode's output breaks:
//   the count is in [2, seq_len]; ids[0] is [CLS], ids[count - 1] is [SEP], [PAD] after it;
//   every id is in [0, vocab_size); a shorter seq_len keeps a prefix of the longer one's pieces
//   (right truncation).
#include <stddef.h>
#include <stdint.h>

#include "embbert_tokenizer.h"
#include "embbert_tokenizer_data.h"

namespace {

const int kLengths[] = {3, 4, 8, 32, 128, 512};
const int kLongest = 512;

void Check(bool condition) {
  if (!condition) __builtin_trap();
}

void CheckLayout(const int32_t* ids, int count, int seq_len, int vocab_size) {
  Check(count >= 2 && count <= seq_len);
  Check(ids[0] == embbert_tokenizer_data.cls_id);
  Check(ids[count - 1] == embbert_tokenizer_data.sep_id);
  for (int i = 0; i < seq_len; ++i) {
    Check(ids[i] >= 0 && ids[i] < vocab_size);
    if (i >= count) Check(ids[i] == embbert_tokenizer_data.pad_id);
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const embbert::WordPieceTokenizer tokenizer(embbert_tokenizer_data);
  static int32_t longest[kLongest];
  static int32_t ids[kLongest];
  const char* text = reinterpret_cast<const char*>(data);
  const int longest_count = tokenizer.Encode(text, size, longest, kLongest);
  CheckLayout(longest, longest_count, kLongest, tokenizer.vocab_size());
  for (int seq_len : kLengths) {
    const int count = tokenizer.Encode(text, size, ids, seq_len);
    CheckLayout(ids, count, seq_len, tokenizer.vocab_size());
    for (int i = 1; i < count - 1; ++i) Check(ids[i] == longest[i]);  // same first pieces
    if (count < seq_len) Check(count == longest_count);  // nothing was cut
  }
  return 0;
}
