"""Writing output folders so they are never left half-written."""

from __future__ import annotations

import shutil
from pathlib import Path


def staging_path(out: str | Path) -> Path:
    """`<out>.tmp`: where `staging_dir` stages `out`."""
    out = Path(out)
    return out.with_name(out.name + ".tmp")


def staging_dir(out: str | Path) -> Path:
    """An empty `<out>.tmp` folder to write into before `publish` renames it to `out`."""
    tmp = staging_path(out)
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    return tmp


def publish(tmp: Path, out: str | Path) -> Path:
    """Replaces `out` by the finished `tmp` folder, so `out` is never half-written."""
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    return out


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Writes `text` to `<path>.tmp`, then renames it over `path`: a reader (or a run killed
    mid-write) sees the old file or the new one, never an empty or partial one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    return path
