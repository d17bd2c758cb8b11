"""The C++ tokenizer's data: the vocabulary and Unicode tables as const arrays (flash).

`write_tokenizer_data(tokenizer, folder)` writes embbert_tokenizer_data.h/.cpp defining
`embbert_tokenizer_data` for arduino/src/embbert_tokenizer.cpp. Nothing Unicode-specific is
re-implemented: what each code point becomes is read from the `tokenizers` library itself, with
the tokenizer's own settings -- its BertNormalizer on the code point alone, then its
BertPreTokenizer's split of the result (whitespace / punctuation / word character).

Per code point the C++ needs one action, stored as ranges of code points that act alike:
  WORD    the code point itself, a word character
  UNKNOWN one character that occurs in no vocabulary token (any word holding it is [UNK])
  DELETE  nothing (controls, combining marks, U+FFFD)
  SPACE   a word boundary
  PUNCT   the code point itself as a one-character word; PUNCT_UNKNOWN: an unknown one
  SHIFT   the code point + a constant, a word character (e.g. A-Z -> a-z)
  POOL    an explicit output in a byte pool: 0x20 = boundary, 0x01 = the next character is a
          one-character word, 0xFF = an unknown character, else UTF-8 of word characters.
Known deviation: the normalizer is applied to each code point alone, so the canonical reordering
of several combining marks in a row (which the whole-string NFD does) is not reproduced; marks
that strip_accents removes are unaffected.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import normalizers, pre_tokenizers

from tflm_embbert.tokenizer import CLS_ID, PAD_ID, SEP_ID, UNK_ID, Tokenizer

HEADER, SOURCE = "embbert_tokenizer_data.h", "embbert_tokenizer_data.cpp"
WORD, UNKNOWN, DELETE, SPACE, PUNCT, PUNCT_UNKNOWN, SHIFT, POOL = range(8)
_MAX_CODE_POINT = 0x110000
_SURROGATES = range(0xD800, 0xE000)
_UNKNOWN_BYTE, _PUNCT_BYTE, _SPACE_BYTE = 0xFF, 0x01, 0x20
MAX_WORD_CHARS = 100  # kMaxWordChars in embbert_tokenizer.cpp


def _code_points() -> list[int]:
    return [c for c in range(_MAX_CODE_POINT) if c not in _SURROGATES]


def _classes(chars: list[str]) -> dict[str, int]:
    """SPACE / PUNCT / WORD for each character, as the BertPreTokenizer splits it (one call)."""
    text = "a" + "a".join(chars) + "a"
    covered = {}
    for piece, (start, end) in pre_tokenizers.BertPreTokenizer().pre_tokenize_str(text):
        for position in range(start, end):
            covered[position] = len(piece) == 1 and piece != "a"
    classes = {}
    for i, char in enumerate(chars):
        position = 2 * i + 1
        if position not in covered:
            classes[char] = SPACE
        else:
            classes[char] = PUNCT if covered[position] else WORD
    return classes


def _encode_output(output: str, classes: dict, known: set) -> bytes:
    data = bytearray()
    for char in output:
        kind = classes[char]
        if kind == SPACE:
            data.append(_SPACE_BYTE)
            continue
        if kind == PUNCT:
            data.append(_PUNCT_BYTE)
        data += char.encode("utf-8") if char in known else bytes([_UNKNOWN_BYTE])
    return bytes(data)


def _action(code_point: int, encoded: bytes) -> tuple:
    """(kind, payload) for one code point's encoded output."""
    itself = chr(code_point).encode("utf-8")
    simple = {
        itself: (WORD, 0),
        bytes([_UNKNOWN_BYTE]): (UNKNOWN, 0),
        b"": (DELETE, 0),
        bytes([_PUNCT_BYTE]) + itself: (PUNCT, 0),
        bytes([_PUNCT_BYTE, _UNKNOWN_BYTE]): (PUNCT_UNKNOWN, 0),
        # handle_chinese_chars puts spaces around an ideograph: a one-character word too
        b" " + itself + b" ": (PUNCT, 0),
        bytes([_SPACE_BYTE, _UNKNOWN_BYTE, _SPACE_BYTE]): (PUNCT_UNKNOWN, 0),
    }
    if encoded in simple:
        return simple[encoded]
    if encoded and all(b == _SPACE_BYTE for b in encoded):
        return SPACE, 0
    if encoded[0] not in (_SPACE_BYTE, _PUNCT_BYTE, _UNKNOWN_BYTE):
        text = encoded.decode("utf-8", errors="replace")
        if len(text) == 1 and text.encode("utf-8") == encoded:
            return SHIFT, ord(text) - code_point
    return POOL, encoded


def build_tables(tokenizer: Tokenizer) -> dict:
    """Sorted vocabulary and the code-point ranges (see the module docstring)."""
    config = tokenizer.config
    normalizer = normalizers.BertNormalizer(
        clean_text=config.clean_text,
        handle_chinese_chars=config.handle_chinese_chars,
        strip_accents=config.strip_accents,
        lowercase=config.lowercase,
    )
    ids = {token: i for i, token in enumerate(tokenizer.vocab)}  # a repeated token: last id
    if len(ids) >= 1 << 16:
        raise ValueError(f"vocabulary: at most 65,535 distinct tokens, got {len(ids):,}")
    known = {char for token in ids for char in token}
    code_points = _code_points()
    outputs = [normalizer.normalize_str(chr(c)) for c in code_points]
    classes = _classes(sorted({char for output in outputs for char in output}))

    starts, actions, pool = [], [], bytearray()
    pool_index: dict[bytes, int] = {}
    previous = None
    for code_point, output in zip(code_points, outputs, strict=True):
        kind, payload = _action(code_point, _encode_output(output, classes, known))
        if kind == POOL:
            if len(payload) > 255:
                raise ValueError(f"U+{code_point:04X}: normalized output longer than 255 bytes")
            if payload not in pool_index:
                pool_index[payload] = len(pool)
                pool += payload
            payload = (pool_index[payload] << 8) | len(payload)
        if (kind, payload) != previous:
            starts.append(code_point)
            actions.append((kind << 28) | (payload & 0x0FFFFFFF))
        previous = (kind, payload)
    if len(pool) >= 1 << 20:
        raise ValueError("Unicode tables: output pool over 1 MiB")

    def sort_key(token: str) -> bytes:
        return token.encode("utf-8")

    ordered = sorted(ids, key=sort_key)
    blob = b"".join(sort_key(t) for t in ordered)
    offsets = [0]
    for token in ordered:
        offsets.append(offsets[-1] + len(sort_key(token)))
    return {
        "blob": blob,
        "offsets": offsets,
        "ids": [ids[t] for t in ordered],
        "starts": starts,
        "actions": actions,
        "pool": bytes(pool),
        "prefix": config.continuing_subword_prefix.encode("utf-8"),
        "max_chars": config.max_input_chars_per_word,
    }


def _array(ctype: str, name: str, values, per_line: int = 12, fmt=str) -> str:
    values = list(values)
    rows = [
        "    " + ", ".join(fmt(v) for v in values[i : i + per_line]) + ","
        for i in range(0, len(values), per_line)
    ]
    return (
        f"const {ctype} {name}[{max(len(values), 1)}] = {{\n"
        + "\n".join(rows or ["    0"])
        + "\n};\n"
    )


def write_tokenizer_data(tokenizer: Tokenizer, out_dir: Path) -> dict:
    """Writes embbert_tokenizer_data.h/.cpp into `out_dir`; returns files, flash bytes, sizes."""
    tables = build_tables(tokenizer)
    if not 1 <= tables["max_chars"] <= MAX_WORD_CHARS:
        raise ValueError(
            f"tokenizer: max_input_chars_per_word must be 1..{MAX_WORD_CHARS} for the C++ "
            f"tokenizer, got {tables['max_chars']}"
        )
    if len(tables["prefix"]) > 8:
        raise ValueError("tokenizer: continuing_subword_prefix longer than 8 bytes")
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    header = (
        f"// Generated by tflm_embbert export_tflite: vocabulary ({tokenizer.vocab_size} tokens)\n"
        "// and Unicode tables of the WordPiece tokenizer. Do not edit.\n"
        "#ifndef EMBBERT_TOKENIZER_DATA_H_\n#define EMBBERT_TOKENIZER_DATA_H_\n\n"
        '#include "embbert_tokenizer.h"\n\n'
        "extern const embbert::TokenizerData embbert_tokenizer_data;\n\n"
        "#endif  // EMBBERT_TOKENIZER_DATA_H_\n"
    )

    def hex8(v):
        return f"0x{v:02x}"

    prefix_literal = "".join(f"\\x{b:02x}" for b in tables["prefix"])
    source = (
        "// Generated by tflm_embbert export_tflite; see embbert_tokenizer_data.h.\n"
        '#include "embbert_tokenizer_data.h"\n\nnamespace {\n\n'
        + _array("unsigned char", "kVocabBytes", tables["blob"], 16, hex8)
        + _array("uint32_t", "kVocabOffsets", tables["offsets"])
        + _array("uint16_t", "kVocabIds", tables["ids"])
        + _array("uint32_t", "kRangeStarts", tables["starts"], 8, lambda v: f"0x{v:x}")
        + _array("uint32_t", "kRangeActions", tables["actions"], 8, lambda v: f"0x{v:08x}u")
        + _array("uint8_t", "kPool", tables["pool"], 16, hex8)
        + "\n}  // namespace\n\n"
        "const embbert::TokenizerData embbert_tokenizer_data = {\n"
        f"    kVocabBytes, kVocabOffsets, kVocabIds, {len(tables['ids'])},\n"
        f"    kRangeStarts, kRangeActions, {len(tables['starts'])},\n"
        f'    kPool, "{prefix_literal}", {len(tables["prefix"])}, {tables["max_chars"]},\n'
        f"    {UNK_ID}, {CLS_ID}, {SEP_ID}, {PAD_ID}}};\n"
    )
    (out_dir / HEADER).write_text(header)
    (out_dir / SOURCE).write_text(source)
    flash = (
        len(tables["blob"])
        + 4 * len(tables["offsets"])
        + 2 * len(tables["ids"])
        + 8 * len(tables["starts"])
        + len(tables["pool"])
    )
    return {
        "files": [str(out_dir / HEADER), str(out_dir / SOURCE)],
        "flash_bytes": flash,
        "vocab_size": tokenizer.vocab_size,
        "vocab_bytes": len(tables["blob"]) + 4 * len(tables["offsets"]) + 2 * len(tables["ids"]),
        "unicode_bytes": 8 * len(tables["starts"]) + len(tables["pool"]),
        "ranges": len(tables["starts"]),
    }
