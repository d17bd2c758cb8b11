"""`export_tflite --run DIR`: a pipeline run folder fills in every flag the command was not given.

From DIR/run.json (`tflm_embbert.run_record`): --model (the run's deployed model: qat.keras when
QAT ran, else model.keras), --tokenizer (DIR), --seq_len, --out (DIR/arduino), --name (from the
task's name), the data flags (--task or --train_file/--test_file and the column flags, the seed
...) unless --task or --train_file is given, and the int8 flags (--lean, --chunk_rows, ...) of the
run's int8 stage. A flag on the command line wins. When the export converts the run's own model at
the run's L with the run's int8 settings, the run's checked int8 graph is reused (`run_int8`)
instead of converted and run under TFLM again.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from export import cpp_sources
from tflm_embbert.run_record import RUN_FILE, RunFolderError, read_run

INT8_FLAGS = ("calibration_examples", "lean", "mask_bias", "per_channel_dense")
LIBRARY_FOLDER = "arduino"


def library_name(task: str, fallback: str = "EmbBERTClassifier") -> str:
    """'snips' -> 'SnipsClassifier', 'my-intents_v2' -> 'MyIntentsV2Classifier' (a C++
    identifier); `fallback` when the task's name gives none."""
    words = re.findall(r"[A-Za-z0-9]+", task)
    name = "".join(w[:1].upper() + w[1:] for w in words) + "Classifier"
    try:
        return cpp_sources.check_name(name)
    except ValueError:
        return fallback


def _default(f, name: str, value) -> None:
    if not f[name].present:
        f[name].value = value


def apply_run(f) -> dict:
    """Fills the flags of `f` that were not given from the run folder `f.run` (see the module
    docstring); returns its run.json. RunFolderError (one line) for a folder that is not a run,
    or one without a recorded data source when no data flag is given."""
    folder = Path(f.run)
    record = read_run(folder)
    _default(f, "model", str(folder / record["deployed"]))
    _default(f, "tokenizer", str(folder))
    _default(f, "seq_len", int(record["seq_len"]))
    _default(f, "out", str(folder / LIBRARY_FOLDER))
    _default(f, "name", library_name(record["task"]))
    if not (f["task"].present or f["train_file"].present):
        data = record.get("data")
        if not data:
            raise RunFolderError(
                f"{folder / RUN_FILE}: records no data source (the run was made from Python); "
                "give --task, or --train_file and --test_file"
            )
        for name, value in data.items():
            if name in f:
                _default(f, name, value)
    int8 = (record.get("settings") or {}).get("int8")
    if int8:
        for name in INT8_FLAGS:
            _default(f, name, int8[name])
        _default(f, "chunk_rows", [str(rows) for rows in int8["chunk_rows"]])
    return record


def check_labels(record: dict, labels: list[str] | None) -> None:
    """RunFolderError unless the data's labels are the run's, in the same class order."""
    if labels != record["labels"]:
        raise RunFolderError(
            f"--run: the data's labels {labels} are not the run's {record['labels']} (the "
            "model's outputs follow the run's order)"
        )


def run_int8(folder, record: dict, model_path, seq_len: int, int8_settings):
    """The run's int8 result (its .tflite and TFLM figures, `tflm.int8_eval.Int8Result`) when
    the export would make the same graph: the run's deployed model at the run's L with the
    run's int8 settings; else None."""
    from tflm_embbert.tflm.int8_eval import Int8Result

    folder = Path(folder)
    tflite = folder / (record.get("models") or {}).get("int8", "")
    results = folder / "results.json"
    same = (
        Path(model_path).resolve() == (folder / record["deployed"]).resolve()
        and seq_len == record["seq_len"]
        and int8_settings.to_json() == (record.get("settings") or {}).get("int8")
        and tflite.is_file()
        and results.is_file()
    )
    if not same:
        return None
    stage = json.loads(results.read_text()).get("int8_tflm")
    return Int8Result.from_json(tflite.read_bytes(), stage) if stage else None
