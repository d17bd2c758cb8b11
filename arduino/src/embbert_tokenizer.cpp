// See embbert_tokenizer.h.
#include "embbert_tokenizer.h"

namespace embbert {
namespace {

enum Kind : uint32_t {
  kWord = 0,          // the code point itself
  kUnknown = 1,       // one character found in no vocabulary token
  kDelete = 2,        // nothing
  kSpace = 3,         // a word boundary
  kPunct = 4,         // the code point itself, as a one-character word
  kPunctUnknown = 5,  // an unknown one-character word
  kShift = 6,         // code point + payload (signed 28 bits), a word character
  kPool = 7,          // pool[payload >> 8], payload & 0xff bytes
};

constexpr uint8_t kUnknownByte = 0xFF;  // never in UTF-8, so never in the vocabulary
constexpr uint8_t kPunctByte = 0x01;
constexpr uint8_t kSpaceByte = 0x20;
constexpr int kMaxWordChars = 100;      // the largest max_input_chars_per_word supported

// Decodes one strict UTF-8 sequence at text[0..length); returns its byte count, or 0 if the
// first byte does not start a valid sequence (overlong, surrogate, > U+10FFFF, truncated).
int DecodeUtf8(const unsigned char* text, size_t length, uint32_t* code_point) {
  const unsigned char b0 = text[0];
  if (b0 < 0x80) {
    *code_point = b0;
    return 1;
  }
  int count;
  uint32_t value;
  unsigned char low = 0x80, high = 0xBF;  // allowed range of the second byte
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    count = 2;
    value = b0 & 0x1F;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    count = 3;
    value = b0 & 0x0F;
    if (b0 == 0xE0) low = 0xA0;
    if (b0 == 0xED) high = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    count = 4;
    value = b0 & 0x07;
    if (b0 == 0xF0) low = 0x90;
    if (b0 == 0xF4) high = 0x8F;
  } else {
    return 0;
  }
  if (length < static_cast<size_t>(count)) return 0;
  for (int i = 1; i < count; ++i) {
    const unsigned char b = text[i];
    if (i == 1 ? (b < low || b > high) : (b < 0x80 || b > 0xBF)) return 0;
    value = (value << 6) | (b & 0x3F);
  }
  *code_point = value;
  return count;
}

int EncodeUtf8(uint32_t code_point, unsigned char* out) {
  if (code_point < 0x80) {
    out[0] = static_cast<unsigned char>(code_point);
    return 1;
  }
  if (code_point < 0x800) {
    out[0] = static_cast<unsigned char>(0xC0 | (code_point >> 6));
    out[1] = static_cast<unsigned char>(0x80 | (code_point & 0x3F));
    return 2;
  }
  if (code_point < 0x10000) {
    out[0] = static_cast<unsigned char>(0xE0 | (code_point >> 12));
    out[1] = static_cast<unsigned char>(0x80 | ((code_point >> 6) & 0x3F));
    out[2] = static_cast<unsigned char>(0x80 | (code_point & 0x3F));
    return 3;
  }
  out[0] = static_cast<unsigned char>(0xF0 | (code_point >> 18));
  out[1] = static_cast<unsigned char>(0x80 | ((code_point >> 12) & 0x3F));
  out[2] = static_cast<unsigned char>(0x80 | ((code_point >> 6) & 0x3F));
  out[3] = static_cast<unsigned char>(0x80 | (code_point & 0x3F));
  return 4;
}

// Bytes of the character starting with `lead` in the normalized stream (0xFF counts as one).
int CharBytes(unsigned char lead) {
  if (lead < 0x80 || lead == kUnknownByte) return 1;
  if (lead >= 0xF0) return 4;
  if (lead >= 0xE0) return 3;
  return 2;
}

}  // namespace

// The ids being written and the word being collected.
struct WordPieceTokenizer::Output {
  int32_t* ids;
  int capacity;  // positions for word pieces: seq_len - 2
  int count;     // pieces written so far (ids[1 .. count])
  unsigned char word[kMaxWordChars * 4];
  int word_bytes;
  int word_chars;
  bool full() const { return count >= capacity; }
  void Emit(int32_t id) {
    if (count < capacity) ids[1 + count] = id;
    ++count;
  }
};

uint32_t WordPieceTokenizer::Action(uint32_t code_point) const {
  int32_t low = 0, high = data_.range_count - 1;  // last range whose start <= code_point
  while (low < high) {
    const int32_t middle = low + (high - low + 1) / 2;
    if (data_.range_starts[middle] <= code_point) {
      low = middle;
    } else {
      high = middle - 1;
    }
  }
  return data_.range_actions[low];
}

// Id of (prefix +) piece in the vocabulary, or -1.
int WordPieceTokenizer::Find(bool continuation, const unsigned char* piece, int length) const {
  const int prefix_length = continuation ? data_.subword_prefix_length : 0;
  const unsigned char* prefix = reinterpret_cast<const unsigned char*>(data_.subword_prefix);
  int32_t low = 0, high = data_.vocab_size - 1;
  while (low <= high) {
    const int32_t middle = low + (high - low) / 2;
    const unsigned char* token = data_.vocab_bytes + data_.vocab_offsets[middle];
    const int token_length =
        static_cast<int>(data_.vocab_offsets[middle + 1] - data_.vocab_offsets[middle]);
    const int key_length = prefix_length + length;
    int order = 0;
    for (int i = 0; i < key_length && i < token_length && order == 0; ++i) {
      const unsigned char key = i < prefix_length ? prefix[i] : piece[i - prefix_length];
      order = static_cast<int>(key) - static_cast<int>(token[i]);
    }
    if (order == 0) order = key_length - token_length;
    if (order == 0) return data_.vocab_ids[middle];
    if (order < 0) {
      high = middle - 1;
    } else {
      low = middle + 1;
    }
  }
  return -1;
}

// WordPiece on the collected word: greedy longest match from the left; a word with an
// unmatched position, or longer than max_input_chars_per_word, is one [UNK].
void WordPieceTokenizer::EndWord(Output* out) const {
  const int bytes = out->word_bytes;
  const int chars = out->word_chars;
  out->word_bytes = 0;
  out->word_chars = 0;
  if (chars == 0) return;
  if (chars > data_.max_input_chars_per_word) {
    out->Emit(data_.unk_id);
    return;
  }
  const int first = out->count;
  int start = 0;
  while (start < bytes) {
    int end = bytes;
    int id = -1;
    while (end > start) {
      id = Find(start > 0, out->word + start, end - start);
      if (id >= 0) break;
      do {
        --end;  // back to the previous character boundary
      } while (end > start && (out->word[end] & 0xC0) == 0x80);
    }
    if (id < 0) {
      out->count = first;
      out->Emit(data_.unk_id);
      return;
    }
    out->Emit(id);
    start = end;
  }
}

void WordPieceTokenizer::PunctWord(Output* out, const unsigned char* bytes, int length) const {
  EndWord(out);
  for (int i = 0; i < length; ++i) out->word[i] = bytes[i];
  out->word_bytes = length;
  out->word_chars = 1;
  EndWord(out);
}

int WordPieceTokenizer::Encode(const char* text, size_t length, int32_t* ids, int seq_len) const {
  if (ids == nullptr || seq_len < 3) return 0;
  if (text == nullptr) length = 0;
  Output out;
  out.ids = ids;
  out.capacity = seq_len - 2;
  out.count = 0;
  out.word_bytes = 0;
  out.word_chars = 0;
  const unsigned char* bytes = reinterpret_cast<const unsigned char*>(text);
  unsigned char encoded[4];
  size_t position = 0;
  while (position < length && !out.full()) {
    uint32_t code_point = 0;
    const int used = DecodeUtf8(bytes + position, length - position, &code_point);
    position += used > 0 ? used : 1;  // an invalid byte is dropped
    if (used == 0) continue;
    const uint32_t action = Action(code_point);
    const uint32_t kind = action >> 28;
    const uint32_t payload = action & 0x0FFFFFFF;
    const unsigned char* chunk = encoded;
    int chunk_length = 0;
    switch (kind) {
      case kWord:
        chunk_length = EncodeUtf8(code_point, encoded);
        break;
      case kShift: {
        const int32_t delta = static_cast<int32_t>(payload << 4) >> 4;  // sign-extend 28 bits
        chunk_length = EncodeUtf8(static_cast<uint32_t>(static_cast<int32_t>(code_point) + delta),
                                  encoded);
        break;
      }
      case kUnknown:
        encoded[0] = kUnknownByte;
        chunk_length = 1;
        break;
      case kDelete:
        continue;
      case kSpace:
        EndWord(&out);
        continue;
      case kPunct:
        chunk_length = EncodeUtf8(code_point, encoded);
        PunctWord(&out, encoded, chunk_length);
        continue;
      case kPunctUnknown:
        encoded[0] = kUnknownByte;
        PunctWord(&out, encoded, 1);
        continue;
      default:  // kPool
        chunk = data_.pool + (payload >> 8);
        chunk_length = static_cast<int>(payload & 0xFF);
        break;
    }
    for (int i = 0; i < chunk_length;) {
      const unsigned char lead = chunk[i];
      if (lead == kSpaceByte) {
        EndWord(&out);
        ++i;
        continue;
      }
      if (lead == kPunctByte) {
        const int size = CharBytes(chunk[i + 1]);
        PunctWord(&out, chunk + i + 1, size);
        i += 1 + size;
        continue;
      }
      const int size = CharBytes(lead);
      if (out.word_chars < kMaxWordChars) {
        for (int k = 0; k < size; ++k) out.word[out.word_bytes + k] = chunk[i + k];
        out.word_bytes += size;
      }
      ++out.word_chars;  // counted beyond the buffer: the word becomes [UNK]
      i += size;
    }
  }
  EndWord(&out);
  const int pieces = out.count < out.capacity ? out.count : out.capacity;
  ids[0] = data_.cls_id;
  ids[1 + pieces] = data_.sep_id;
  for (int i = pieces + 2; i < seq_len; ++i) ids[i] = data_.pad_id;
  return pieces + 2;
}

}  // namespace embbert
