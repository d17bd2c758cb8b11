"""Fuzzes the C++ tokenizer with libFuzzer (clang, ASan + UBSan) for a fixed time.

    python bench/fuzz_tokenizer.py --seconds 300

Builds arduino/host/tokenizer_fuzz.cpp with the shipped vocabulary's tables, seeds the corpus
with Snips sentences, runs libFuzzer and records executions, exec/s, coverage and crashes in
bench/results/fuzz_tokenizer/ (results.json, results.md; a crashing input is kept there too).
"""

from __future__ import annotations

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
from tflm_embbert import paths  # noqa: E402
from tflm_embbert.datasets import load_task  # noqa: E402
from tflm_embbert.tokenizer import Tokenizer  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_integer("seconds", 300, "How long libFuzzer runs.")
flags.DEFINE_integer("seeds", 200, "Snips sentences in the seed corpus.")
flags.DEFINE_string("out", "bench/results/fuzz_tokenizer", "Result folder.")


def main(argv):
    del argv
    clang = shutil.which("clang++")
    if clang is None:
        raise app.UsageError(
            "clang++ not found: libFuzzer needs clang (Debian: apt-get install clang)"
        )
    out = Path(FLAGS.out)
    out.mkdir(parents=True, exist_ok=True)
    src = paths.REPO_ROOT / "arduino" / "src"
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        write_tokenizer_data(Tokenizer.load(paths.SHIPPED_TOKENIZER_DIR), work)
        binary = work / "fuzz"
        subprocess.run(
            [
                clang,
                "-std=c++14",
                "-O1",
                "-g",
                "-fsanitize=fuzzer,address,undefined",
                "-fno-sanitize-recover=all",
                "-I",
                str(src),
                "-I",
                str(work),
                str(paths.REPO_ROOT / "arduino" / "host" / "tokenizer_fuzz.cpp"),
                str(src / "embbert_tokenizer.cpp"),
                str(work / "embbert_tokenizer_data.cpp"),
                "-o",
                str(binary),
            ],
            check=True,
        )
        corpus = work / "corpus"
        corpus.mkdir()
        lines = [e.text_a for e in load_task("snips", paths.SHIPPED_DATA_DIR).train]
        for i, line in enumerate(lines[: FLAGS.seeds]):
            (corpus / f"seed{i}").write_bytes(line.encode())
        print(f"fuzzing for {FLAGS.seconds} s", flush=True)
        started = time.time()
        done = subprocess.run(
            [
                str(binary),
                str(corpus),
                f"-max_total_time={FLAGS.seconds}",
                "-print_final_stats=1",
                f"-artifact_prefix={out}/crash-",
            ],
            capture_output=True,
            text=True,
        )
        wall = time.time() - started
    log = done.stderr
    (out / "fuzz.log").write_text("\n".join(log.splitlines()[-60:]) + "\n")

    def stat(name):
        found = re.findall(rf"stat::{name}:\s+(\d+)", log)
        return int(found[-1]) if found else None

    coverage = re.findall(r"cov: (\d+) ft: (\d+)", log)
    result = {
        "machine": machine(),
        "seconds": FLAGS.seconds,
        "wall_seconds": round(wall, 1),
        "exit_code": done.returncode,
        "executions": stat("number_of_executed_units"),
        "exec_per_second": stat("average_exec_per_sec"),
        "peak_rss_mb": stat("peak_rss_mb"),
        "coverage_edges": int(coverage[-1][0]) if coverage else None,
        "features": int(coverage[-1][1]) if coverage else None,
        "crashes": len(list(out.glob("crash-*"))),
        "seed_inputs": min(FLAGS.seeds, len(lines)),
    }
    write_json(out / "results.json", result)
    keys = [
        "seconds",
        "executions",
        "exec_per_second",
        "coverage_edges",
        "features",
        "crashes",
        "exit_code",
    ]
    (out / "results.md").write_text(
        "# libFuzzer on the C++ tokenizer (ASan + UBSan)\n\n"
        + markdown_table(keys, [[result[k] for k in keys]])
    )
    print((out / "results.md").read_text())
    if done.returncode != 0:
        sys.exit(f"libFuzzer stopped with exit code {done.returncode}: see {out / 'fuzz.log'}")


if __name__ == "__main__":
    app.run(main)
