"""The command-line flags that choose a task's data, shared by the train and export commands.

--task snips [--data_dir ../shared/data]          a registered task
--train_file a.csv --test_file b.csv [--text_column text --label_column label ...]
"""

from __future__ import annotations

from pathlib import Path

from absl import app, flags

from tflm_embbert.common import paths
from tflm_embbert.data.datasets import TASKS, load_task
from tflm_embbert.data.examples import TaskData
from tflm_embbert.data.user_files import load_generic

FLAGS = flags.FLAGS
flags.DEFINE_string("task", None, f"Task in the data folder: {', '.join(TASKS)}.")
flags.DEFINE_string("data_dir", None, "Folder holding the task folders (default ../shared/data).")
flags.DEFINE_string("train_file", None, "Generic CSV/TSV/JSONL train file (instead of --task).")
flags.DEFINE_string("test_file", None, "Generic test file (with --train_file).")
flags.DEFINE_string("text_column", "text", "Generic files: text column.")
flags.DEFINE_string("text_b_column", None, "Generic files: second text column (pairs).")
flags.DEFINE_string("label_column", "label", "Generic files: label column.")
flags.DEFINE_bool("regression", False, "Generic files: the label is a float score.")
flags.DEFINE_float("val_fraction", 0.1, "Share of train held out for validation.")
flags.DEFINE_integer("seed", 0, "Seed for the validation slice, init, shuffling and sampling.")
flags.DEFINE_integer("train_limit", None, "Use at most this many training examples.")


def load_data(f=FLAGS) -> TaskData:
    """The task the flags name; app.UsageError when they are inconsistent."""
    if bool(f.task) == bool(f.train_file):
        raise app.UsageError("give exactly one of --task or --train_file")
    if f.train_file:
        if not f.test_file:
            raise app.UsageError("--train_file needs --test_file")
        return load_generic(
            f.train_file,
            f.test_file,
            text_column=f.text_column,
            label_column=f.label_column,
            text_b_column=f.text_b_column,
            regression=f.regression,
            val_fraction=f.val_fraction,
            seed=f.seed,
        )
    data_dir = Path(f.data_dir) if f.data_dir else paths.shared_data_dir()
    return load_task(
        f.task, data_dir, val_fraction=f.val_fraction, seed=f.seed, train_limit=f.train_limit
    )
