"""Wall time of `--help` for every console script of pyproject.toml ([project.scripts]).

    python bench/cli_help_time.py                 # 5 runs each, median
    python bench/cli_help_time.py --runs 9

Each run is a fresh subprocess that does what the installed console script does (import the
entry point's module, call it with sys.argv[0] set to the script's name) with this checkout on
the path, timed from start to exit. The target is <= 2 s: a command loads TensorFlow only after
its flags are parsed. Also counts the lines --help wrote to stderr (0 expected). Writes
<out>/results.json and results.md.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench.common import machine, markdown_table, write_json  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
TARGET_SECONDS = 2.0
FLAGS = flags.FLAGS
flags.DEFINE_integer("runs", 5, "Runs per script (the median is reported).")
flags.DEFINE_string("out", str(ROOT / "bench" / "results" / "cli_help_time"), "Result folder.")


def console_scripts() -> dict[str, str]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]


def time_help(script: str, entry: str) -> dict:
    module, function = entry.split(":")
    code = (
        f"import sys; sys.argv[0] = {script!r}; from {module} import {function}; "
        f"sys.exit({function}())"
    )
    env = dict(os.environ, PYTHONPATH=str(ROOT), TF_USE_LEGACY_KERAS="1")
    env.pop("TF_CPP_MIN_LOG_LEVEL", None)  # as a user runs it
    seconds, done = [], None
    for _ in range(FLAGS.runs):
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-c", code, "--help"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
        )
        seconds.append(time.perf_counter() - started)
    return {
        "script": script,
        "entry": entry,
        "median_seconds": round(statistics.median(seconds), 3),
        "min_seconds": round(min(seconds), 3),
        "max_seconds": round(max(seconds), 3),
        "runs": len(seconds),
        "exit_code": done.returncode,
        "help_lines": len(done.stdout.splitlines()),
        "stderr_lines": len(done.stderr.splitlines()),
        "lists_verbose": "--[no]verbose" in done.stdout,
    }


def main(argv):
    del argv
    load = os.getloadavg()[0]
    rows = [time_help(script, entry) for script, entry in console_scripts().items()]
    results = {
        "target_seconds": TARGET_SECONDS,
        "all_within_target": all(r["median_seconds"] <= TARGET_SECONDS for r in rows),
        "load_average_1min_at_start": round(load, 2),
        "scripts": rows,
        "machine": machine(),
    }
    out = Path(FLAGS.out)
    write_json(out / "results.json", results)
    table = markdown_table(
        ["console script", "entry point", "median s", "min s", "max s", "stderr lines"],
        [
            [
                f"`{r['script']}`",
                f"`{r['entry']}`",
                r["median_seconds"],
                r["min_seconds"],
                r["max_seconds"],
                r["stderr_lines"],
            ]
            for r in rows
        ],
    )
    text = (
        "# `--help` wall time of the console scripts\n\n"
        f"Command: `python bench/cli_help_time.py --runs {FLAGS.runs}`. Each run is a fresh "
        "process doing what the installed script does (import the entry point, call it with "
        f"`--help`); median of {FLAGS.runs} runs, target <= {TARGET_SECONDS:g} s; "
        f"{'all within' if results['all_within_target'] else 'NOT all within'} the target. "
        f"Load average at the start: {load:.2f} on {os.cpu_count()} cores (shared machine). "
        f"Code {results['machine']['code']}, {results['machine']['date']}.\n\n" + table
    )
    tmp = out / "results.md.tmp"
    tmp.write_text(text)
    os.replace(tmp, out / "results.md")
    print(text)


if __name__ == "__main__":
    app.run(main)
