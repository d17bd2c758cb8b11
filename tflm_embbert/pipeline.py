"""The training-to-int8 pipeline: float fine-tune -> QAT -> int8 .tflite -> TFLM check -> memory.

`run_pipeline` writes one output folder (staged in `<out>.tmp`, renamed when complete):
    model.keras          float classifier, best validation epoch       train_log.csv
                         (or the given `float_model`, not retrained)
    qat.keras            QAT classifier (when qat_epochs > 0)          qat_log.csv
    model_int8.tflite    full-integer model (QAT's when there is one, else post-training)
    model_ptq.tflite     post-training int8 of the float model (when ptq=True)
    memory.json / .md    flash, TFLM arena, tensors alive at the peak, the paper's count
    results.json         every stage's validation/test metrics, agreement, timings
    vocab.txt, tokenizer_config.json

`resume=True` keeps `<out>.tmp` from an interrupted run with the same arguments: a finished float
or QAT stage (float.json / qat.json beside its model) is loaded instead of recomputed, and an
unfinished one continues after its last checkpointed epoch (`<out>.tmp/backup_<stage>`). The
conversion and TFLM check always run again.
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from keras_models.backend import keras
from tflm_embbert.datasets import TaskData
from tflm_embbert.files import publish, staging_dir, staging_path, write_text_atomic
from tflm_embbert.finetune import (
    DEFAULT_RECIPE,
    FinetuneResult,
    finetune,
    load_trained,
    qat_finetune,
)
from tflm_embbert.int8_eval import int8_under_tflm
from tflm_embbert.memory_report import memory_markdown
from tflm_embbert.qat import load_qat_model
from tflm_embbert.tokenizer import Tokenizer


def _say(line: str) -> None:
    print(line, flush=True)


def run_pipeline(
    task: TaskData,
    tokenizer: Tokenizer,
    config,
    out: str | Path,
    *,
    backbone_dir=None,
    float_model: str | Path | None = None,
    seq_len: int = 0,
    epochs: int = DEFAULT_RECIPE.epochs,
    qat_epochs: int = 0,
    qat_learning_rate: float = 2e-5,
    int8: bool = False,
    ptq: bool = False,
    calibration_examples: int = 200,
    seed: int = 0,
    verbose: int = 1,
    progress=None,
    resume: bool = False,
    **finetune_kwargs,
) -> dict:
    """Runs the stages asked for and returns the results.json dict (see the module docstring)."""
    progress = progress or _say
    started = time.time()
    arguments = {
        "task": task.name,
        "examples": [len(task.train), len(task.validation), len(task.test)],
        "config": config.to_dict() if config is not None else None,
        "backbone_dir": str(backbone_dir) if backbone_dir is not None else None,
        "float_model": str(float_model) if float_model else None,
        "vocab_size": tokenizer.vocab_size,
        "seq_len": seq_len,
        "epochs": epochs,
        "qat_epochs": qat_epochs,
        "qat_learning_rate": qat_learning_rate,
        "seed": seed,
        **{k: repr(v) for k, v in sorted(finetune_kwargs.items())},
    }
    staging = _staging(out, arguments, resume, progress)
    stages = 2 + (qat_epochs > 0) + int8 + ptq
    step = iter(range(1, stages + 1))

    if float_model:
        progress(f"[{next(step)}/{stages}] float model: {float_model} (no float training)")
        floated = load_trained(float_model, task, tokenizer, seq_len)
        floated.model.save(staging / "model.keras")
    elif resume and (done := _finished_stage(staging, "float", "model.keras")):
        progress(f"[{next(step)}/{stages}] float fine-tuning: done by an earlier run")
        floated = done
    else:
        progress(f"[{next(step)}/{stages}] float fine-tuning on {task.name}")
        floated = finetune(
            task,
            tokenizer,
            config,
            backbone_dir=backbone_dir,
            seq_len=seq_len,
            epochs=epochs,
            seed=seed,
            verbose=verbose,
            log_csv=staging / "train_log.csv",
            backup_dir=staging / "backup_float" if resume else None,
            **finetune_kwargs,
        )
        _keep_stage(staging, "float", "model.keras", floated)
    seq_len = floated.seq_len
    results = {
        "task": task.name,
        "test_split": task.test_split,
        "metric": task.metric,
        "seq_len": seq_len,
        "float": floated.to_json(),
    }

    references = {"float": floated.model}
    deployed = floated.model
    if qat_epochs > 0 and resume and (qat := _finished_stage(staging, "qat", "qat.keras")):
        progress(f"[{next(step)}/{stages}] quantization-aware training: done by an earlier run")
        results["qat"] = qat.to_json()
        references["qat"] = deployed = qat.model
    elif qat_epochs > 0:
        progress(f"[{next(step)}/{stages}] quantization-aware training")
        qat = qat_finetune(
            floated.model,
            task,
            tokenizer,
            seq_len,
            config=floated.config,
            epochs=qat_epochs,
            learning_rate=qat_learning_rate,
            batch_size=finetune_kwargs.get("batch_size", DEFAULT_RECIPE.batch_size),
            seed=seed,
            log_csv=staging / "qat_log.csv",
            verbose=verbose,
            backup_dir=staging / "backup_qat" if resume else None,
        )
        _keep_stage(staging, "qat", "qat.keras", qat)
        results["qat"] = qat.to_json()
        references["qat"] = deployed = qat.model

    if int8:
        kind = "QAT" if qat_epochs > 0 else "post-training"
        progress(f"[{next(step)}/{stages}] {kind} int8 conversion + TFLM check")
        converted = int8_under_tflm(
            deployed,
            task,
            tokenizer,
            seq_len,
            references=references,
            calibration_examples=calibration_examples,
            seed=seed,
            progress=progress,
        )
        (staging / "model_int8.tflite").write_bytes(converted.tflite)
        results["int8_tflm"] = {"from": kind, **converted.to_json()}
        (staging / "memory.json").write_text(json.dumps(converted.memory, indent=2) + "\n")
        (staging / "memory.md").write_text(
            memory_markdown(converted.memory, f"{task.name}: int8 under TFLM")
        )
    if ptq:
        progress(f"[{next(step)}/{stages}] post-training int8 (no QAT) + TFLM check")
        converted = int8_under_tflm(
            floated.model,
            task,
            tokenizer,
            seq_len,
            references={"float": floated.model},
            calibration_examples=calibration_examples,
            seed=seed,
            measure_arena=False,
            progress=progress,
        )
        (staging / "model_ptq.tflite").write_bytes(converted.tflite)
        results["ptq_int8_tflm"] = converted.to_json()

    progress(f"[{next(step)}/{stages}] writing {out}")
    for name in ("float.json", "qat.json", "arguments.json"):
        (staging / name).unlink(missing_ok=True)
    tokenizer.save(staging)
    results["wall_seconds"] = round(time.time() - started, 1)
    (staging / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    publish(staging, out)
    return results


def _staging(out, arguments: dict, resume: bool, progress) -> Path:
    """`<out>.tmp`, emptied unless `resume` finds it left by a run with the same arguments."""
    tmp = staging_path(out)
    record = tmp / "arguments.json"
    if resume and record.is_file():
        if json.loads(record.read_text()) == arguments:
            progress(f"resuming the interrupted run in {tmp}")
            return tmp
        progress(f"{tmp} was left by a run with other arguments: starting again")
    staging = staging_dir(out)
    if resume:
        write_text_atomic(record, json.dumps(arguments, indent=2) + "\n")
    return staging


def _keep_stage(staging: Path, stage: str, model_name: str, result: FinetuneResult) -> None:
    """Saves a finished stage's model, then its results (the mark that the stage is done), then
    drops its epoch checkpoints."""
    result.model.save(staging / model_name)
    write_text_atomic(staging / f"{stage}.json", json.dumps(result.to_json(), indent=2) + "\n")
    shutil.rmtree(staging / f"backup_{stage}", ignore_errors=True)


def _finished_stage(staging: Path, stage: str, model_name: str) -> FinetuneResult | None:
    """The stage `_keep_stage` saved in `staging`, or None when it did not finish."""
    record = staging / f"{stage}.json"
    if not record.is_file():
        return None
    if stage == "qat":
        model = load_qat_model(staging / model_name, compile=False)
    else:
        model = keras.models.load_model(staging / model_name, compile=False)
    return FinetuneResult.from_json(model, json.loads(record.read_text()))


def summary(results: dict) -> dict:
    """The headline figures of a results.json: metrics per stage, agreement, memory."""
    metric = results["metric"]
    line = {"task": results["task"], "seq_len": results["seq_len"]}
    for stage in ("float", "qat", "int8_tflm", "ptq_int8_tflm"):
        if stage in results:
            line[f"{stage}_test_{metric}"] = round(results[stage]["test"][metric], 4)
    if "int8_tflm" in results:
        int8 = results["int8_tflm"]
        line["int8_agreement"] = {k: round(v, 4) for k, v in int8["agreement"].items()}
        memory = int8["memory"]
        if memory:
            line["flash_tflite_bytes"] = memory["flash_tflite_bytes"]
            line["ram_arena_bytes"] = memory["ram_arena_bytes"]
    line["wall_seconds"] = results["wall_seconds"]
    return line
