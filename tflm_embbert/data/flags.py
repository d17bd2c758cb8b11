"""The command-line flags that choose a task's data, shared by the train and export commands.

--task snips [--data_dir ../shared/data]          a registered task
--train_file a.csv --test_file b.csv [--validation_file c.csv] [--text_column text
    --label_column label] [--labels neg,pos]      the user's own files (header row: names)
--train_file a.csv --test_file b.csv --noheader --text_column 0 --label_column 1
                                                  files without a header row: 0-based indices

A command shows these flags in its --help with `flags.adopt_module_key_flags(data_flags)`.
Every inconsistent or missing flag value is an app.UsageError (one line) before any file is
read; a file that is not as expected is a DataFormatError (one line: file, line, what was
expected).
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags

from tflm_embbert.common import paths
from tflm_embbert.data.datasets import TASKS, load_task
from tflm_embbert.data.examples import TaskData
from tflm_embbert.data.user_files import generic_format, load_generic

FLAGS = flags.FLAGS
flags.DEFINE_string("task", None, f"Task in the data folder: {', '.join(TASKS)}.")
flags.DEFINE_string("data_dir", None, "Folder holding the task folders (default ../shared/data).")
flags.DEFINE_string(
    "train_file",
    None,
    "Your own train file instead of --task: .csv, .tsv or .jsonl (optionally .gz), UTF-8.",
)
flags.DEFINE_string("test_file", None, "Your own labelled test file (with --train_file).")
flags.DEFINE_string(
    "task_name", None, "Your files: the task's name in reports (default: the train file's)."
)
flags.DEFINE_string(
    "validation_file",
    None,
    "Your own validation file (with --train_file; epochs are chosen on it). Default: a seeded "
    "--val_fraction of --train_file.",
)
flags.DEFINE_bool(
    "header",
    True,
    "CSV/TSV files: the first row names the columns. --noheader: every row is data and the "
    "column flags are 0-based indices (e.g. --text_column 0 --label_column 1).",
)
_COLUMN = "its header name, or with --noheader its 0-based index."
flags.DEFINE_string("text_column", "text", f"Your files: the text column: {_COLUMN}")
flags.DEFINE_string("text_b_column", None, f"Your files: a second text (pairs): {_COLUMN}")
flags.DEFINE_string("label_column", "label", f"Your files: the label column: {_COLUMN}")
flags.DEFINE_list(
    "labels",
    None,
    "Your files: the class names in class-index order, e.g. neg,pos (default: the train file's "
    "labels, sorted; numerically if all are integers). A label not listed is an error.",
)
flags.DEFINE_bool("regression", False, "Your files: the label is a float score.")
flags.DEFINE_float(
    "val_fraction", 0.1, "Share of train held out for validation (not with --validation_file)."
)
flags.DEFINE_integer("seed", 0, "Seed for the validation slice, init, shuffling and sampling.")
flags.DEFINE_integer("train_limit", None, "Use at most this many training examples.")

_FILE_FLAGS = ("train_file", "test_file", "validation_file")
_FILES_ONLY = ("test_file", "validation_file", "header", "text_column", "text_b_column")
_FILES_ONLY += ("label_column", "labels", "regression", "task_name")
_COLUMN_FLAGS = ("text_column", "text_b_column", "label_column")


def load_data(f=FLAGS) -> TaskData:
    """The task the flags name; app.UsageError when they are inconsistent."""
    if bool(f.task) == bool(f.train_file):
        raise app.UsageError("give exactly one of --task or --train_file")
    if f.train_file:
        return load_files(f)
    for name in _FILES_ONLY:
        if f[name].present:
            raise app.UsageError(f"--{name} is for your own files (--train_file), not --task")
    data_dir = Path(f.data_dir) if f.data_dir else paths.shared_data_dir()
    return load_task(
        f.task, data_dir, val_fraction=f.val_fraction, seed=f.seed, train_limit=f.train_limit
    )


def load_files(f=FLAGS) -> TaskData:
    """The user's own files (--train_file ...); the flags are checked before any file is read."""
    if not f.test_file:
        raise app.UsageError("--train_file needs --test_file (a labelled file to score on)")
    if f.validation_file and f["val_fraction"].present:
        raise app.UsageError(
            "--val_fraction and --validation_file both choose the validation split: give one"
        )
    files = {name: f[name].value for name in _FILE_FLAGS if f[name].value}
    for name, path in files.items():
        try:
            fmt = generic_format(path)
        except ValueError:
            raise app.UsageError(
                f"--{name}: expected a .csv, .tsv or .jsonl file (optionally .gz), got {path}"
            ) from None
        if not Path(path).is_file():
            raise app.UsageError(f"--{name}: no such file {path}")
        if fmt == ".jsonl" and not f.header:
            raise app.UsageError(
                f"--noheader is for .csv/.tsv files; the objects of --{name} {path} name keys"
            )
    columns = {name: _column(f, name) for name in _COLUMN_FLAGS}
    labels = f.labels
    if labels is not None:
        if f.regression:
            raise app.UsageError("--labels names classes; --regression has none")
        repeated = sorted({label for label in labels if labels.count(label) > 1})
        if not labels or not all(labels) or repeated:
            raise app.UsageError(
                f"--labels: expected distinct, non-empty class names, got {','.join(labels)!r}"
            )
    if f.train_limit is not None and f.train_limit < 1:
        raise app.UsageError(f"--train_limit: expected at least 1, got {f.train_limit}")
    return load_generic(
        files["train_file"],
        files["test_file"],
        validation_path=files.get("validation_file"),
        header=f.header,
        label_names=labels,
        regression=f.regression,
        val_fraction=f.val_fraction,
        seed=f.seed,
        train_limit=f.train_limit,
        name=f.task_name,
        **columns,
    )


def _column(f, name: str) -> str | int | None:
    """A column flag's value: a name, or with --noheader a 0-based index."""
    value = f[name].value
    if value is None or f.header:
        return value
    if not value.isdigit():
        raise app.UsageError(
            f"--{name}: with --noheader, expected a 0-based column index, got {value!r} "
            "(e.g. --text_column 0 --label_column 1)"
        )
    return int(value)
