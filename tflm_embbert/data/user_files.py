"""The user's own files: a train file and a labelled test file in CSV, TSV or JSON Lines."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from tflm_embbert.data.examples import (
    DataFormatError,
    Example,
    PathLike,
    Splits,
    TaskData,
    assemble,
)
from tflm_embbert.data.readers import (
    DELIMITER_NAMES,
    LabelParser,
    nonempty_text,
    open_text,
    read_records,
    require_file,
    show,
)

# --------------------------------------------------------------------------- generic files
_GENERIC_FORMATS = (".csv", ".tsv", ".jsonl")
_INTEGER = re.compile(r"[+-]?\d+")


@dataclass(frozen=True)
class _RawRecord:
    line: int
    text_a: str
    text_b: str | None
    label: str | int | float  # raw value as found in the file


def _generic_format(path: Path) -> str:
    name = path.name.lower()
    if name.endswith(".gz"):
        name = name[:-3]
    for ext in _GENERIC_FORMATS:
        if name.endswith(ext):
            return ext
    raise ValueError(
        f"{path}: unsupported file type (expected .csv, .tsv or .jsonl, optionally .gz)"
    )


def _read_generic(
    path: Path, *, task: str, role: str, text_a: str, text_b: str | None, label: str
) -> list[_RawRecord]:
    fmt = _generic_format(path)
    require_file(path, task, role)
    wanted = [c for c in (text_a, text_b, label) if c is not None]
    records = []
    if fmt == ".jsonl":
        with open_text(path) as f:
            for line_no, line in enumerate(f, start=1):
                if not line.strip():
                    continue  # blank lines separate nothing in JSON Lines; tolerate them
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as err:
                    raise DataFormatError(
                        path, line_no, "a JSON object", f"invalid JSON ({err.msg})"
                    ) from None
                if not isinstance(obj, dict):
                    raise DataFormatError(path, line_no, "a JSON object", f"a {type(obj).__name__}")
                for column in wanted:
                    if column not in obj:
                        raise DataFormatError(
                            path, line_no, f"key {column!r}", f"keys {sorted(obj)}"
                        )
                for column in (text_a, text_b):
                    if column is not None and not isinstance(obj[column], str):
                        raise DataFormatError(
                            path, line_no, f"a string in {column!r}", show(obj[column])
                        )
                records.append(
                    _RawRecord(
                        line_no,
                        nonempty_text(obj[text_a], path, line_no, text_a),
                        None
                        if text_b is None
                        else nonempty_text(obj[text_b], path, line_no, text_b),
                        obj[label],
                    )
                )
        return records

    delimiter = "\t" if fmt == ".tsv" else ","
    rows = read_records(path, delimiter=delimiter, quoted=fmt == ".csv")
    first = next(rows, None)
    if first is None:
        raise DataFormatError(path, 1, "a header row", "an empty file")
    header = first[1]
    for column in wanted:
        if header.count(column) != 1:
            raise DataFormatError(
                path, 1, f"a header with one column {column!r}", show(delimiter.join(header))
            )
    index = {column: header.index(column) for column in wanted}
    sep = DELIMITER_NAMES[delimiter]
    for line_no, row in rows:
        if len(row) != len(header):
            got = "an empty line" if not row else f"{len(row)} columns"
            raise DataFormatError(
                path, line_no, f"{len(header)} {sep}-separated columns (as in the header)", got
            )
        records.append(
            _RawRecord(
                line_no,
                nonempty_text(row[index[text_a]], path, line_no, text_a),
                None
                if text_b is None
                else nonempty_text(row[index[text_b]], path, line_no, text_b),
                row[index[label]],
            )
        )
    return records


def _label_string(value: str | int | float, path: Path, line: int, column: str) -> str:
    """A classification label as a string (JSONL may hold integers)."""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise DataFormatError(path, line, f"a string or integer {column!r}", show(value))


def _derive_label_names(labels: Iterable[str]) -> list[str]:
    """Sorted unique labels; numerically sorted if all are integers (so "2" < "10")."""
    unique = set(labels)
    if unique and all(_INTEGER.fullmatch(s) for s in unique):
        return sorted(unique, key=int)
    return sorted(unique)


def load_generic(
    train_path: PathLike,
    test_path: PathLike,
    *,
    text_column: str,
    label_column: str,
    text_b_column: str | None = None,
    label_names: list[str] | None = None,
    regression: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    name: str = "custom",
) -> TaskData:
    """Load a task from two files: a train split and a labelled test split.

    The format follows the extension (``.csv``, ``.tsv``, ``.jsonl``, each optionally ``.gz``):

    * CSV: RFC-4180 (quoted fields may contain commas, quotes and newlines), header row;
    * TSV: header row, quoting disabled (``"`` is an ordinary character), like GLUE;
    * JSONL: one JSON object per line (blank lines are skipped).

    Columns are found by name. Classification labels: with ``label_names`` given, a label is
    matched against the names, else read as a 0-based index into them (so a file with
    ``0``/``1`` labels can be given names); without, the names are the sorted unique labels of
    the train file (numerically sorted when all are integers), and a test label not seen in
    train is an error. ``regression=True`` reads float labels and gives ``label_names=None``.
    The primary metric is spearman for regression, accuracy otherwise.
    """
    if regression and label_names is not None:
        raise ValueError("label_names must be None when regression=True")
    train_p, test_p = Path(train_path), Path(test_path)
    columns = {"text_a": text_column, "text_b": text_b_column, "label": label_column}
    train_raw = _read_generic(train_p, task=name, role="the train split", **columns)
    if not train_raw:
        raise DataFormatError(train_p, 2, "at least one example", "end of file")
    test_raw = _read_generic(test_p, task=name, role="the test split", **columns)
    if not test_raw:
        raise DataFormatError(test_p, 2, "at least one example", "end of file")

    def convert(raw: list[_RawRecord], path: Path, parse: LabelParser) -> list[Example]:
        return [Example(r.text_a, r.text_b, parse(r.label, path, r.line)) for r in raw]

    if regression:

        def parse(value: str | int | float, path: Path, line: int) -> float:
            score = math.nan
            if isinstance(value, str):
                try:
                    score = float(value)
                except ValueError:
                    pass
            elif isinstance(value, int | float) and not isinstance(value, bool):
                score = float(value)
            if not math.isfinite(score):
                raise DataFormatError(path, line, f"a float {label_column!r}", show(value))
            return score

        names = None
    else:
        if label_names is None:
            names = _derive_label_names(
                _label_string(r.label, train_p, r.line, label_column) for r in train_raw
            )
            seen = "labels seen in the train file "
        else:
            names = list(label_names)
            if len(set(names)) != len(names) or not names:
                raise ValueError(f"label_names must be unique and non-empty, got {names!r}")
            seen = ""
        mapping = {n: i for i, n in enumerate(names)}

        def parse(value: str | int | float, path: Path, line: int) -> int:
            text = _label_string(value, path, line, label_column)
            if text in mapping:
                return mapping[text]
            if label_names is not None and _INTEGER.fullmatch(text):
                if 0 <= int(text) < len(names):
                    return int(text)
            raise DataFormatError(path, line, f"{label_column!r} in {seen}{names}", show(value))

    train = convert(train_raw, train_p, parse)
    test = convert(test_raw, test_p, parse)
    return assemble(
        name,
        Splits(train, test, names),
        metric="spearman" if regression else "accuracy",
        test_split="test",
        val_fraction=val_fraction,
        seed=seed,
    )
