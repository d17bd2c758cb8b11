// Host harness for the parity tests: reads records from stdin, each a little-endian uint32
// seq_len, a uint32 byte count and that many bytes of text, and prints one line per record:
// the returned count, then the seq_len ids.
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "embbert_tokenizer.h"
#include "embbert_tokenizer_data.h"

namespace {

bool ReadU32(uint32_t* value) {
  unsigned char bytes[4];
  if (fread(bytes, 1, 4, stdin) != 4) return false;
  *value = bytes[0] | (bytes[1] << 8) | (bytes[2] << 16) | (static_cast<uint32_t>(bytes[3]) << 24);
  return true;
}

}  // namespace

int main() {
  const embbert::WordPieceTokenizer tokenizer(embbert_tokenizer_data);
  uint32_t seq_len = 0, length = 0;
  while (ReadU32(&seq_len) && ReadU32(&length)) {
    char* text = static_cast<char*>(malloc(length + 1));
    int32_t* ids = static_cast<int32_t*>(malloc(sizeof(int32_t) * (seq_len + 1)));
    if (text == nullptr || ids == nullptr || fread(text, 1, length, stdin) != length) return 2;
    const int count = tokenizer.Encode(text, length, ids, static_cast<int>(seq_len));
    printf("%d", count);
    for (uint32_t i = 0; i < seq_len; ++i) printf(" %d", static_cast<int>(ids[i]));
    printf("\n");
    free(text);
    free(ids);
  }
  return 0;
}
