"""The user's own files (tflm_embbert.data.user_files, readers, data.flags): formats, header-less
files, a validation file, the label order, and one-line errors naming file and line.

Tiny files are written into tmp_path. The command-line tests run `train` up to its first check
(no TensorFlow), so they are quick.
"""

from __future__ import annotations

import gzip
import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import subprocess_env
from tests.test_datasets import expect_format_error, tsv, write
from tflm_embbert.data.examples import DataFormatError, Example
from tflm_embbert.data.readers import not_utf8_error
from tflm_embbert.data.user_files import load_generic

COLUMNS = {"text_column": "text", "label_column": "label"}


def csv_file(path: Path, *rows: str) -> Path:
    return write(path, "".join(row + "\n" for row in rows))


def one_line(err: DataFormatError, limit: int = 300) -> str:
    message = str(err)
    assert "\n" not in message and len(message) <= limit, message
    return message


# --------------------------------------------------------------------------- formats
def test_csv_tsv_jsonl_gz(tmp_path):
    csv_text = 'id,label,text\n1,spam,"buy, now"\n2,ham,"hi\nthere"\n3,ham,"say ""yo"""\n'
    csv_train = write(tmp_path / "train.csv", csv_text)
    tsv_test = write(tmp_path / "test.tsv.gz", tsv(("text", "label"), ('"quoted" tsv', "spam")))
    data = load_generic(csv_train, tsv_test, **COLUMNS, val_fraction=0.0)
    assert data.label_names == ["ham", "spam"] and data.metric == "accuracy"
    assert data.train == [
        Example("buy, now", None, 1),
        Example("hi\nthere", None, 0),
        Example('say "yo"', None, 0),
    ]
    assert data.test == [Example('"quoted" tsv', None, 1)] and data.test_split == "test"

    jsonl = write(
        tmp_path / "pairs.jsonl",
        "\n".join(json.dumps({"a": f"x{i}", "b": f"y{i}", "y": i % 3}) for i in range(12)) + "\n\n",
    )
    data = load_generic(
        jsonl, jsonl, text_column="a", text_b_column="b", label_column="y", seed=3, name="pairs"
    )
    assert data.name == "pairs" and data.label_names == ["0", "1", "2"]
    assert data.test[4] == Example("x4", "y4", 1)  # JSON integers are labels like "1"
    assert len(data.train) + len(data.validation) == 12 and len(data.validation) == 1


def test_integer_labels_sort_numerically_and_bom_is_dropped(tmp_path):
    train = write(tmp_path / "train.tsv", "\ufeff" + tsv(("text", "label"), ("a", 10), ("b", 2)))
    test = write(tmp_path / "test.tsv", tsv(("text", "label"), ("c", 1), ("d", 2)))
    with pytest.raises(DataFormatError):  # "1" is not a train label
        load_generic(train, test, **COLUMNS)
    write(train, "\ufeff" + tsv(("text", "label"), ("a", 10), ("b", 2), ("c", 1)))
    assert load_generic(train, test, **COLUMNS).label_names == ["1", "2", "10"]


# --------------------------------------------------------------------------- header-less files
def test_noheader_names_columns_by_index(tmp_path):
    train = csv_file(tmp_path / "train.csv", "pos,great film", "neg,dull", 'pos,"fine, really"')
    test = write(tmp_path / "test.tsv", tsv(("neg", "boring"), ("pos", "good")))
    data = load_generic(train, test, text_column=1, label_column=0, header=False, val_fraction=0.0)
    assert data.label_names == ["neg", "pos"]
    assert data.train == [
        Example("great film", None, 1),
        Example("dull", None, 0),
        Example("fine, really", None, 1),
    ]
    assert data.test == [Example("boring", None, 0), Example("good", None, 1)]

    # every row has as many fields as the first
    csv_file(train, "pos,great film", "neg,dull, really")
    err = expect_format_error(
        train, 2, load_generic, train, test, text_column=1, label_column=0, header=False
    )
    assert one_line(err).endswith(
        "expected 2 comma-separated columns (as on line 1), got 3 columns "
        "(quote a text that holds a comma)"
    )
    csv_file(train, "pos,great film")
    err = expect_format_error(
        train, 1, load_generic, train, test, text_column=2, label_column=0, header=False
    )
    assert err.expected == "a column 2 (0-based)" and err.got == "2 columns"
    with pytest.raises(ValueError, match="0-based indices"):
        load_generic(train, test, text_column="text", label_column=0, header=False)
    with pytest.raises(ValueError, match="JSON Lines"):
        load_generic(train, tmp_path / "t.jsonl", text_column=1, label_column=0, header=False)


def test_missing_column_lists_the_columns_found(tmp_path):
    train = csv_file(tmp_path / "train.csv", "id,label,txt", "1,a,hello")
    err = expect_format_error(train, 1, load_generic, train, train, **COLUMNS)
    assert one_line(err) == (
        f"{train}:1: expected a column 'text' in the header, got columns 'id', 'label', 'txt' "
        "(no header row? see --noheader)"
    )
    wide = ",".join(f"c{i}" for i in range(40))
    csv_file(train, wide, ",".join("x" * 40))
    err = expect_format_error(train, 1, load_generic, train, train, **COLUMNS)
    assert "'c4', ... (40 in all)" in one_line(err)
    csv_file(train, "text,label,text", "a,b,c")
    err = expect_format_error(train, 1, load_generic, train, train, **COLUMNS)
    assert err.expected == "one column named 'text' in the header" and err.got == "2"


# --------------------------------------------------------------------------- validation file
def test_validation_file_replaces_the_slice_of_train(tmp_path):
    train = csv_file(
        tmp_path / "train.csv", "text,label", *(f"t{i},{'ab'[i % 2]}" for i in range(10))
    )
    val = csv_file(tmp_path / "val.csv", "text,label", "v0,a", "v1,b")
    test = csv_file(tmp_path / "test.csv", "text,label", "s0,b")
    data = load_generic(train, test, **COLUMNS, validation_path=val, val_fraction=0.5)
    assert [e.text_a for e in data.train] == [f"t{i}" for i in range(10)]  # all of train, in order
    assert data.validation == [Example("v0", None, 0), Example("v1", None, 1)]
    limited = load_generic(train, test, **COLUMNS, validation_path=val, train_limit=4, seed=1)
    assert len(limited.train) == 4 and set(limited.train) <= set(data.train)
    assert limited.validation == data.validation
    carved = load_generic(train, test, **COLUMNS)  # without: a seeded slice of train
    assert len(carved.validation) == 1 and len(carved.train) == 9

    csv_file(val, "text,label", "v0,a", "v1,c")
    err = expect_format_error(val, 3, load_generic, train, test, **COLUMNS, validation_path=val)
    assert err.got == "1 other label on 1 row: 'c' (line 3)"


# --------------------------------------------------------------------------- labels
def test_unknown_test_labels_are_counted_and_listed_briefly(tmp_path):
    train = csv_file(tmp_path / "train.csv", "text,label", "a,ham", "b,spam")
    rows = ["c,ham", "d,x", "e,y", "f,x", "g,z", "h,w" + "w" * 100, "i,v"]
    test = csv_file(tmp_path / "test.csv", "text,label", *rows)
    err = expect_format_error(test, 3, load_generic, train, test, **COLUMNS)
    assert one_line(err) == (
        f"{test}:3: expected only labels of the train file ('ham', 'spam'), got 5 other labels "
        "on 6 rows: 'x' (line 3), 'y' (line 4), 'z' (line 6), ..."
    )


def test_label_names_fix_the_class_order(tmp_path):
    train = csv_file(tmp_path / "train.csv", "text,label", "a,neg", "b,pos", "c,neg")
    test = csv_file(tmp_path / "test.csv", "text,label", "d,pos")
    data = load_generic(train, test, **COLUMNS, label_names=["pos", "neg", "neutral"])
    assert data.label_names == ["pos", "neg", "neutral"] and data.test[0].label == 0
    assert sorted(e.label for e in data.train + data.validation) == [0, 1, 1]
    err = expect_format_error(train, 2, load_generic, train, test, **COLUMNS, label_names=["pos"])
    assert err.expected == "only labels among the given label names ('pos')"
    assert err.got == "1 other label on 2 rows: 'neg' (line 2)"
    with pytest.raises(ValueError, match="unique and non-empty"):
        load_generic(train, test, **COLUMNS, label_names=["pos", "pos"])


def test_empty_cells_and_empty_files(tmp_path):
    test = csv_file(tmp_path / "test.csv", "text,label", "d,pos")
    train = csv_file(tmp_path / "train.csv", "text,label", "a,pos", " ,neg")
    err = expect_format_error(train, 3, load_generic, train, test, **COLUMNS)
    assert err.expected == "a non-empty text in column 'text'"
    csv_file(train, "text,label", "a,pos", "b,")
    err = expect_format_error(train, 3, load_generic, train, test, **COLUMNS)
    assert (err.expected, err.got) == ("a label in column 'label'", "''")

    empty = write(tmp_path / "empty.csv", "")
    err = expect_format_error(empty, 1, load_generic, empty, test, **COLUMNS)
    assert (err.expected, err.got) == ("a header row", "an empty file")
    err = expect_format_error(
        empty, 1, load_generic, empty, test, text_column=0, label_column=1, header=False
    )
    assert (err.expected, err.got) == ("a data row", "an empty file")
    header_only = csv_file(tmp_path / "header.csv", "text,label")
    err = expect_format_error(header_only, 2, load_generic, train, header_only, **COLUMNS)
    assert (err.expected, err.got) == ("at least one example", "none")


def test_regression_and_errors(tmp_path):
    train = write(tmp_path / "train.csv", "s,score\nabc,0.5\nxyz,4\n")
    test = write(tmp_path / "test.jsonl", '{"s": "q", "score": 2.5}\n{"s": "r", "score": "1e0"}\n')
    cols = {"text_column": "s", "label_column": "score", "regression": True}
    data = load_generic(train, test, **cols)
    assert data.is_regression and data.metric == "spearman" and data.test[1].label == 1.0

    write(test, '{"s": "q", "score": 2.5}\n{"s": "r", "score": "high"}\n')
    expect_format_error(test, 2, load_generic, train, test, **cols)
    write(test, '{"s": "q", "score": 2.5}\n{"s": "r"}\n')
    expect_format_error(test, 2, load_generic, train, test, **cols)
    write(test, '{"s": "q", "score": 2.5}\n{"s": "r", "score": 1\n')
    expect_format_error(test, 2, load_generic, train, test, **cols)
    write(train, "s,score\nabc,0.5\nxyz,4,extra\n")
    err = expect_format_error(train, 3, load_generic, train, test, **cols)
    assert err.got == "3 columns (quote a text that holds a comma)"
    with pytest.raises(ValueError, match="unsupported file type"):
        load_generic(tmp_path / "x.parquet", test, **cols)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_generic(tmp_path / "missing.csv", test, **cols)


# --------------------------------------------------------------------------- encoding
def test_bytes_that_are_not_utf8_name_line_and_offset(tmp_path):
    test = csv_file(tmp_path / "test.csv", "text,label", "d,pos")
    latin1 = "text,label\nnice,pos\ncaf\u00e9 noir,neg\n".encode("latin-1")
    train = tmp_path / "train.csv"
    train.write_bytes(latin1)
    err = expect_format_error(train, 3, load_generic, train, test, **COLUMNS)
    assert one_line(err) == (
        f"{train}:3: expected UTF-8 text, got byte e9 at byte offset 23 (re-save the file as UTF-8)"
    )
    zipped = tmp_path / "train.csv.gz"
    zipped.write_bytes(gzip.compress(latin1))
    assert str(not_utf8_error(zipped)).startswith(f"{zipped}:3: expected UTF-8 text, got byte e9")
    not_gzip = tmp_path / "plain.csv.gz"
    not_gzip.write_bytes(b"text,label\na,pos\n")
    err = expect_format_error(not_gzip, 1, load_generic, not_gzip, test, **COLUMNS)
    assert err.expected == "gzip data (the name ends in .gz)"


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 1 << 20])
def test_not_utf8_location_does_not_depend_on_chunks(tmp_path, chunk_size):
    """A valid multi-byte character cut by a chunk boundary is no error; the bad byte is found
    at its true offset (after 2-, 3- and 4-byte characters) and line."""
    good = "a\u00e9\n\u20ac\U0001f600\nb".encode()
    path = tmp_path / "x.txt"
    path.write_bytes(good + b"\xff\n")
    err = not_utf8_error(path, chunk_size=chunk_size)
    assert (err.line, err.got) == (
        3,
        f"byte ff at byte offset {len(good)} (re-save the file as UTF-8)",
    )
    path.write_bytes(good + "\u20ac".encode()[:2])  # cut at the end of the file
    err = not_utf8_error(path, chunk_size=chunk_size)
    assert (err.line, err.got) == (
        3,
        f"bytes e2 82 at byte offset {len(good)} (re-save the file as UTF-8)",
    )


# --------------------------------------------------------------------------- the train command
def _train(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tflm_embbert.train", "--out", str(tmp_path / "out"), *args],
        env=subprocess_env(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )


def test_train_command_rejects_bad_files_and_flags_leaving_nothing(tmp_path):
    train = csv_file(tmp_path / "train.csv", "text,label", "a,pos", "b,neg")
    test = csv_file(tmp_path / "test.csv", "text,label", "c,pos", "d,odd", "e,other")
    jsonl = write(tmp_path / "test.jsonl", '{"text": "c", "label": "pos"}\n')
    files = ["--train_file", str(train), "--test_file", str(test)]
    cases = {
        "labels": (
            files,
            f"{test}:3: expected only labels of the train file ('neg', 'pos'), "
            "got 2 other labels on 2 rows: 'odd' (line 3), 'other' (line 4)",
        ),
        "noheader names": (
            files + ["--noheader"],
            "--text_column: with --noheader, expected a 0-based column index, got 'text'",
        ),
        "two validations": (
            files + ["--validation_file", str(test), "--val_fraction", "0.2"],
            "--val_fraction and --validation_file both choose the validation split: give one",
        ),
        "labels listed twice": (
            files + ["--labels", "pos,neg,pos"],
            "--labels: expected distinct, non-empty class names, got 'pos,neg,pos'",
        ),
        "missing file": (
            ["--train_file", str(tmp_path / "no.csv"), "--test_file", str(test)],
            f"--train_file: no such file {tmp_path / 'no.csv'}",
        ),
        "file type": (
            ["--train_file", str(tmp_path / "a.xlsx"), "--test_file", str(test)],
            "--train_file: expected a .csv, .tsv or .jsonl file",
        ),
        "noheader jsonl": (
            ["--train_file", str(train), "--test_file", str(jsonl), "--noheader"],
            f"--noheader is for .csv/.tsv files; the objects of --test_file {jsonl} name keys",
        ),
        "file flag with --task": (
            ["--task", "snips", "--test_file", str(test)],
            "--test_file is for your own files (--train_file), not --task",
        ),
    }
    for name, (args, message) in cases.items():
        done = _train(tmp_path, *args)
        assert done.returncode != 0, name
        assert message in done.stderr, (name, done.stderr[-2000:])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["test.csv", "test.jsonl", "train.csv"]
