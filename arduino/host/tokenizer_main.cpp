// Host harness for the parity tests (tests/test_arduino_tokenizer.py): reads records from stdin,
// each a little-endian uint32 seq_len, a little-endian uint32 byte count and that many bytes of
// text, and prints one line per record: Encode's return value, then the seq_len ids.
#include <stdint.h>
#include <stdio.h>

#include <vector>

#include "embbert_tokenizer.h"
#include "embbert_tokenizer_data.h"

namespace {

bool ReadU32(uint32_t* value) {
  unsigned char bytes[4];
  if (fread(bytes, 1, 4, stdin) != 4) return false;
  *value = static_cast<uint32_t>(bytes[0]) | static_cast<uint32_t>(bytes[1]) << 8 |
           static_cast<uint32_t>(bytes[2]) << 16 | static_cast<uint32_t>(bytes[3]) << 24;
  return true;
}

}  // namespace

int main() {
  const embbert::WordPieceTokenizer tokenizer(embbert_tokenizer_data);
  uint32_t seq_len = 0, length = 0;
  while (ReadU32(&seq_len) && ReadU32(&length)) {
    // Exactly sized buffers, so that ASan sees any access past the text or the ids.
    std::vector<char> text(length);
    std::vector<int32_t> ids(seq_len);
    if (length > 0 && fread(text.data(), 1, length, stdin) != length) {
      fprintf(stderr, "truncated record\n");
      return 2;
    }
    const int count = tokenizer.Encode(length > 0 ? text.data() : nullptr, length,
                                       seq_len > 0 ? ids.data() : nullptr,
                                       static_cast<int>(seq_len));
    printf("%d", count);
    for (uint32_t i = 0; i < seq_len; ++i) printf(" %d", static_cast<int>(ids[i]));
    printf("\n");
  }
  return 0;
}
