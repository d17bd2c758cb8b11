"""The C++ WordPiece tokenizer (arduino/src) gives the Python tokenizer's ids.

The harness (arduino/host/tokenizer_main.cpp) is compiled with g++ -Wall -Wextra -Werror and
ASan + UBSan, fed every string in one run, and its ids compared with `Tokenizer.encode` (invalid
UTF-8: Python gets `bytes.decode("utf-8", "replace")`).
"""

import random
import shutil
import struct
import subprocess

import pytest

from export.tokenizer_data import build_tables, write_tokenizer_data
from tflm_embbert import paths
from tflm_embbert.datasets import load_task
from tflm_embbert.tokenizer import Tokenizer

GXX = shutil.which("g++")
pytestmark = pytest.mark.skipif(GXX is None, reason="g++ not installed")
SRC = paths.REPO_ROOT / "arduino" / "src"
HOST = paths.REPO_ROOT / "arduino" / "host"
WARNINGS = ["-std=c++14", "-Wall", "-Wextra", "-Werror"]


def _build(tokenizer, folder):
    write_tokenizer_data(tokenizer, folder)
    binary = folder / "harness"
    done = subprocess.run(
        [GXX, *WARNINGS, "-O1", "-g", "-fsanitize=address,undefined",
         "-fno-sanitize-recover=all", "-I", str(SRC), "-I", str(folder),
         str(HOST / "tokenizer_main.cpp"), str(SRC / "embbert_tokenizer.cpp"),
         str(folder / "embbert_tokenizer_data.cpp"), "-o", str(binary)],
        capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return binary


def _run(binary, cases):
    """cases: [(raw bytes, seq_len)] -> [(count, ids)] from the C++ harness."""
    payload = b"".join(struct.pack("<II", seq_len, len(raw)) + raw for raw, seq_len in cases)
    done = subprocess.run([str(binary)], input=payload, capture_output=True)
    assert done.returncode == 0 and not done.stderr, done.stderr.decode(errors="replace")[-3000:]
    rows = [list(map(int, line.split())) for line in done.stdout.decode().splitlines()]
    assert len(rows) == len(cases)
    return [(row[0], row[1:]) for row in rows]


def _generated(rng: random.Random, words: list[str]) -> list[bytes]:
    """Edge cases: empty, whitespace, emoji, accents, CJK, controls, combining marks, invalid
    UTF-8, long inputs, long words, unknown words, random code points from every plane."""
    cases = [b"", b" ", b"\t\n\r ", "\u3000\u00a0\u2028\u2029 \u0085".encode(), b"\x00\x00",
             "😀🎉 héllo wörld".encode(), "ÀÉÎÕÜ ñ ç ß ǅ ﬁ Å".encode(), "Ελληνικά ΣΊΣΥΦΟΣ".encode(),
             "Привет, МИР!".encode(), "中文字符测试 日本語のテキスト 한국어 텍스트".encode(),
             "e\u0301\u0302 a\u0308\u0323 ̀".encode(), b"\xff\xfe\xc0\xaf\xed\xa0\x80\xf4\x90\x80",
             b"abc\xe2\x82", b"\xe2\x82abc", ("x" * 150).encode(),
             ("supercalifragilistic" * 6).encode(), b"qzxv jjjjq xqxqxq",
             b"[CLS] [SEP] [PAD] [UNK] ##ing ## #", b"don't stop-believing... (really?!)"]
    pool = [chr(c) for c in range(0x20, 0x250)] + list("😀🎉🚀👍🏽\u200d\u200b\ufeff\ufffd")
    for _ in range(1500):
        kind = rng.randrange(6)
        if kind == 0:  # random code points from all planes
            chars = [chr(rng.choice([rng.randrange(0x80), rng.randrange(0x800),
                                     rng.randrange(0x10000), rng.randrange(0x110000)]))
                     for _ in range(rng.randrange(1, 30))]
            text = "".join(c for c in chars if not 0xD800 <= ord(c) < 0xE000)
            cases.append(text.encode())
        elif kind == 1:  # words with accents / case / punctuation mixed in
            text = " ".join(rng.choice(words) for _ in range(rng.randrange(1, 20)))
            text = "".join(rng.choice(pool) if rng.random() < 0.1 else c for c in text)
            cases.append((text.upper() if rng.random() < 0.3 else text).encode())
        elif kind == 2:  # invalid UTF-8 bytes spliced into text
            raw = bytearray(" ".join(rng.choice(words) for _ in range(8)).encode())
            for _ in range(rng.randrange(1, 5)):
                raw.insert(rng.randrange(len(raw) + 1), rng.randrange(0x80, 0x100))
            cases.append(bytes(raw))
        elif kind == 3:  # long inputs (truncated)
            text = " ".join(rng.choice(words) for _ in range(rng.randrange(100, 400)))
            cases.append(text.encode())
        elif kind == 4:  # raw random bytes
            cases.append(bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40))))
        else:  # long words around the 100-character limit
            cases.append(("ab" * rng.randrange(45, 55) + " " + rng.choice(words)).encode())
    return cases


def _dataset_lines() -> list[str]:
    lines = [e.text_a for e in load_task("snips", paths.SHIPPED_DATA_DIR).train]
    shared = paths.shared_data_dir()
    for task in ("emotion", "sst2"):
        try:
            lines += [e.text_a for e in load_task(task, shared).test]
        except (FileNotFoundError, OSError, ValueError):
            pass  # ../shared is not there: the shipped Snips lines suffice
    return lines


def _check_parity(tokenizer, binary, cases):
    results = _run(binary, cases)
    mismatches = []
    for (raw, seq_len), (count, ids) in zip(cases, results, strict=True):
        expected, _ = tokenizer.encode(raw.decode("utf-8", "replace"), seq_len=seq_len)
        expected_count = sum(1 for i in expected if i != 0)
        if ids != expected or count != expected_count:
            mismatches.append((raw, seq_len, expected, ids))
    assert not mismatches, (
        f"{len(mismatches)} of {len(cases)} differ; first: {mismatches[0][0]!r} "
        f"L={mismatches[0][1]}"
        f"\n python {mismatches[0][2]}\n c++    {mismatches[0][3]}"
    )
    return len(cases)


def test_cpp_tokenizer_matches_python_on_10k_strings(tmp_path):
    tokenizer = Tokenizer.load(paths.SHIPPED_TOKENIZER_DIR)
    binary = _build(tokenizer, tmp_path)
    rng = random.Random(0)
    lines = _dataset_lines()
    words = sorted({w for line in lines[:3000] for w in line.split()})
    cases = [(line.encode(), 128) for line in lines]
    cases += [(raw, rng.choice([3, 4, 8, 128, 512])) for raw in _generated(rng, words)]
    cases += [(line.encode(), rng.choice([3, 4, 8])) for line in rng.sample(lines, 500)]
    checked = _check_parity(tokenizer, binary, cases)
    assert checked >= 10_000, f"only {checked} strings"


def test_cpp_tokenizer_matches_python_with_a_tiny_vocabulary(tiny_tokenizer, tmp_path):
    binary = _build(tiny_tokenizer, tmp_path)
    rng = random.Random(1)
    words = tiny_tokenizer.vocab[5:]
    cases = [(raw, rng.choice([3, 16, 64])) for raw in _generated(rng, words)]
    _check_parity(tiny_tokenizer, binary, cases)


def test_tables_are_compact_and_refuse_what_the_cpp_cannot_do(tmp_path):
    tokenizer = Tokenizer.load(paths.SHIPPED_TOKENIZER_DIR)
    info = write_tokenizer_data(tokenizer, tmp_path)
    assert info["vocab_size"] == 8192
    assert info["flash_bytes"] == info["vocab_bytes"] + info["unicode_bytes"] < 160_000
    tables = build_tables(tokenizer)
    assert tables["starts"] == sorted(tables["starts"]) and tables["starts"][0] == 0
    long_words = Tokenizer(tokenizer.vocab, type(tokenizer.config)(max_input_chars_per_word=200))
    with pytest.raises(ValueError, match="max_input_chars_per_word"):
        write_tokenizer_data(long_words, tmp_path)


def test_generated_data_compiles_on_its_own(tmp_path, tiny_tokenizer):
    write_tokenizer_data(tiny_tokenizer, tmp_path)
    for source in (tmp_path / "embbert_tokenizer_data.cpp", SRC / "embbert_tokenizer.cpp"):
        done = subprocess.run([GXX, *WARNINGS, "-fsyntax-only", "-I", str(SRC), "-I",
                               str(tmp_path), str(source)], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
