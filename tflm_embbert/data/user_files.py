"""The user's own files: train, test and optionally validation files in CSV, TSV or JSON Lines.

Columns are named by the header row, or, in a CSV/TSV file without one (``header=False``), by
0-based index. Every problem is a one-line :class:`DataFormatError` naming the file and line.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Sequence
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


Column = str | int  # a header name, or a 0-based index in a file without a header row


def generic_format(path: PathLike) -> str:
    """``.csv``, ``.tsv`` or ``.jsonl`` from the file name (``.gz`` dropped); ValueError else."""
    return _generic_format(Path(path))


def listing(values: Sequence[object], limit: int = 5) -> str:
    """``'a', 'b', 'c', ... (12 in all)``: a bounded, one-line list for error messages."""
    shown = ", ".join(show(v, 30) for v in values[:limit])
    return shown if len(values) <= limit else f"{shown}, ... ({len(values)} in all)"


def _column_name(column: Column) -> str:
    return f"column {column}" if isinstance(column, int) else f"column {column!r}"


def _read_jsonl(path: Path, wanted: list[Column], text_columns: list[Column]) -> list[tuple]:
    rows = []
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
                        path, line_no, f"key {column!r}", f"keys {listing(sorted(obj))}"
                    )
            for column in text_columns:
                if not isinstance(obj[column], str):
                    raise DataFormatError(
                        path, line_no, f"a string in {column!r}", show(obj[column])
                    )
            rows.append((line_no, [obj[column] for column in wanted]))
    return rows


def _read_delimited(
    path: Path, fmt: str, wanted: list[Column], header: bool
) -> list[tuple[int, list[str]]]:
    """``(line, [value of each wanted column])`` of every data row of a CSV/TSV file."""
    delimiter = "\t" if fmt == ".tsv" else ","
    sep = DELIMITER_NAMES[delimiter]
    records = read_records(path, delimiter=delimiter, quoted=fmt == ".csv")
    first = next(records, None)
    if first is None:
        raise DataFormatError(path, 1, "a header row" if header else "a data row", "an empty file")
    if header:
        names = first[1]
        for column in wanted:
            if names.count(column) > 1:
                raise DataFormatError(
                    path, 1, f"one column named {column!r} in the header", f"{names.count(column)}"
                )
            if column not in names:
                raise DataFormatError(
                    path,
                    1,
                    f"a column {column!r} in the header",
                    f"columns {listing(names)} (no header row? see --noheader)",
                )
        index = [names.index(column) for column in wanted]
        width, like = len(names), "as in the header"
        rows = []
    else:
        width, like = len(first[1]), f"as on line {first[0]}"
        for column in wanted:
            if column >= width:
                got = f"{width} column{'s' if width != 1 else ''}" if first[1] else "an empty line"
                raise DataFormatError(path, first[0], f"a {_column_name(column)} (0-based)", got)
        index = list(wanted)
        rows = [first]
    rows += list(records)
    out = []
    for line_no, row in rows:
        if len(row) != width:
            got = "an empty line" if not row else f"{len(row)} columns"
            if fmt == ".csv" and len(row) > width:
                got += " (quote a text that holds a comma)"
            raise DataFormatError(path, line_no, f"{width} {sep}-separated columns ({like})", got)
        out.append((line_no, [row[i] for i in index]))
    return out


def _read_generic(
    path: Path, *, role: str, text_a: Column, text_b: Column | None, label: Column, header: bool
) -> list[_RawRecord]:
    fmt = _generic_format(path)
    require_file(path, "custom", role)
    wanted = [c for c in (text_a, text_b, label) if c is not None]
    text_columns = [c for c in (text_a, text_b) if c is not None]
    if fmt == ".jsonl":
        rows = _read_jsonl(path, wanted, text_columns)
    else:
        rows = _read_delimited(path, fmt, wanted, header)
    if not rows:
        raise DataFormatError(path, 2 if header else 1, "at least one example", "none")
    records = []
    for line_no, values in rows:
        texts = [nonempty_text(values[i], path, line_no, c) for i, c in enumerate(text_columns)]
        records.append(
            _RawRecord(line_no, texts[0], texts[1] if text_b is not None else None, values[-1])
        )
    return records


def _label_string(value: str | int | float, path: Path, line: int, column: Column) -> str:
    """A classification label as a non-empty string (JSONL may hold integers)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    if not isinstance(value, str):
        raise DataFormatError(
            path, line, f"a string or integer label in {_column_name(column)}", show(value)
        )
    if not value.strip():
        raise DataFormatError(path, line, f"a label in {_column_name(column)}", show(value))
    return value


def _derive_label_names(labels: Iterable[str]) -> list[str]:
    """Sorted unique labels; numerically sorted if all are integers (so "2" < "10")."""
    unique = set(labels)
    if unique and all(_INTEGER.fullmatch(s) for s in unique):
        return sorted(unique, key=int)
    return sorted(unique)


def _class_indices(
    labels: list[tuple[int, str]], names: list[str], path: Path, known: str
) -> list[int]:
    """Class index of every ``(line, label)``; one error listing the unknown labels (a count,
    the first three with their first line), else."""
    mapping = {name: i for i, name in enumerate(names)}
    unknown: dict[str, list[int]] = {}
    for line, label in labels:
        if label not in mapping:
            unknown.setdefault(label, []).append(line)
    if unknown:
        first = [f"{show(label, 30)} (line {lines[0]})" for label, lines in unknown.items()]
        rows = sum(len(lines) for lines in unknown.values())
        plural = "s" if len(unknown) > 1 else ""
        raise DataFormatError(
            path,
            min(lines[0] for lines in unknown.values()),
            f"only labels {known} ({listing(names)})",
            f"{len(unknown)} other label{plural} on {rows} row{'s' if rows > 1 else ''}: "
            + ", ".join(first[:3])
            + (", ..." if len(first) > 3 else ""),
        )
    return [mapping[label] for _, label in labels]


def _score(value: str | int | float, path: Path, line: int, column: Column) -> float:
    score = math.nan
    if isinstance(value, str):
        try:
            score = float(value)
        except ValueError:
            pass
    elif isinstance(value, int | float) and not isinstance(value, bool):
        score = float(value)
    if not math.isfinite(score):
        raise DataFormatError(path, line, f"a float in {_column_name(column)}", show(value))
    return score


def task_name_of(train_path: PathLike) -> str:
    """A task name from the train file's name: 'data/intents_train.csv.gz' -> 'intents'; a file
    called just 'train.csv' is named after its folder ('intents/train.csv' -> 'intents')."""
    path = Path(train_path)
    stem = path.name.split(".")[0]
    name = re.sub(r"(^|[_\-. ])train(ing)?$", "", stem, flags=re.IGNORECASE) or path.parent.name
    return name or stem or "custom"


def load_generic(
    train_path: PathLike,
    test_path: PathLike,
    *,
    text_column: Column,
    label_column: Column,
    text_b_column: Column | None = None,
    validation_path: PathLike | None = None,
    header: bool = True,
    label_names: Sequence[str] | None = None,
    regression: bool = False,
    val_fraction: float = 0.1,
    seed: int = 0,
    train_limit: int | None = None,
    name: str | None = None,
) -> TaskData:
    """Load a task from a train file, a labelled test file and optionally a validation file.

    The format follows the extension (``.csv``, ``.tsv``, ``.jsonl``, each optionally ``.gz``):

    * CSV: RFC-4180 (quoted fields may contain commas, quotes and newlines);
    * TSV: quoting disabled (``"`` is an ordinary character), like GLUE;
    * JSONL: one JSON object per line (blank lines are skipped); columns are keys.

    CSV/TSV files have a header row naming the columns (``header=True``; the columns are
    names), or none (``header=False``; the columns are 0-based indices and every row has as many
    fields as the first). Without ``validation_path`` the validation split is a seeded
    ``val_fraction`` of the train file (see ``examples.assemble``); with it, the whole train
    file trains (``val_fraction`` is not used). ``train_limit`` keeps a seeded subset of train.

    Classification labels: ``label_names`` fixes the classes and their index order; without it
    the classes are the sorted unique labels of the train file (numerically sorted when all are
    integers). A label of any file that is not a class is an error listing a count and the
    first few. ``regression=True`` reads float labels and gives ``label_names=None``. The
    primary metric is spearman for regression, accuracy otherwise. The task is called ``name``,
    else after the train file (:func:`task_name_of`).
    """
    name = name or task_name_of(train_path)
    if regression and label_names is not None:
        raise ValueError("label_names must be None when regression=True")
    columns = (text_column, text_b_column, label_column)
    kind = str if header else int
    if not all(isinstance(c, kind) and (header or c >= 0) for c in columns if c is not None):
        wanted = "names" if header else "0-based indices (header=False)"
        raise ValueError(f"columns must be {wanted}, got {[c for c in columns if c is not None]}")
    paths = {"train": Path(train_path), "test": Path(test_path)}
    if validation_path is not None:
        paths["validation"] = Path(validation_path)
    if not header and any(_generic_format(path) == ".jsonl" for path in paths.values()):
        raise ValueError("header=False is for .csv/.tsv files; JSON Lines objects name their keys")
    raw = {
        split: _read_generic(
            path,
            role=f"the {split} split",
            text_a=text_column,
            text_b=text_b_column,
            label=label_column,
            header=header,
        )
        for split, path in paths.items()
    }

    if regression:
        names = None
        labels = {
            split: [_score(r.label, paths[split], r.line, label_column) for r in records]
            for split, records in raw.items()
        }
    else:
        strings = {
            split: [
                (r.line, _label_string(r.label, path, r.line, label_column)) for r in raw[split]
            ]
            for split, path in paths.items()
        }
        if label_names is None:
            names = _derive_label_names(label for _, label in strings["train"])
            known = "of the train file"
        else:
            names = list(label_names)
            if not names or len(set(names)) != len(names) or not all(names):
                raise ValueError(f"label_names must be unique and non-empty, got {names!r}")
            known = "among the given label names"
        labels = {
            split: _class_indices(pairs, names, paths[split], known)
            for split, pairs in strings.items()
        }
    splits = {
        split: [
            Example(r.text_a, r.text_b, y) for r, y in zip(raw[split], labels[split], strict=True)
        ]
        for split in raw
    }
    return assemble(
        name,
        Splits(splits["train"], splits["test"], names, splits.get("validation")),
        metric="spearman" if regression else "accuracy",
        test_split="test",
        val_fraction=val_fraction,
        seed=seed,
        train_limit=train_limit,
    )
