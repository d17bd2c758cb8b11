"""Reads plain-text pretraining corpora: .txt / .gz / .tokens(.gz) files, or folders of them.

A line `=== name ===` starts a new document (the shared corpus concatenates many books that way);
blank lines end a paragraph; hard-wrapped lines inside a paragraph are joined with spaces.
"""

from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path

from absl import logging

from tflm_embbert.common.errors import MissingFileError
from tflm_embbert.data.datasets import TASKS

TEXT_SUFFIXES = (".txt", ".tokens", ".txt.gz", ".tokens.gz")
# Tasks whose unlabeled TRAIN-split text joins the pretraining corpus and the tokenizer's text.
DEFAULT_TASK_TEXTS = [name for name in TASKS if name != "wnli"]  # every task but WNLI


def corpus_files(path: str | os.PathLike) -> list[Path]:
    """The text files of a corpus, sorted; `path` may be one file or a folder."""
    path = Path(path)
    if path.is_file():
        return [path]
    if not path.is_dir():
        raise MissingFileError(f"{path}: corpus file or folder not found")
    files = sorted(p for p in path.iterdir() if p.name.endswith(TEXT_SUFFIXES))
    if not files:
        raise MissingFileError(f"{path}: no corpus files (expected {', '.join(TEXT_SUFFIXES)})")
    return files


def _open_text(path: Path):
    if path.name.endswith(".gz"):
        return gzip.open(path, "rt", encoding="utf-8", errors="replace")
    return open(path, encoding="utf-8", errors="replace")


def read_paragraphs(path: str | os.PathLike) -> Iterator[str]:
    """Yields the non-empty paragraphs of every file of the corpus, in file order."""
    for file in corpus_files(path):
        with _open_text(file) as handle:
            lines: list[str] = []
            for raw in handle:
                line = raw.strip()
                is_header = line.startswith("=== ") and line.endswith(" ===")
                if line and not is_header:
                    lines.append(line)
                    continue
                if lines:
                    yield " ".join(lines)
                    lines = []
            if lines:
                yield " ".join(lines)


def corpus_texts(corpus_path, task_names, data_dir) -> Iterator[str]:
    """Paragraphs of the corpus, then the train-split texts of `task_names` (missing ones skipped
    with a warning)."""
    yield from read_paragraphs(corpus_path)
    if task_names:
        from tflm_embbert.data.datasets import task_texts

        for name in task_names:
            try:
                yield from task_texts(name, data_dir)
            except FileNotFoundError as err:
                logging.warning("skipping task text %s: %s", name, err)
