"""Helpers shared by the bench scripts: resumable result cells, JSON + Markdown output."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path


def machine() -> dict:
    return {
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d"),
        "code": code_version(),
    }


def code_version() -> str:
    """The repository's commit ("+dirty" when tracked files differ), so a result can be tied to
    the code that measured it; "unknown" outside a git checkout."""
    repo = Path(__file__).resolve().parents[1]

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(repo), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
        dirty = git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


def write_json(path: Path, data) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    os.replace(tmp, path)


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def data_dir(flag_value: str | None) -> Path:
    """--data_dir, else the shared data beside the checkout."""
    from tflm_embbert.common import paths

    return Path(flag_value) if flag_value else paths.shared_data_dir()


def cached_cell(path: Path, label: str, compute, wall_key: str = "wall_seconds") -> dict:
    """The result cell at `path`: read when an earlier run wrote it (resumable benches), else
    computed by `compute()`, timed under `wall_key` and written atomically."""
    if path.exists():
        print(f"[cached] {path}")
        return json.loads(path.read_text())
    print(f"[run] {label}", flush=True)
    started = time.time()
    cell = compute()
    cell[wall_key] = round(time.time() - started, 1)
    write_json(path, cell)
    return cell


def mean_std(values) -> str:
    """ "mean ± std" of `values` with two decimals (population std, as numpy's default)."""
    import numpy as np

    return f"{np.mean(values):.2f} ± {np.std(values):.2f}"


def write_results(out: Path, cells: list[dict], intro: str, sections: list[tuple]) -> None:
    """results.json (machine + cells) and results.md: `intro`, then one `## heading` + table per
    (heading, header, rows) in `sections`; prints the Markdown."""
    write_json(out / "results.json", {"machine": machine(), "cells": cells})
    text = intro + "".join(
        f"\n## {heading}\n\n" + markdown_table(header, rows) for heading, header, rows in sections
    )
    (out / "results.md").write_text(text)
    print(text)


def group_identity(task: str, model: str, group: list[dict]) -> dict:
    """What every summary row of a (task, model) group of benchmark cells starts with."""
    return {
        "task": task,
        "model": model,
        "metric": group[0]["metric"],
        "test_split": group[0]["test_split"],
        "init": group[0]["init"],
        "seeds": [c["seed"] for c in group],
        "seq_len": sorted({c["seq_len"] for c in group}),
    }


def read_cells(folder: Path) -> list[dict]:
    """Every result cell (*.json) in `folder`, by file name."""
    return [json.loads(p.read_text()) for p in sorted(folder.glob("*.json"))]
