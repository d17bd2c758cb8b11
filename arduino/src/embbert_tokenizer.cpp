// See embbert_tokenizer.h.
#include "embbert_tokenizer.h"

namespace embbert {
namespace {

const uint32_t kReplacementCharacter = 0xFFFD;
const size_t kWordBufferBytes = kMaxWordChars * 4;

// Range values (TokenizerData::ranges, low 11 bits) and mapping kinds.
const uint32_t kValueBits = 11;
const uint32_t kValueMask = (1u << kValueBits) - 1;
const uint32_t kValueDrop = 0, kValueSpace = 1, kValueUnknownWord = 2, kValueUnknownIsolated = 3;
const uint32_t kFirstMapping = 4;
const uint32_t kMapDelta = 0, kMapConstant = 1, kMapSequence = 2;
const uint32_t kDeltaBias = 0x110000;
const uint32_t kUnitShift = 21;
const uint32_t kCodePointMask = (1u << kUnitShift) - 1;

uint32_t Unit(uint32_t kind, uint32_t cp) { return kind << kUnitShift | cp; }

// Decodes the UTF-8 sequence starting at text[0] (length >= 1); returns the bytes it used.
// Anything that is not a valid sequence (overlong, surrogate, above U+10FFFF, truncated) gives
// U+FFFD for its maximal invalid prefix, as Python's bytes.decode("utf-8", "replace") does.
size_t DecodeUtf8(const uint8_t* text, size_t length, uint32_t* cp) {
  const uint8_t lead = text[0];
  if (lead < 0x80) {
    *cp = lead;
    return 1;
  }
  size_t count;
  uint32_t value;
  uint8_t low = 0x80, high = 0xBF;  // allowed range of the next byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    count = 2;
    value = lead & 0x1F;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    count = 3;
    value = lead & 0x0F;
    if (lead == 0xE0) low = 0xA0;   // no overlong forms
    if (lead == 0xED) high = 0x9F;  // no surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    count = 4;
    value = lead & 0x07;
    if (lead == 0xF0) low = 0x90;   // no overlong forms
    if (lead == 0xF4) high = 0x8F;  // nothing above U+10FFFF
  } else {
    *cp = kReplacementCharacter;
    return 1;
  }
  for (size_t i = 1; i < count; ++i) {
    if (i >= length || text[i] < low || text[i] > high) {
      *cp = kReplacementCharacter;
      return i;
    }
    value = value << 6 | (text[i] & 0x3F);
    low = 0x80;
    high = 0xBF;
  }
  *cp = value;
  return count;
}

size_t EncodeUtf8(uint32_t cp, uint8_t* out) {
  if (cp < 0x80) {
    out[0] = static_cast<uint8_t>(cp);
    return 1;
  }
  if (cp < 0x800) {
    out[0] = static_cast<uint8_t>(0xC0 | cp >> 6);
    out[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 2;
  }
  if (cp < 0x10000) {
    out[0] = static_cast<uint8_t>(0xE0 | cp >> 12);
    out[1] = static_cast<uint8_t>(0x80 | (cp >> 6 & 0x3F));
    out[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
    return 3;
  }
  out[0] = static_cast<uint8_t>(0xF0 | cp >> 18);
  out[1] = static_cast<uint8_t>(0x80 | (cp >> 12 & 0x3F));
  out[2] = static_cast<uint8_t>(0x80 | (cp >> 6 & 0x3F));
  out[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
  return 4;
}

bool IsContinuationByte(uint8_t byte) { return (byte & 0xC0) == 0x80; }

uint32_t ReadLeb128(const uint8_t** p) {
  uint32_t value = 0;
  for (uint32_t shift = 0; shift < 32; shift += 7) {
    const uint8_t byte = *(*p)++;
    value |= static_cast<uint32_t>(byte & 0x7F) << shift;
    if (byte < 0x80) break;
  }
  return value;
}

// Reads a front-coded record's header: bytes shared with the previous key, bytes that follow.
void ReadHeader(const uint8_t** p, size_t* shared, size_t* suffix) {
  const uint8_t header = *(*p)++;
  *shared = header >> 4;
  *suffix = header & 0x0F;
  if (*shared == 15) *shared += ReadLeb128(p);
  if (*suffix == 15) *suffix += ReadLeb128(p);
}

}  // namespace

// The word being collected: its normalised UTF-8 while it fits max_input_chars_per_word.
struct WordPieceTokenizer::Word {
  uint8_t bytes[kWordBufferBytes];
  size_t size;
  int chars;     // also those past the buffer
  bool unknown;  // holds a character found in no vocabulary token
  void Clear() {
    size = 0;
    chars = 0;
    unknown = false;
  }
};

// The ids being written: word pieces go to ids[1 .. limit).
struct WordPieceTokenizer::Output {
  int32_t* ids;
  int limit;
  int next;
  bool Full() const { return next >= limit; }
  void Emit(int32_t id) {
    if (next < limit) ids[next++] = id;
  }
};

// A lookup key: the segment byte (0 word start, 1 continuation) followed by the piece's bytes.
struct WordPieceTokenizer::Key {
  uint8_t segment;
  const uint8_t* piece;
  size_t size;  // 1 + the piece's bytes
  uint8_t At(size_t i) const { return i == 0 ? segment : piece[i - 1]; }
};

uint32_t WordPieceTokenizer::FindRange(uint32_t cp) const {
  uint32_t low = 0, high = data_.range_count - 1;  // the last range starting at or before cp
  while (low < high) {
    const uint32_t middle = low + (high - low + 1) / 2;
    if ((data_.ranges[middle] >> kValueBits) <= cp) {
      low = middle;
    } else {
      high = middle - 1;
    }
  }
  return low;
}

void WordPieceTokenizer::AddCodePoint(uint32_t cp, Word* word, Output* out) const {
  const uint32_t range = FindRange(cp);
  const uint32_t value = data_.ranges[range] & kValueMask;
  switch (value) {
    case kValueDrop:
      return;
    case kValueSpace:
      AddUnit(Unit(kUnitSpace, 0), word, out);
      return;
    case kValueUnknownWord:
      AddUnit(Unit(kUnitUnknownWord, 0), word, out);
      return;
    case kValueUnknownIsolated:
      AddUnit(Unit(kUnitUnknownIsolated, 0), word, out);
      return;
    default:
      break;
  }
  const uint32_t mapping = data_.mappings[value - kFirstMapping];
  const uint32_t kind = mapping & 3;
  const uint32_t payload = mapping >> 3;
  const uint32_t unit_kind = (mapping & 4) ? kUnitIsolated : kUnitWord;
  if (kind == kMapDelta) {
    AddUnit(Unit(unit_kind, cp + payload - kDeltaBias), word, out);
  } else if (kind == kMapConstant) {
    AddUnit(Unit(unit_kind, payload), word, out);
  } else if (kind == kMapSequence) {
    const uint32_t index = payload + (cp - (data_.ranges[range] >> kValueBits));
    for (uint32_t u = data_.sequence_offsets[index]; u < data_.sequence_offsets[index + 1]; ++u) {
      AddUnit(data_.sequence_units[u], word, out);
    }
  }
}

void WordPieceTokenizer::AddUnit(uint32_t unit, Word* word, Output* out) const {
  const uint32_t cp = unit & kCodePointMask;
  switch (unit >> kUnitShift) {
    case kUnitSpace:
      EndWord(word, out);
      break;
    case kUnitWord:
      if (word->chars < kMaxWordChars) word->size += EncodeUtf8(cp, word->bytes + word->size);
      ++word->chars;
      break;
    case kUnitIsolated:
      EndWord(word, out);
      word->size = EncodeUtf8(cp, word->bytes);
      word->chars = 1;
      EndWord(word, out);
      break;
    case kUnitUnknownWord:
      word->unknown = true;
      ++word->chars;
      break;
    default:  // kUnitUnknownIsolated
      EndWord(word, out);
      out->Emit(data_.unk_id);
      break;
  }
}

// A finished word becomes its pieces, or one [UNK] if it holds an unknown character, is longer
// than max_input_chars_per_word or cannot be covered by vocabulary pieces.
void WordPieceTokenizer::EndWord(Word* word, Output* out) const {
  if (word->chars > 0 && !out->Full()) {
    if (word->unknown || word->chars > data_.max_input_chars_per_word || !WordPiece(*word, out)) {
      out->Emit(data_.unk_id);
    }
  }
  word->Clear();
}

// Greedy longest-match-first from the left, as the `tokenizers` WordPiece model does. Writes the
// pieces (those that fit) and returns true, or writes nothing and returns false.
bool WordPieceTokenizer::WordPiece(const Word& word, Output* out) const {
  const int first = out->next;
  size_t start = 0;
  while (start < word.size) {
    size_t end = word.size;
    if (end - start > data_.max_key_bytes) {  // longer pieces are in no key
      end = start + data_.max_key_bytes;
      while (end > start && IsContinuationByte(word.bytes[end])) --end;
    }
    int32_t id = -1;
    while (end > start) {
      const Key key = {static_cast<uint8_t>(start > 0 ? 1 : 0), word.bytes + start,
                       1 + (end - start)};
      id = Lookup(key);
      if (id >= 0) break;
      do {
        --end;  // one character shorter
      } while (end > start && IsContinuationByte(word.bytes[end]));
    }
    if (id < 0) {
      out->next = first;
      return false;
    }
    out->Emit(id);
    start = end;
  }
  return true;
}

// Id of the key, or -1: binary search for the last block whose first key is <= key, then a scan.
int32_t WordPieceTokenizer::Lookup(const Key& key) const {
  if (data_.key_count == 0 || CompareWithBlock(0, key) < 0) return -1;
  uint32_t low = 0, high = (data_.key_count - 1) / data_.block_size;
  while (low < high) {
    const uint32_t middle = low + (high - low + 1) / 2;
    if (CompareWithBlock(middle, key) >= 0) {
      low = middle;
    } else {
      high = middle - 1;
    }
  }
  return ScanBlock(low, key);
}

// <0, 0, >0 as key is before, equal to or after the block's first key (stored whole).
int WordPieceTokenizer::CompareWithBlock(uint32_t block, const Key& key) const {
  const uint8_t* p = data_.keys + data_.block_offsets[block];
  size_t shared, suffix;
  ReadHeader(&p, &shared, &suffix);
  const size_t common = suffix < key.size ? suffix : key.size;
  for (size_t i = 0; i < common; ++i) {
    if (key.At(i) != p[i]) return key.At(i) < p[i] ? -1 : 1;
  }
  if (key.size == suffix) return 0;
  return key.size < suffix ? -1 : 1;
}

// Walks the block's keys in order, tracking how many leading bytes the current key shares with
// `key` (`match`); a key's shared count against its predecessor then decides most steps
// without reading its bytes.
int32_t WordPieceTokenizer::ScanBlock(uint32_t block, const Key& key) const {
  const uint8_t* p = data_.keys + data_.block_offsets[block];
  const uint32_t first = block * data_.block_size;
  const uint32_t remaining = data_.key_count - first;
  const uint32_t count = remaining < data_.block_size ? remaining : data_.block_size;
  size_t match = 0;
  for (uint32_t j = 0; j < count; ++j) {
    size_t shared, suffix;
    ReadHeader(&p, &shared, &suffix);
    const uint8_t* tail = p;
    p += suffix;
    if (shared > match) continue;  // agrees with the previous key, still before `key`
    if (shared < match) return -1;  // differs where the previous key agreed: after `key`
    size_t k = 0;
    while (k < suffix && match + k < key.size && tail[k] == key.At(match + k)) ++k;
    match += k;
    if (k == suffix) {  // this key is a prefix of `key`
      if (match == key.size) return data_.key_ids[first + j];
      continue;
    }
    if (match == key.size || tail[k] > key.At(match)) return -1;  // after `key`
  }
  return -1;
}

int WordPieceTokenizer::Encode(const char* text, size_t length, int32_t* ids, int seq_len) const {
  if (ids == nullptr || seq_len < 3) return 0;
  if (text == nullptr) length = 0;
  Output out = {ids, seq_len - 1, 1};
  Word word;
  word.Clear();
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(text);
  size_t position = 0;
  // Once the pieces fill seq_len - 2 slots nothing later can be kept (right truncation).
  while (position < length && !out.Full()) {
    uint32_t cp = 0;
    position += DecodeUtf8(bytes + position, length - position, &cp);
    AddCodePoint(cp, &word, &out);
  }
  EndWord(&word, &out);
  ids[0] = data_.cls_id;
  ids[out.next] = data_.sep_id;
  for (int i = out.next + 1; i < seq_len; ++i) ids[i] = data_.pad_id;
  return out.next + 1;
}

}  // namespace embbert
