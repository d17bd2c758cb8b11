"""The C++ tokenizer's data: vocabulary and Unicode tables as const arrays (flash).

`write_tokenizer_data(tokenizer, folder)` writes embbert_tokenizer_data.h/.cpp, which define
`embbert_tokenizer_data` (an `embbert::TokenizerData`, see arduino/src/embbert_tokenizer.h) for
arduino/src/embbert_tokenizer.cpp.

Nothing Unicode-specific is re-implemented here: what each code point becomes is read from the
`tokenizers` library itself, with the tokenizer's own settings -- its BertNormalizer applied to
the code point alone, then the BertPreTokenizer's verdict on each character of the result
(whitespace, a word of its own, or part of a word).

Tables:
- keys: each vocabulary token that some normalised text can reach, as a segment byte (0: word
  start, 1: continuation, stored without its "##" prefix) + UTF-8; sorted, front-coded in blocks
  of BLOCK_SIZE keys, with the token ids beside them.
- ranges of code points that act alike: dropped, a word break, an unknown character (one found in
  no reachable key: its word can only be [UNK]), an unknown one-character word, or a mapping --
  code point + delta or a constant code point (a word character or a word of its own), or a
  short sequence of such units (e.g. a syllable decomposed into several known letters).
"""

from __future__ import annotations

import functools
import hashlib
import json
import unicodedata
from dataclasses import asdict, dataclass
from pathlib import Path

import tokenizers
from tokenizers import PreTokenizedString, normalizers, pre_tokenizers

from tflm_embbert.data.tokenizer import CLS_ID, PAD_ID, SEP_ID, UNK_ID, Tokenizer

HEADER, SOURCE = "embbert_tokenizer_data.h", "embbert_tokenizer_data.cpp"
BLOCK_SIZE = 16  # keys per front-coded block
MAX_WORD_CHARS = 128  # kMaxWordChars in embbert_tokenizer.h
_CODE_POINTS = 0x110000
_SURROGATES = range(0xD800, 0xE000)

# What the BertPreTokenizer makes of one normalised character.
_SPACE, _ISOLATED, _WORD = range(3)
# Unit kinds (UnitKind in embbert_tokenizer.h); a unit is kind << 21 | code point.
UNIT_SPACE, UNIT_WORD, UNIT_ISOLATED, UNIT_UNKNOWN_WORD, UNIT_UNKNOWN_ISOLATED = range(5)
_BREAKS = (UNIT_SPACE, UNIT_ISOLATED, UNIT_UNKNOWN_ISOLATED)
# Range values below _FIRST_MAPPING; a value v >= _FIRST_MAPPING is mappings[v - _FIRST_MAPPING].
VALUE_DROP, VALUE_SPACE, VALUE_UNKNOWN_WORD, VALUE_UNKNOWN_ISOLATED = range(4)
_SIMPLE = {
    (): VALUE_DROP,
    ((UNIT_SPACE, 0),): VALUE_SPACE,
    ((UNIT_UNKNOWN_WORD, 0),): VALUE_UNKNOWN_WORD,
    ((UNIT_UNKNOWN_ISOLATED, 0),): VALUE_UNKNOWN_ISOLATED,
}
_FIRST_MAPPING, _VALUE_BITS = 4, 11
# Mapping kinds (bits 0-1), bit 2: a word of its own, bits 3-31: the payload.
MAP_DELTA, MAP_CONSTANT, MAP_SEQUENCE = range(3)
_DELTA_BIAS = _CODE_POINTS


@dataclass
class Tables:
    keys: bytes
    block_offsets: list[int]
    key_ids: list[int]
    max_key_bytes: int
    ranges: list[int]
    mappings: list[int]
    sequence_offsets: list[int]
    sequence_units: list[int]
    deviations: list[str]  # code points whose canonical reordering the C++ does not reproduce


# ------------------------------------------------------------------ what the library does
def _normalizer(config) -> normalizers.BertNormalizer:
    return normalizers.BertNormalizer(
        clean_text=config.clean_text,
        handle_chinese_chars=config.handle_chinese_chars,
        strip_accents=config.strip_accents,
        lowercase=config.lowercase,
    )


@functools.lru_cache(maxsize=2)  # about 60 MB each
def _normalized(clean_text: bool, chinese: bool, strip_accents: bool, lowercase: bool):
    """The normaliser's output for every code point alone ("" for surrogates)."""
    normalize = normalizers.BertNormalizer(
        clean_text=clean_text,
        handle_chinese_chars=chinese,
        strip_accents=strip_accents,
        lowercase=lowercase,
    ).normalize_str
    return tuple("" if c in _SURROGATES else normalize(chr(c)) for c in range(_CODE_POINTS))


@functools.lru_cache(maxsize=1)
def _classes() -> bytes:
    """_SPACE / _ISOLATED / _WORD per code point, as the BertPreTokenizer splits it.

    One call on "a" + "a".join(every character) + "a": a word character merges with the a's
    around it, punctuation comes out as a one-character piece, whitespace is in no piece.
    (Surrogates cannot be passed; they stand in as "a" and are never decoded anyway.)"""
    text = "a" + "a".join("a" if c in _SURROGATES else chr(c) for c in range(_CODE_POINTS)) + "a"
    split = PreTokenizedString(text)
    pre_tokenizers.BertPreTokenizer().pre_tokenize(split)
    kinds = bytearray([_SPACE]) * len(text)
    for piece, (start, end), _ in split.get_splits(
        offset_referential="original", offset_type="char"
    ):
        one_char_word = end - start == 1 and piece != "a"
        kinds[start:end] = bytes([_ISOLATED if one_char_word else _WORD]) * (end - start)
    return bytes(kinds[1::2])


# ------------------------------------------------------------------------- vocabulary
def _check(tokenizer: Tokenizer) -> None:
    config, vocab = tokenizer.config, tokenizer.vocab
    specials = tuple(config.special_tokens)
    if len(specials) < 5 or tuple(vocab[:5]) != specials[:5]:
        raise ValueError(
            f"vocabulary: expected the special tokens {specials[:5]} at ids 0-4, "
            f"got {tuple(vocab[:5])}"
        )
    if len(vocab) > 1 << 16:
        raise ValueError(f"vocabulary: at most 65,536 tokens (16-bit ids), got {len(vocab):,}")
    first: dict[str, int] = {}
    for token_id, token in enumerate(vocab):
        if token in first:
            raise ValueError(
                f"vocabulary: token {token!r} appears twice (ids {first[token]} and {token_id})"
            )
        first[token] = token_id
    if not 1 <= config.max_input_chars_per_word <= MAX_WORD_CHARS:
        raise ValueError(
            f"tokenizer: max_input_chars_per_word must be 1..{MAX_WORD_CHARS} for the C++ "
            f"tokenizer, got {config.max_input_chars_per_word}"
        )


def _vocabulary_keys(tokenizer: Tokenizer, classes, producible) -> dict[bytes, int]:
    """Segment byte + UTF-8 of every token some normalised word can reach -> its id."""
    config = tokenizer.config
    prefix = config.continuing_subword_prefix

    def reachable(text: str, word_start: bool) -> bool:
        if not text or len(text) > config.max_input_chars_per_word:
            return False
        if len(text) == 1 and word_start and classes[ord(text)] == _ISOLATED:
            return text in producible
        return all(classes[ord(c)] == _WORD and c in producible for c in text)

    keys = {}
    for token_id, token in enumerate(tokenizer.vocab):
        if reachable(token, True):
            keys[b"\x00" + token.encode("utf-8")] = token_id
        if token.startswith(prefix) and reachable(token[len(prefix) :], False):
            keys[b"\x01" + token[len(prefix) :].encode("utf-8")] = token_id
    return keys


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        out.append((value & 0x7F) | (0x80 if value >= 0x80 else 0))
        value >>= 7
        if not value:
            return bytes(out)


def _front_code(keys: list[bytes]) -> tuple[bytes, list[int]]:
    """Sorted keys as records: header (shared << 4 | suffix, 15 = 15 + LEB128), suffix bytes."""
    data, offsets = bytearray(), []
    previous = b""
    for index, key in enumerate(keys):
        shared = 0
        if index % BLOCK_SIZE == 0:
            offsets.append(len(data))
        else:
            limit = min(len(key), len(previous))
            while shared < limit and key[shared] == previous[shared]:
                shared += 1
        suffix = len(key) - shared
        data.append(min(shared, 15) << 4 | min(suffix, 15))
        data += _leb128(shared - 15) if shared >= 15 else b""
        data += _leb128(suffix - 15) if suffix >= 15 else b""
        data += key[shared:]
        previous = key
    return bytes(data), offsets


# -------------------------------------------------------------------------- code points
def _units(output: str, classes, known) -> tuple:
    """The (kind, code point) units of one code point's normalised output, simplified."""
    return _simplify([_unit(char, classes, known) for char in output])


def _unit(char: str, classes, known) -> tuple:
    kind = classes[ord(char)]
    if kind == _SPACE:
        return (UNIT_SPACE, 0)
    if char not in known:
        return (UNIT_UNKNOWN_WORD if kind == _WORD else UNIT_UNKNOWN_ISOLATED, 0)
    return (UNIT_WORD if kind == _WORD else UNIT_ISOLATED, ord(char))


def _simplify(units: list) -> tuple:
    """Same ids, fewer units: a run of word units holding an unknown one is one unknown unit;
    a run between two breaks is a word of its own; spaces beside those words are dropped."""
    runs, index = [], 0
    while index < len(units):  # split into breaks and runs of word units
        if units[index][0] in _BREAKS:
            runs.append([units[index]])
            index += 1
            continue
        end = index
        while end < len(units) and units[end][0] not in _BREAKS:
            end += 1
        run = units[index:end]
        if any(kind == UNIT_UNKNOWN_WORD for kind, _ in run):
            run = [(UNIT_UNKNOWN_WORD, 0)]
        runs.append(run)
        index = end
    out: list = []
    for position, run in enumerate(runs):
        enclosed = 0 < position < len(runs) - 1
        if len(run) == 1 and run[0][0] in (UNIT_WORD, UNIT_UNKNOWN_WORD) and enclosed:
            kind, char = run[0]
            run = [(UNIT_ISOLATED if kind == UNIT_WORD else UNIT_UNKNOWN_ISOLATED, char)]
        out += run
    final: list = []
    for position, unit in enumerate(out):  # spaces beside a break are redundant
        if unit[0] == UNIT_SPACE:
            after = out[position + 1][0] if position + 1 < len(out) else None
            if (final and final[-1][0] in _BREAKS) or after in _BREAKS:
                continue
        final.append(unit)
    return tuple(final)


_SIMPLE_CHOICES = {value: (("value", value),) for value in range(_FIRST_MAPPING)}


def _choices(code_point: int, output: str, classes, known):
    """(encodings of the code point that a range can share, its units if a sequence)."""
    if len(output) == 1:  # the common case, without building units
        kind = classes[ord(output)]
        if kind == _SPACE:
            return _SIMPLE_CHOICES[VALUE_SPACE], None
        if output not in known:
            unknown = VALUE_UNKNOWN_WORD if kind == _WORD else VALUE_UNKNOWN_ISOLATED
            return _SIMPLE_CHOICES[unknown], None
        units = ((UNIT_WORD if kind == _WORD else UNIT_ISOLATED, ord(output)),)
    else:
        units = _units(output, classes, known)
    simple = _SIMPLE.get(units)
    if simple is not None:
        return _SIMPLE_CHOICES[simple], None
    if len(units) == 1:
        kind, char = units[0]
        isolated = int(kind == UNIT_ISOLATED)
        delta = (MAP_DELTA, isolated, char - code_point + _DELTA_BIAS)
        return (delta, (MAP_CONSTANT, isolated, char)), None
    return ((MAP_SEQUENCE, 0, None),), units


def _ranges(outputs, classes, known):
    """[first code point, shared encodings, sequences] for each range of the code space."""
    runs: list = []
    current = None
    for code_point, output in enumerate(outputs):
        if code_point in _SURROGATES:  # never decoded: joins any range
            continue
        choices, units = _choices(code_point, output, classes, known)
        if choices is not current:
            common = [c for c in current if c in choices] if current else []
            if not common:
                runs.append([code_point, choices, []])
                current = choices
                if units is not None:
                    runs[-1][2].append(units)
                continue
            current = runs[-1][1] = common
        if units is not None:
            runs[-1][2].append(units)
    return runs


def _range_tables(runs):
    """ranges (start << 11 | value), mappings, sequence offsets and units."""
    ranges, mappings, index_of = [], [], {}
    offsets, units = [], []
    for start, choices, per_code_point in runs:
        choice = choices[0]
        if choice[0] == "value":
            ranges.append(start << _VALUE_BITS | choice[1])
            continue
        if choice[0] == MAP_SEQUENCE:
            choice = (MAP_SEQUENCE, 0, len(offsets))
            for sequence in per_code_point:
                offsets.append(len(units))
                units += [kind << 21 | char for kind, char in sequence]
        mapping = choice[2] << 3 | choice[1] << 2 | choice[0]
        if mapping not in index_of:
            index_of[mapping] = len(mappings)
            mappings.append(mapping)
        ranges.append(start << _VALUE_BITS | (_FIRST_MAPPING + index_of[mapping]))
    if len(mappings) > (1 << _VALUE_BITS) - _FIRST_MAPPING:
        raise ValueError(
            f"Unicode tables: {len(mappings):,} distinct code point mappings, at most "
            f"{(1 << _VALUE_BITS) - _FIRST_MAPPING:,} fit the range table"
        )
    if offsets:
        offsets.append(len(units))
    return ranges, mappings, offsets, units


def _reordering_deviations(config, producible, classes, known) -> list[str]:
    """Characters that NFD's canonical reordering can move and that matter to the ids (known
    or splitting words): the C++ maps each code point alone and keeps the input order.
    unicodedata only proposes candidates; the library decides."""
    if not config.strip_accents:
        return []
    candidates = sorted(
        c
        for c in producible
        if (c in known or classes[ord(c)] != _WORD) and unicodedata.combining(c)
    )
    if not candidates:
        return []
    normalize = _normalizer(config).normalize_str
    marks = [
        chr(c)
        for c in range(_CODE_POINTS)
        if c not in _SURROGATES and unicodedata.combining(chr(c))
    ]
    found = []
    for char in candidates:
        for mark in marks:
            for first, second in ((char, mark), (mark, char)):
                alone = "a" + normalize(first) + normalize(second)
                if normalize("a" + first + second) != alone:
                    found.append(f"U+{ord(char):04X}")
                    break
            else:
                continue
            break
    return found


def build_tables(tokenizer: Tokenizer) -> Tables:
    """The tables for `tokenizer` (see the module docstring); ValueError if unusable."""
    _check(tokenizer)
    config = tokenizer.config
    outputs = _normalized(
        config.clean_text, config.handle_chinese_chars, config.strip_accents, config.lowercase
    )
    chars = {c for output in outputs for c in output}
    classes = _classes()
    producible = {c for c in chars if classes[ord(c)] != _SPACE}
    keys = _vocabulary_keys(tokenizer, classes, producible)
    known = {c for key in keys for c in key[1:].decode("utf-8")}
    ordered = sorted(keys)
    blob, block_offsets = _front_code(ordered)
    ranges, mappings, sequence_offsets, sequence_units = _range_tables(
        _ranges(outputs, classes, known)
    )
    return Tables(
        keys=blob,
        block_offsets=block_offsets,
        key_ids=[keys[k] for k in ordered],
        max_key_bytes=max((len(k) - 1 for k in ordered), default=0),
        ranges=ranges,
        mappings=mappings,
        sequence_offsets=sequence_offsets,
        sequence_units=sequence_units,
        deviations=_reordering_deviations(config, producible, classes, known),
    )


# ---------------------------------------------------------------------------- C++ files
def _array(ctype: str, name: str, values, per_line: int, fmt=str) -> str:
    """A static const array, or "" when empty (the struct then holds a null pointer)."""
    values = list(values)
    if not values:
        return ""
    rows = [
        "    " + ", ".join(fmt(v) for v in values[i : i + per_line]) + ","
        for i in range(0, len(values), per_line)
    ]
    return f"const {ctype} {name}[{len(values)}] = {{\n" + "\n".join(rows) + "\n};\n\n"


def _provenance(tokenizer: Tokenizer) -> str:
    vocab_hash = hashlib.sha256("\n".join(tokenizer.vocab).encode("utf-8")).hexdigest()[:16]
    settings = json.dumps(asdict(tokenizer.config), ensure_ascii=True)
    return (
        f"// Generated by export/tokenizer_data.py (tokenizers {tokenizers.__version__}) from a\n"
        f"// {tokenizer.vocab_size}-token vocabulary (sha256 of its lines: {vocab_hash}...) and\n"
        f"// tokenizer_config.json {settings}.\n// Do not edit.\n"
    )


def _sizes(tables: Tables) -> dict:
    vocab = len(tables.keys) + 4 * len(tables.block_offsets) + 2 * len(tables.key_ids)
    unicode_tables = 4 * (
        len(tables.ranges)
        + len(tables.mappings)
        + len(tables.sequence_offsets)
        + len(tables.sequence_units)
    )
    struct = 4 * 20  # TokenizerData: 7 pointers + 13 32-bit fields on a 32-bit MCU
    return {"vocab": vocab, "unicode": unicode_tables, "struct": struct}


def _source(tokenizer: Tokenizer, tables: Tables) -> str:
    def name_or_null(name, values):
        return name if values else "nullptr"

    def hex_word(value):
        return f"0x{value:08x}u"

    arrays = (
        _array("uint8_t", "kKeys", tables.keys, 20)
        + _array("uint32_t", "kBlockOffsets", tables.block_offsets, 10)
        + _array("uint16_t", "kKeyIds", tables.key_ids, 14)
        + _array("uint32_t", "kRanges", tables.ranges, 6, hex_word)
        + _array("uint32_t", "kMappings", tables.mappings, 6, hex_word)
        + _array("uint32_t", "kSequenceOffsets", tables.sequence_offsets, 10)
        + _array("uint32_t", "kSequenceUnits", tables.sequence_units, 6, hex_word)
    )
    deviations = (
        "// Canonical reordering NOT reproduced for: " + " ".join(tables.deviations) + "\n"
        if tables.deviations
        else "// Canonical reordering of combining marks: checked, no effect on these ids.\n"
    )
    return (
        _provenance(tokenizer)
        + deviations
        + '#include "embbert_tokenizer_data.h"\n\nnamespace {\n\n'
        + arrays
        + "}  // namespace\n\n"
        "const embbert::TokenizerData embbert_tokenizer_data = {\n"
        f"    {name_or_null('kKeys', tables.keys)}, "
        f"{name_or_null('kBlockOffsets', tables.block_offsets)}, "
        f"{name_or_null('kKeyIds', tables.key_ids)},\n"
        f"    {len(tables.key_ids)}u, {BLOCK_SIZE}u, {tables.max_key_bytes}u,\n"
        f"    kRanges, {len(tables.ranges)}u, "
        f"{name_or_null('kMappings', tables.mappings)}, {len(tables.mappings)}u,\n"
        f"    {name_or_null('kSequenceOffsets', tables.sequence_offsets)}, "
        f"{name_or_null('kSequenceUnits', tables.sequence_units)}, "
        f"{max(len(tables.sequence_offsets) - 1, 0)}u,\n"
        f"    {tokenizer.vocab_size}, {PAD_ID}, {UNK_ID}, {CLS_ID}, {SEP_ID}, "
        f"{tokenizer.config.max_input_chars_per_word}}};\n"
    )


def write_tokenizer_data(tokenizer: Tokenizer, out_dir: Path) -> dict:
    """Writes embbert_tokenizer_data.h/.cpp into `out_dir`.

    Returns {"files", "flash_bytes" (all const tables + the struct), "vocab_size",
    "flash_breakdown" ({"vocab", "unicode", "struct"} bytes), "deviations"}.
    """
    tables = build_tables(tokenizer)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    header = (
        _provenance(tokenizer)
        + "#ifndef EMBBERT_TOKENIZER_DATA_H_\n#define EMBBERT_TOKENIZER_DATA_H_\n\n"
        '#include "embbert_tokenizer.h"\n\n'
        "extern const embbert::TokenizerData embbert_tokenizer_data;\n\n"
        "#endif  // EMBBERT_TOKENIZER_DATA_H_\n"
    )
    (out_dir / HEADER).write_text(header, encoding="utf-8")
    (out_dir / SOURCE).write_text(_source(tokenizer, tables), encoding="utf-8")
    sizes = _sizes(tables)
    return {
        "files": [str(out_dir / HEADER), str(out_dir / SOURCE)],
        "flash_bytes": sum(sizes.values()),
        "vocab_size": tokenizer.vocab_size,
        "flash_breakdown": sizes,
        "deviations": tables.deviations,
    }
