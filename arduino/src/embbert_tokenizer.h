// WordPiece tokenizer for EmbBERT on a microcontroller: the same ids as the Python tokenizer
// (tflm_embbert/tokenizer.py: BertNormalizer + BertPreTokenizer + WordPiece), with every table in
// flash (embbert_tokenizer_data.cpp, generated per vocabulary by export/tokenizer_data.py).
//
// C++14, no heap, no STL, no exceptions; Encode uses about 0.5 KB of stack.
// Invalid UTF-8 is skipped byte by byte (Python: bytes.decode("utf-8", "replace"), whose U+FFFD
// the normalizer deletes). Known deviation: each code point is normalized alone, so canonical
// reordering of several combining marks in a row is not reproduced where marks are kept.
#ifndef EMBBERT_TOKENIZER_H_
#define EMBBERT_TOKENIZER_H_

#include <stddef.h>
#include <stdint.h>

namespace embbert {

struct TokenizerData {
  // Vocabulary sorted by bytes: token k is vocab_bytes[vocab_offsets[k] .. vocab_offsets[k + 1])
  // and has id vocab_ids[k].
  const unsigned char* vocab_bytes;
  const uint32_t* vocab_offsets;  // vocab_size + 1 entries
  const uint16_t* vocab_ids;
  int32_t vocab_size;
  // Code points [range_starts[k], range_starts[k + 1]) act as range_actions[k] says:
  // kind in the top 4 bits, a payload in the low 28 (see export/tokenizer_data.py).
  const uint32_t* range_starts;
  const uint32_t* range_actions;
  int32_t range_count;
  const uint8_t* pool;            // explicit normalized outputs
  const char* subword_prefix;     // "##"
  int32_t subword_prefix_length;
  int32_t max_input_chars_per_word;
  int32_t unk_id;
  int32_t cls_id;
  int32_t sep_id;
  int32_t pad_id;
};

class WordPieceTokenizer {
 public:
  explicit WordPieceTokenizer(const TokenizerData& data) : data_(data) {}
  // Encodes UTF-8 bytes (any bytes, invalid sequences allowed) as [CLS] pieces [SEP] followed by
  // [PAD] up to seq_len (seq_len >= 3; pieces beyond seq_len - 2 are cut). Returns the number of
  // non-[PAD] tokens written (0 and nothing written if seq_len < 3 or ids is null).
  int Encode(const char* text, size_t length, int32_t* ids, int seq_len) const;
  int vocab_size() const { return data_.vocab_size; }

 private:
  struct Output;
  uint32_t Action(uint32_t code_point) const;
  int Find(bool continuation, const unsigned char* piece, int length) const;
  void EndWord(Output* out) const;
  void PunctWord(Output* out, const unsigned char* bytes, int length) const;

  const TokenizerData& data_;
};

}  // namespace embbert

#endif  // EMBBERT_TOKENIZER_H_
