"""Strict readers of delimited and plain text files: every problem is a one-line
:class:`DataFormatError` naming the file and line."""

from __future__ import annotations

import csv
import gzip
import io
import math
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, TextIO, TypeVar

from tflm_embbert.common.errors import MissingFileError
from tflm_embbert.data.examples import DataFormatError, Example

T = TypeVar("T")


# --------------------------------------------------------------------------- reading files
DELIMITER_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon"}


def show(value: object, limit: int = 60) -> str:
    """Short one-line repr of a value for error messages."""
    if isinstance(value, str) and len(value) > limit:
        return repr(value[:limit]) + "..."
    return repr(value)


def require_file(path: Path, task: str, role: str) -> Path:
    if not path.is_file():
        raise MissingFileError(f"{path}: no such file (task {task!r} expects {role} there)")
    return path


def _open_bytes(path: Path) -> BinaryIO:
    return gzip.open(path, "rb") if path.name.endswith(".gz") else open(path, "rb")


@contextmanager
def open_text(path: Path) -> Iterator[TextIO]:
    """Open a UTF-8 text file (a leading BOM is dropped), gunzipping ``*.gz``.

    Bytes that are not UTF-8 raise :class:`DataFormatError` naming the line and byte offset.
    """
    try:
        with io.TextIOWrapper(_open_bytes(path), encoding="utf-8-sig", newline="") as f:
            yield f
    except UnicodeDecodeError:
        raise not_utf8_error(path) from None
    except gzip.BadGzipFile:
        raise DataFormatError(path, 1, "gzip data (the name ends in .gz)", "other bytes") from None


def not_utf8_error(path: Path, chunk_size: int = 1 << 20) -> DataFormatError:
    """The error for the first bytes of ``path`` that are not UTF-8: line, byte offset (of the
    uncompressed bytes for ``*.gz``) and the bytes themselves. Read in chunks, so it is cheap
    on large files."""
    line, offset, pending = 1, 0, b""  # offset: of pending[0] in the file
    with _open_bytes(path) as f:
        while True:
            chunk = f.read(chunk_size)
            data = pending + chunk
            try:
                data.decode("utf-8")
                good = len(data)
            except UnicodeDecodeError as err:
                if chunk and err.end == len(data):  # a character cut by the chunk's end
                    good = err.start
                else:
                    bad = data[err.start : err.end]
                    line += data.count(b"\n", 0, err.start)
                    return DataFormatError(
                        path,
                        line,
                        "UTF-8 text",
                        f"byte{'s' if len(bad) > 1 else ''} {bad.hex(' ')} at byte offset "
                        f"{offset + err.start} (re-save the file as UTF-8)",
                    )
            if not chunk:
                break
            line += data.count(b"\n", 0, good)
            offset += good
            pending = data[good:]
    raise ValueError(f"{path}: no bytes that are not UTF-8")  # only called after a decode error


def read_records(path: Path, *, delimiter: str, quoted: bool) -> Iterator[tuple[int, list[str]]]:
    """Yield ``(line where the record starts, fields)`` for every record of a delimited file.

    ``quoted=False`` disables quote handling (csv.QUOTE_NONE), as GLUE-style TSVs need since
    their sentences contain bare ``"``; ``quoted=True`` is RFC-4180 CSV (fields may be quoted
    and span lines), parsed strictly.
    """
    with open_text(path) as f:
        if quoted:
            reader = csv.reader(f, delimiter=delimiter, quotechar='"', strict=True)
        else:
            reader = csv.reader(f, delimiter=delimiter, quoting=csv.QUOTE_NONE)
        start = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                return
            except csv.Error as err:
                where = "" if reader.line_num == start else f" in the record from line {start}"
                raise DataFormatError(
                    path, reader.line_num, "well-formed CSV", f"{err}{where}"
                ) from None
            yield start, row
            start = reader.line_num + 1


def read_table(
    path: Path,
    *,
    task: str,
    role: str,
    columns: Sequence[str],
    header: bool | None,
    delimiter: str = "\t",
    quoted: bool = False,
) -> Iterator[tuple[int, list[str]]]:
    """Records of a table with exactly ``len(columns)`` fields per row.

    ``header``: True = the first row must equal ``columns``; False = no header row;
    None = the first row is skipped only if it equals ``columns``.
    """
    require_file(path, task, role)
    sep = DELIMITER_NAMES.get(delimiter, repr(delimiter))
    records = read_records(path, delimiter=delimiter, quoted=quoted)
    if header is not False:
        first = next(records, None)
        if first is None and header:
            raise DataFormatError(
                path, 1, f"header {show(delimiter.join(columns))}", "an empty file"
            )
        if first is not None and first[1] != list(columns):
            if header:
                raise DataFormatError(
                    path,
                    1,
                    f"header {show(delimiter.join(columns))}",
                    show(delimiter.join(first[1])),
                )
            records = _chain_first(first, records)
    for line, row in records:
        if len(row) != len(columns):
            got = "an empty line" if not row else f"{len(row)} columns"
            raise DataFormatError(path, line, f"{len(columns)} {sep}-separated columns", got)
        yield line, row


def _chain_first(first: T, rest: Iterator[T]) -> Iterator[T]:
    yield first
    yield from rest


def read_lines(path: Path, *, task: str, role: str) -> list[str]:
    """Lines of a plain text file, without their line terminators."""
    require_file(path, task, role)
    with open_text(path) as f:
        return [line.rstrip("\r\n") for line in f]


def nonempty_text(value: str, path: Path, line: int, column: str) -> str:
    if not value.strip():
        raise DataFormatError(path, line, f"a non-empty text in column {column!r}", show(value))
    return value


LabelParser = Callable[[str, Path, int], int | float]


def class_label(mapping: dict[str, int], column: str) -> LabelParser:
    """Parser for a class label written as one of ``mapping``'s keys."""

    def parse(value: str, path: Path, line: int) -> int:
        try:
            return mapping[value]
        except KeyError:
            raise DataFormatError(
                path, line, f"{column} in {sorted(mapping)}", show(value)
            ) from None

    return parse


def score_label(column: str, low: float, high: float) -> LabelParser:
    """Parser for a float score in [low, high]."""

    def parse(value: str, path: Path, line: int) -> float:
        try:
            score = float(value)
        except ValueError:
            score = math.nan
        if not low <= score <= high:  # also rejects nan
            raise DataFormatError(
                path, line, f"a float {column} in [{low:g}, {high:g}]", show(value)
            )
        return score

    return parse


@dataclass(frozen=True)
class Table:
    """Schema of a delimited file of examples; ``columns`` names every field in order."""

    columns: tuple[str, ...]
    text_a: str
    text_b: str | None
    label: str
    parse_label: LabelParser
    header: bool | None = True  # see read_table
    delimiter: str = "\t"
    quoted: bool = False  # False: quoting disabled (csv.QUOTE_NONE)
    clean: Callable[[str], str] | None = None  # applied to text_a before validation

    def read(self, path: Path, task: str, role: str) -> list[Example]:
        return [example for _, example in self.records(path, task, role)]

    def records(self, path: Path, task: str, role: str) -> Iterator[tuple[list[str], Example]]:
        """Yield ``(raw fields, validated example)`` for every data row."""
        index = {name: i for i, name in enumerate(self.columns)}
        for line, row in read_table(
            path,
            task=task,
            role=role,
            columns=self.columns,
            header=self.header,
            delimiter=self.delimiter,
            quoted=self.quoted,
        ):
            text_a = row[index[self.text_a]]
            if self.clean is not None:
                text_a = self.clean(text_a)
            text_b = None if self.text_b is None else row[index[self.text_b]]
            yield (
                row,
                Example(
                    nonempty_text(text_a, path, line, self.text_a),
                    None if text_b is None else nonempty_text(text_b, path, line, self.text_b),
                    self.parse_label(row[index[self.label]], path, line),
                ),
            )


def names_to_ids(names: Sequence[str]) -> dict[str, int]:
    return {name: i for i, name in enumerate(names)}


def class_table(
    columns: tuple[str, ...], text: str, label: str, mapping: dict[str, int], **options
) -> Table:
    """A one-text table whose ``label`` column holds one of ``mapping``'s keys (``options``: the
    other Table fields)."""
    return Table(columns, text, None, label, class_label(mapping, label), **options)
