"""Fuzzes the C++ tokenizer with libFuzzer (clang, ASan + UBSan) for a fixed time.

    python bench/fuzz_tokenizer.py              # 300 s
    python bench/fuzz_tokenizer.py --seconds 60

Generates the shipped vocabulary's tables, builds arduino/host/tokenizer_fuzz.cpp with
`clang++ -fsanitize=fuzzer,address,undefined`, seeds the corpus with dataset lines (and a few
edge cases), runs libFuzzer for --seconds and records executions, exec/s, coverage, corpus size
and crashes in bench/results/fuzz_tokenizer/ (results.json, results.md, the tail of the log;
a crashing input is kept there as crash-*).
"""

from __future__ import annotations

import itertools
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench.common import machine, markdown_table, write_json  # noqa: E402
from export.tokenizer_data import write_tokenizer_data  # noqa: E402
from tflm_embbert.common import paths  # noqa: E402
from tflm_embbert.data.tokenizer import Tokenizer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("seconds", 300, "How long libFuzzer runs.")
flags.DEFINE_integer("seeds", 300, "Dataset lines in the seed corpus.")
flags.DEFINE_string("out", "bench/results/fuzz_tokenizer", "Result folder.")

SRC = paths.REPO_ROOT / "arduino" / "src"
TARGET = paths.REPO_ROOT / "arduino" / "host" / "tokenizer_fuzz.cpp"
EDGE_SEEDS = [
    "",
    " \t\n",
    "héllo wörld ΣΊΣΥΦΟΣ",
    "中文 한국어 😀👍🏽",
    "e\u0301\u0308 x" * 3,
    "x" * 120,
    "[CLS] ##ing don't!",
]


def _clang() -> str:
    clang = shutil.which("clang++")
    if clang is None:
        sys.exit("clang++ not found: libFuzzer needs clang (Debian/Ubuntu: apt-get install clang)")
    return clang


def _build(clang: str, work: Path) -> Path:
    info = write_tokenizer_data(Tokenizer.load(paths.SHIPPED_TOKENIZER_DIR), work)
    binary = work / "tokenizer_fuzz"
    subprocess.run(
        [
            clang,
            "-std=c++14",
            "-O1",
            "-g",
            "-fsanitize=fuzzer,address,undefined",
            "-fno-sanitize-recover=all",
            "-I",
            str(SRC),
            "-I",
            str(work),
            str(TARGET),
            str(SRC / "embbert_tokenizer.cpp"),
            info["files"][1],
            "-o",
            str(binary),
        ],
        check=True,
    )
    return binary


def _seed_lines(count: int) -> list[bytes]:
    """Lines of the shared datasets (or the shipped Snips data), seeded choice."""
    files = sorted(paths.shared_data_dir().glob("*/*.tsv")) + sorted(
        paths.SHIPPED_DATA_DIR.glob("*/*/seq.in")
    )
    lines = []
    for path in files:
        with open(path, "rb") as handle:
            lines += [line.rstrip(b"\r\n") for line in itertools.islice(handle, 2000)]
    return random.Random(0).sample(lines, min(count, len(lines)))


def _seed_corpus(folder: Path) -> int:
    folder.mkdir()
    seeds = _seed_lines(FLAGS.seeds) + [text.encode() for text in EDGE_SEEDS]
    seeds.append(b"ab\xff\xc0\xaf\xed\xa0\x80\xf4\x90\x80\x80\xe2\x82")
    for i, seed in enumerate(seeds):
        (folder / f"seed{i:04d}").write_bytes(seed)
    return len(seeds)


def _parse(log: str) -> dict:
    """Final statistics from libFuzzer's output (-print_final_stats=1 and status lines)."""

    def stat(name):
        found = re.findall(rf"stat::{name}:\s+(\d+)", log)
        return int(found[-1]) if found else None

    status = re.findall(r"cov: (\d+) ft: (\d+) corp: (\d+)/", log)
    return {
        "executions": stat("number_of_executed_units"),
        "exec_per_second": stat("average_exec_per_sec"),
        "new_units_added": stat("new_units_added"),
        "peak_rss_mb": stat("peak_rss_mb"),
        "coverage_edges": int(status[-1][0]) if status else None,
        "features": int(status[-1][1]) if status else None,
        "corpus_units": int(status[-1][2]) if status else None,
    }


def main(argv):
    del argv
    clang = _clang()
    out = Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    for old in out.glob("crash-*"):
        old.unlink()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        binary = _build(clang, work)
        seeds = _seed_corpus(work / "corpus")
        print(f"fuzzing for {FLAGS.seconds} s from {seeds} seeds", flush=True)
        started = time.time()
        done = subprocess.run(
            [
                str(binary),
                str(work / "corpus"),
                f"-max_total_time={FLAGS.seconds}",
                "-print_final_stats=1",
                f"-artifact_prefix={out.resolve()}/crash-",
            ],
            capture_output=True,
            text=True,
            errors="replace",
        )
        wall = time.time() - started
    log = done.stdout + done.stderr
    (out / "fuzz.log").write_text("\n".join(log.splitlines()[-80:]) + "\n")
    result = {
        "machine": machine(),
        "compiler": subprocess.run(
            [clang, "--version"], capture_output=True, text=True
        ).stdout.splitlines()[0],
        "seconds": FLAGS.seconds,
        "wall_seconds": round(wall, 1),
        "seed_inputs": seeds,
        "exit_code": done.returncode,
        **_parse(log),
        "crashes": len(list(out.glob("crash-*"))),
    }
    write_json(out / "results.json", result)
    keys = [
        "seconds",
        "executions",
        "exec_per_second",
        "coverage_edges",
        "features",
        "corpus_units",
        "crashes",
        "exit_code",
    ]
    (out / "results.md").write_text(
        "# libFuzzer on the C++ tokenizer (ASan + UBSan)\n\n"
        "`python bench/fuzz_tokenizer.py`: the shipped vocabulary's tables, "
        "arduino/host/tokenizer_fuzz.cpp (seq_len 3, 4, 8, 32, 128, 512; traps on a broken "
        "invariant), seeded with dataset lines.\n\n"
        + markdown_table(keys, [[result[k] for k in keys]])
    )
    print((out / "results.md").read_text())
    if done.returncode != 0:
        sys.exit(f"libFuzzer stopped with exit code {done.returncode}: see {out / 'fuzz.log'}")


if __name__ == "__main__":
    app.run(main)
