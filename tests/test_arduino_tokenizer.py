"""The C++ WordPiece tokenizer (arduino/src) gives exactly the Python tokenizer's ids.

The host harness (arduino/host/tokenizer_main.cpp) is built with the generated tables, g++
-Wall -Wextra -Werror and ASan + UBSan, fed every case in one run and its ids compared with
`Tokenizer.encode_batch`; invalid UTF-8 reaches Python as `bytes.decode("utf-8", "replace")`.
"""

from __future__ import annotations

import gzip
import itertools
import random
import shutil
import struct
import subprocess
from collections import defaultdict
from types import SimpleNamespace

import pytest

from export.tokenizer_data import build_tables, write_tokenizer_data
from tflm_embbert.common import paths
from tflm_embbert.data.tokenizer import Tokenizer, TokenizerConfig

GXX = shutil.which("g++")
pytestmark = pytest.mark.skipif(GXX is None, reason="g++ not installed (needed to build C++)")
SRC = paths.REPO_ROOT / "arduino" / "src"
HOST = paths.REPO_ROOT / "arduino" / "host"
STRICT = ["-std=c++14", "-Wall", "-Wextra", "-Werror"]
SANITIZE = ["-O1", "-g", "-fsanitize=address,undefined", "-fno-sanitize-recover=all"]
DATA_FILES = ("*/*.tsv", "*/*.csv", "*/*.txt", "*/*.gz", "*/*/seq.in")
LINES_PER_FILE = 700
MIN_CASES = 10_000


# ------------------------------------------------------------------------------ helpers
def _build(tokenizer, folder):
    """Generates the tables into `folder` and builds the sanitized harness there."""
    info = write_tokenizer_data(tokenizer, folder)
    binary = folder / "harness"
    sources = [
        HOST / "tokenizer_main.cpp",
        SRC / "embbert_tokenizer.cpp",
        folder / "embbert_tokenizer_data.cpp",
    ]
    done = subprocess.run(
        [
            GXX,
            *STRICT,
            *SANITIZE,
            "-I",
            str(SRC),
            "-I",
            str(folder),
            *map(str, sources),
            "-o",
            str(binary),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return binary, info


def _cpp_ids(binary, cases):
    """[(raw bytes, seq_len)] -> [(returned count, ids)], in one run of the harness."""
    payload = b"".join(struct.pack("<II", seq_len, len(raw)) + raw for raw, seq_len in cases)
    done = subprocess.run([str(binary)], input=payload, capture_output=True)
    report = done.stderr.decode(errors="replace")
    assert done.returncode == 0 and not report, f"exit {done.returncode}: {report[-3000:]}"
    rows = [list(map(int, line.split())) for line in done.stdout.decode().splitlines()]
    assert len(rows) == len(cases), f"{len(rows)} lines for {len(cases)} cases"
    return [(row[0], row[1:]) for row in rows]


def _python_ids(tokenizer, cases):
    """The Python tokenizer's ids for each case, batched per sequence length."""
    by_length = defaultdict(list)
    for index, (_, seq_len) in enumerate(cases):
        by_length[seq_len].append(index)
    ids = [None] * len(cases)
    for seq_len, indices in by_length.items():
        texts = [cases[i][0].decode("utf-8", "replace") for i in indices]
        encoded, _ = tokenizer.encode_batch(texts, seq_len=seq_len)
        for i, row in zip(indices, encoded.tolist(), strict=True):
            ids[i] = row
    return ids


def _assert_parity(tokenizer, binary, cases) -> int:
    """Asserts identical ids and counts on every case; returns how many were compared."""
    mismatches = []
    for (raw, seq_len), expected, (count, ids) in zip(
        cases, _python_ids(tokenizer, cases), _cpp_ids(binary, cases), strict=True
    ):
        expected_count = len(expected)
        while expected_count > 0 and expected[expected_count - 1] == 0:  # [PAD] tail
            expected_count -= 1
        if ids != expected or count != expected_count:
            mismatches.append((raw, seq_len, expected, ids, count))
    first = mismatches[0] if mismatches else None
    assert not mismatches, (
        f"parity: {len(cases) - len(mismatches)} of {len(cases)} identical; first difference: "
        f"{first[0][:200]!r} L={first[1]}\n python {first[2]}\n c++    {first[3]} "
        f"(returned {first[4]})"
    )
    return len(cases)


# -------------------------------------------------------------------------------- cases
def _dataset_lines(rng: random.Random) -> list[bytes]:
    """Raw lines (labels, tabs and all) of the datasets in ../shared/data, or of the shipped
    Snips data when that is absent."""
    shared = paths.shared_data_dir()
    files = sorted({p for pattern in DATA_FILES for p in shared.glob(pattern)})
    per_file = LINES_PER_FILE
    if not files:  # every line of the shipped Snips train/test
        files, per_file = sorted(paths.SHIPPED_DATA_DIR.glob("*/*/seq.in")), 20_000
    lines = []
    for path in files:
        opener = gzip.open if path.suffix == ".gz" else open
        with opener(path, "rb") as handle:
            file_lines = [line.rstrip(b"\r\n") for line in itertools.islice(handle, 20_000)]
        lines += rng.sample(file_lines, min(per_file, len(file_lines)))
    return lines


def _random_text(rng: random.Random, alphabet: str, words: list[str], size: int) -> str:
    """Dataset words with characters from `alphabet` mixed in, sometimes upper-cased."""
    text = " ".join(rng.choice(words) for _ in range(size))
    text = "".join(rng.choice(alphabet) if rng.random() < 0.15 else c for c in text)
    return text.upper() if rng.random() < 0.3 else text


def _random_code_points(rng: random.Random, count: int) -> str:
    """Code points from every plane (more from the first ones), surrogates left out."""
    chars = []
    while len(chars) < count:
        limit = rng.choice([0x80, 0x800, 0x3400, 0x10000, 0x30000, 0x110000])
        code_point = rng.randrange(limit)
        if not 0xD800 <= code_point < 0xE000:
            chars.append(chr(code_point))
    return "".join(chars)


def _invalid_utf8(rng: random.Random, words: list[str]) -> bytes:
    raw = bytearray(" ".join(rng.choice(words) for _ in range(6)).encode())
    bad = [
        b"\xff",
        b"\xfe",
        b"\x80",
        b"\xbf",
        b"\xc0\xaf",
        b"\xc1\xbf",
        b"\xe0\x80\xaf",
        b"\xed\xa0\x80",
        b"\xed\xbf\xbf",
        b"\xf4\x90\x80\x80",
        b"\xf5\x80",
        b"\xf8\x88\x80",
        b"\xe2\x82",
        b"\xf0\x9f\x98",
        b"\xc3",
        b"\xe2",
        b"\xf0\x90\x80\xf0\x90\x80\x80",
    ]
    for _ in range(rng.randrange(1, 5)):
        at = rng.randrange(len(raw) + 1)
        raw[at:at] = rng.choice(bad) if rng.random() < 0.7 else bytes([rng.randrange(256)])
    return bytes(raw)


FIXED = [
    "",
    " ",
    "\t\n\r  \x0b\x0c",
    "\u00a0\u1680\u2000\u2003\u200a\u2028\u2029\u202f\u205f\u3000",
    "\x85 \x00\x00 \x1f\x7f",
    "a\x00b c\x01d e\u200bf g\u200dh i\ufeffj k\ufffdl",
    "😀🎉🚀 👍🏽 \U0001f468\u200d\U0001f469\u200d\U0001f467 \u2764\ufe0f hello😀world",
    "ÀÉÎÕÜ àéîõü ñ ç ß ẞ ǅ ǆ ﬁ ﬂ Å Ω K ı İ",
    "Ελληνικά ΣΊΣΥΦΟΣ ὀδυσσεύς ΐ",
    "Привет, МИР! Ёлка йод Ӂ",
    "中文字符测试 日本語のテキスト",
    "한국어 텍스트 가나다 힣",
    "\uf900\uf901\uf902 \U0002f800\U0002f801 \U00020000 \u3400",
    "e\u0301\u0302 a\u0308\u0323 o\u0323\u0308 \u0301x",
    "a\U0001d165\U0001d16e b\U0001d16e\U0001d165 c\u08d4\u0301\u08e1",
    "ａｂｃ ＡＢＣ １２３ ！？",
    "x" * 100,
    "x" * 101,
    "é" * 100,
    "é" * 101,
    "ab" * 60,
    "supercalifragilisticexpialidocious " * 3,
    "qzxv jjjjq xqxqxq zzzzzzzz",
    "[CLS] [SEP] [PAD] [UNK] [MASK] ##ing ## # ###",
    "don't stop-believing... (really?!) $5.99",
    "\U000f0000\U0010fffd \ue000\uf8ff \ufdd0\uffff\U0001ffff",
    "مرحبا بالعالم שלום עולם",
    "नमस्ते दुनिया ไทย ภาษา",
    "\u0300\u0301\u0302",
    "a" + "\u0301" * 50,
]


def _generated(rng: random.Random, words: list[str]) -> list[bytes]:
    """Edge cases plus random ones: text, code points, invalid bytes, long inputs/words."""
    alphabet = (
        "".join(chr(c) for c in range(0x20, 0x250))
        + "ΑΒΓΔΣΩαβγδσωςάέίПРСТпрстёЁ中文日本語한국\u3000\u00a0\t\n\u0301\u0308\u200d\ufffd"
        + "😀🎉🚀👍🏽❤️"
    )
    cases = [text.encode() for text in FIXED]
    for _ in range(2500):
        kind = rng.randrange(7)
        if kind == 0:
            cases.append(_random_code_points(rng, rng.randrange(1, 40)).encode())
        elif kind == 1:
            cases.append(_random_text(rng, alphabet, words, rng.randrange(1, 25)).encode())
        elif kind == 2:
            cases.append(_invalid_utf8(rng, words))
        elif kind == 3:  # longer than any seq_len
            cases.append(
                " ".join(rng.choice(words) for _ in range(rng.randrange(150, 700))).encode()
            )
        elif kind == 4:
            cases.append(bytes(rng.randrange(256) for _ in range(rng.randrange(60))))
        elif kind == 5:  # words around max_input_chars_per_word
            word = "".join(rng.choice(words) for _ in range(40)).replace(" ", "")
            cases.append((word[: rng.randrange(90, 110)] + " " + rng.choice(words)).encode())
        else:  # combining marks, controls and spaces between letters
            marks = [
                chr(
                    rng.choice(
                        [
                            rng.randrange(0x300, 0x370),
                            rng.randrange(0x1AB0, 0x1B00),
                            rng.randrange(0x20D0, 0x2100),
                            rng.randrange(0, 0x20),
                        ]
                    )
                )
                for _ in range(rng.randrange(1, 12))
            ]
            cases.append("".join(rng.choice("aeiouAEIOU ") + m for m in marks).encode())
    return cases


def _words(lines: list[bytes]) -> list[str]:
    text = b" ".join(lines[:3000]).decode("utf-8", "replace")
    return sorted(set(text.split()))[:5000] or ["hello"]


# -------------------------------------------------------------------------------- tests
@pytest.fixture(scope="module")
def shipped():
    return Tokenizer.load(paths.SHIPPED_TOKENIZER_DIR)


def test_cpp_matches_python_on_datasets_and_edge_cases(shipped, tmp_path):
    binary, info = _build(shipped, tmp_path)
    rng = random.Random(0)
    lines = _dataset_lines(rng)
    generated = _generated(rng, _words(lines))
    cases = [(line, 128) for line in lines]
    cases += [(raw, rng.choice([3, 4, 8, 128, 128, 512])) for raw in generated]
    cases += [(line, rng.choice([3, 4, 8, 512])) for line in rng.sample(lines, 1000)]
    while len(cases) < MIN_CASES:  # without ../shared/data: more generated strings
        cases += [(raw, 128) for raw in _generated(rng, _words(lines))]
    checked = _assert_parity(shipped, binary, cases)
    assert checked >= MIN_CASES, f"only {checked} cases"
    assert info["vocab_size"] == 8192 and info["deviations"] == []


def _tiny_variant(tiny: Tokenizer) -> Tokenizer:
    """The tiny vocabulary with every normaliser option off, a '@@' prefix, 12-character
    words and tokens that only those options reach (capitals, U+FFFD, a kept accent)."""
    config = TokenizerConfig(
        lowercase=False,
        strip_accents=False,
        clean_text=False,
        handle_chinese_chars=False,
        continuing_subword_prefix="@@",
        max_input_chars_per_word=12,
    )
    vocab = [t.replace("##", "@@", 1) for t in tiny.vocab]
    vocab += ["The", "Q", "@@X", "\ufffd", "@@\ufffd", "é", "@@\u0301", "中", "@@文", "\x00"]
    return Tokenizer(vocab, config)


def _with_jamo(tiny: Tokenizer) -> Tokenizer:
    """The tiny vocabulary plus Hangul jamo: syllables then map to sequences of units."""
    jamo = [
        "\u1112",
        "\u1100",
        "##\u1161",
        "##\u11ab",
        "##\u116e",
        "##\u11a8",
        "##\u1100",
        "ß",
        "##ß",
        "ﬁ",
    ]
    return Tokenizer(list(tiny.vocab) + jamo, tiny.config)


@pytest.mark.parametrize("variant", ["tiny", "options_off", "jamo"])
def test_cpp_matches_python_with_tiny_vocabularies(tiny_tokenizer, tmp_path, variant):
    tokenizer = {"tiny": lambda t: t, "options_off": _tiny_variant, "jamo": _with_jamo}[variant](
        tiny_tokenizer
    )
    binary, _ = _build(tokenizer, tmp_path)
    rng = random.Random(1)
    words = [t.replace("##", "").replace("@@", "") for t in tokenizer.vocab[5:]]
    extra = [
        "THE Quick QX The\ufffd\ufffdX",
        "한국 학교 한글 하나",
        "中文 中中文",
        "e\u0301 é",
        "thequickbrownfox " * 3,
        "a\x00b \x00",
    ]
    cases = [(text.encode(), 16) for text in extra]
    cases += [(b"The\xff\xfeX \xe2\x82Q \xf0\x9f\x98", 16)]
    cases += [(raw, rng.choice([3, 4, 8, 16, 64])) for raw in _generated(rng, words)[:1500]]
    checked = _assert_parity(tokenizer, binary, cases)
    assert checked == len(cases) > 1500
    if variant == "jamo":
        assert build_tables(tokenizer).sequence_units, "no Hangul sequence table to test"


def test_generated_files_compile_alone_and_the_tokenizer_uses_no_heap(tiny_tokenizer, tmp_path):
    write_tokenizer_data(_with_jamo(tiny_tokenizer), tmp_path)
    for source in (tmp_path / "embbert_tokenizer_data.cpp", SRC / "embbert_tokenizer.cpp"):
        done = subprocess.run(
            [GXX, *STRICT, "-fsyntax-only", "-I", str(SRC), "-I", str(tmp_path), str(source)],
            capture_output=True,
            text=True,
        )
        assert done.returncode == 0, f"{source.name}: {done.stderr[-2000:]}"
    obj = tmp_path / "tokenizer.o"
    done = subprocess.run(
        [
            GXX,
            *STRICT,
            "-O2",
            "-fno-exceptions",
            "-fno-rtti",
            "-Wstack-usage=1024",
            "-c",
            "-I",
            str(SRC),
            str(SRC / "embbert_tokenizer.cpp"),
            "-o",
            str(obj),
        ],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    nm = shutil.which("nm")
    if nm:  # no allocation, no exceptions, no stdio: nothing from outside but memcpy & co
        undefined = subprocess.run([nm, "-u", "-C", str(obj)], capture_output=True, text=True)
        names = undefined.stdout.split()
        assert not [n for n in names if any(w in n for w in ("new", "malloc", "cxa", "printf"))]


def test_generated_data_is_compact_and_describes_itself(shipped, tmp_path):
    info = write_tokenizer_data(shipped, tmp_path)
    breakdown = info["flash_breakdown"]
    assert info["flash_bytes"] == sum(breakdown.values()) < 100_000, breakdown
    assert breakdown["unicode"] < 20_000, breakdown
    assert [p.rsplit("/", 1)[-1] for p in info["files"]] == [
        "embbert_tokenizer_data.h",
        "embbert_tokenizer_data.cpp",
    ]
    source = (tmp_path / "embbert_tokenizer_data.cpp").read_text()
    assert source.startswith("// Generated by export/tokenizer_data.py")
    assert "8192-token vocabulary" in source
    assert (
        "extern const embbert::TokenizerData embbert_tokenizer_data;"
        in (tmp_path / "embbert_tokenizer_data.h").read_text()
    )


def _fake(vocab, **config):
    return SimpleNamespace(vocab=vocab, vocab_size=len(vocab), config=TokenizerConfig(**config))


@pytest.mark.parametrize(
    ("vocab", "config", "message"),
    [
        (["[UNK]", "[PAD]", "[CLS]", "[MASK]", "[SEP]", "a"], {}, "special tokens"),
        (["[PAD]", "[UNK]", "[CLS]", "[MASK]", "[SEP]", "a", "b", "a"], {}, "'a' appears twice"),
        (
            ["[PAD]", "[UNK]", "[CLS]", "[MASK]", "[SEP]", "a"],
            {"max_input_chars_per_word": 200},
            "max_input_chars_per_word",
        ),
        (
            ["[PAD]", "[UNK]", "[CLS]", "[MASK]", "[SEP]"] + [f"t{i}" for i in range(70_000)],
            {},
            "at most 65,536 tokens",
        ),
    ],
)
def test_refuses_what_the_cpp_cannot_encode(tmp_path, vocab, config, message):
    with pytest.raises(ValueError, match=message) as error:
        write_tokenizer_data(_fake(vocab, **config), tmp_path)
    assert "\n" not in str(error.value)
    assert not (tmp_path / "embbert_tokenizer_data.cpp").exists()
