"""run.json: what a pipeline run folder is and how it was made, so the folder describes itself.

`run_pipeline` writes it beside the models; `export_tflite --run DIR` reads it back (`read_run`)
and needs no other flag. No TensorFlow import (the commands read it before loading anything
heavy). Its keys:

    format       1
    task         the task's name (a registered task, --task_name, or the train file's name)
    labels       class names in class-index order (null for regression); metric, test_split
    seq_len      L, the tokens per example the models take
    tokenizer    {"folder": ".", "files": [...], "vocab_size", "source": where it came from}
    models       {"float", "qat", "int8", "ptq"}: file names of the models the run wrote
    deployed     the Keras model export_tflite converts (qat.keras when QAT ran, else the float)
    data         the data flags of the command (paths absolute), null when called from Python
    settings     the stages' settings (Stages.to_json: float_fit, qat_fit, int8, ptq)
    model        {"config", "backbone_dir", "float_model"}: where the weights started
    examples     {"train", "validation", "test"} counts
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import flags

from tflm_embbert.common.errors import UserInputError
from tflm_embbert.data.examples import TaskData
from tflm_embbert.data.tokenizer import CONFIG_FILE, VOCAB_FILE, Tokenizer
from tflm_embbert.stages import Stages

RUN_FILE = "run.json"
FORMAT = 1
DATA_FLAGS_MODULE = "tflm_embbert.data.flags"
MODEL_FILES = {
    "float": "model.keras",
    "qat": "qat.keras",
    "int8": "model_int8.tflite",
    "ptq": "model_ptq.tflite",
}


class RunFolderError(UserInputError):
    """A run folder or its run.json is missing or not what `run_pipeline` writes (one line)."""


def data_source(flag_values=flags.FLAGS) -> dict:
    """The command's data flags (those `tflm_embbert.data.flags` defines) and their values; file
    and folder paths are made absolute, so the record holds wherever the command ran."""
    values = {}
    for flag in flag_values.get_flags_for_module(DATA_FLAGS_MODULE):
        value = flag.value
        if value is not None and flag.name.endswith(("_file", "_dir")):
            value = str(Path(value).resolve())
        values[flag.name] = value
    return values


def run_record(
    task: TaskData,
    tokenizer: Tokenizer,
    seq_len: int,
    stages: Stages,
    files: list[str],
    *,
    data: dict | None = None,
    tokenizer_source: str | None = None,
    config: dict | None = None,
    backbone_dir: str | None = None,
    float_model: str | None = None,
) -> dict:
    """The run.json dict of a run that wrote `files` (names in its folder)."""
    models = {stage: name for stage, name in MODEL_FILES.items() if name in files}
    return {
        "format": FORMAT,
        "task": task.name,
        "labels": task.label_names,
        "metric": task.metric,
        "test_split": task.test_split,
        "seq_len": seq_len,
        "tokenizer": {
            "folder": ".",
            "files": [VOCAB_FILE, CONFIG_FILE],
            "vocab_size": tokenizer.vocab_size,
            "source": tokenizer_source,
        },
        "models": models,
        "deployed": models.get("qat", models.get("float")),
        "data": data,
        "settings": stages.to_json(),
        "model": {"config": config, "backbone_dir": backbone_dir, "float_model": float_model},
        "examples": {
            "train": len(task.train),
            "validation": len(task.validation),
            "test": len(task.test),
        },
    }


def read_run(folder: str | Path) -> dict:
    """run.json of the run folder `folder`, checked: RunFolderError (one line) otherwise."""
    folder = Path(folder)
    path = folder / RUN_FILE
    if not path.is_file():
        what = "no run.json (a folder written by `train`)" if folder.is_dir() else "no folder"
        raise RunFolderError(f"--run: {folder}: {what}")
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as error:
        raise RunFolderError(f"{path}: expected JSON, got {error}") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        got = record.get("format") if isinstance(record, dict) else type(record).__name__
        raise RunFolderError(f"{path}: expected format {FORMAT}, got {got!r}")
    missing = [k for k in ("task", "labels", "seq_len", "tokenizer", "deployed") if k not in record]
    if missing:
        raise RunFolderError(f"{path}: expected the keys {', '.join(missing)}")
    for name in [record["deployed"], *record["tokenizer"]["files"]]:
        if not (folder / name).is_file():
            raise RunFolderError(f"{path}: names {name}, which is not in {folder}")
    return record
