"""The training-to-int8 pipeline: float fine-tune -> QAT -> int8 .tflite -> TFLM check -> memory.

`run_pipeline` writes one output folder (staged in `<out>.tmp`, renamed when complete):
    model.keras          float classifier, best validation epoch       train_log.csv
                         (or the given `float_model`, not retrained)
    qat.keras            QAT classifier (with a QAT stage)             qat_log.csv
    model_int8.tflite    full-integer model (QAT's when there is one, else post-training)
    model_ptq.tflite     post-training int8 of the float model (when ptq=True)
    memory.json / .md    flash, TFLM arena, tensors alive at the peak, the paper's count
    results.json         every stage's validation/test metrics, per-class test figures
                         ("test_per_class"), agreement, timings
    run.json             what the run is: task, labels, L, tokenizer, data, settings
                         (tflm_embbert.run_record; `export_tflite --run <out>` reads it)
    predictions.csv      every test example: true label, each stage's class and probability
    report.md            the run at a glance, linking the pictures (confusion_matrix.png,
                         int8_vs_float.png, memory.png) and every file (tflm_embbert.report)
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
from tflm_embbert.common.files import publish, staging_dir, staging_path, write_text_atomic
from tflm_embbert.data.encoding import encode
from tflm_embbert.data.examples import TaskData
from tflm_embbert.data.tokenizer import Tokenizer
from tflm_embbert.quantize.qat import load_qat_model
from tflm_embbert.quantize.qat_finetune import qat_finetune
from tflm_embbert.report.run_report import RESULT_KEYS, per_class, write_run_report
from tflm_embbert.run_record import RUN_FILE, run_record
from tflm_embbert.stages import Stages
from tflm_embbert.tflm.int8_eval import int8_under_tflm
from tflm_embbert.tflm.memory_report import memory_markdown
from tflm_embbert.tflm.settings import Int8Settings
from tflm_embbert.training.finetune import FinetuneResult, finetune, load_trained


def _say(line: str) -> None:
    print(line, flush=True)


def run_pipeline(
    task: TaskData,
    tokenizer: Tokenizer,
    config,
    out: str | Path,
    stages: Stages | None = None,
    *,
    backbone_dir=None,
    float_model: str | Path | None = None,
    seq_len: int = 0,
    verbose: int = 1,
    progress=None,
    resume: bool = False,
    data_source: dict | None = None,
    tokenizer_source: str | None = None,
) -> dict:
    """Runs `stages` (default: float fine-tuning only) and returns the results.json dict (see
    the module docstring). `data_source` (the command's data flags) and `tokenizer_source`
    (the tokenizer's folder) go into run.json."""
    stages = stages or Stages()
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
        "stages": stages.to_json(),
    }
    staging = _staging(out, arguments, resume, progress)
    int8_settings = stages.int8 or Int8Settings(seed=stages.float_fit.seed)
    count = 2 + bool(stages.qat_fit) + bool(stages.int8) + stages.ptq
    step = iter(range(1, count + 1))

    if float_model:
        progress(f"[{next(step)}/{count}] float model: {float_model} (no float training)")
        floated = load_trained(float_model, task, tokenizer, seq_len)
        floated.model.save(staging / "model.keras")
    elif resume and (done := _finished_stage(staging, "float", "model.keras")):
        progress(f"[{next(step)}/{count}] float fine-tuning: done by an earlier run")
        floated = done
    else:
        progress(f"[{next(step)}/{count}] float fine-tuning on {task.name}")
        floated = finetune(
            task,
            tokenizer,
            config,
            stages.float_fit,
            backbone_dir=backbone_dir,
            seq_len=seq_len,
            verbose=verbose,
            log_csv=staging / "train_log.csv",
            backup_dir=staging / "backup_float" if resume else None,
        )
        _keep_stage(staging, "float", "model.keras", floated)
    seq_len = floated.seq_len
    test_x, _ = encode(tokenizer, task.test, seq_len)
    logits = {"float": floated.model.predict(test_x, batch_size=256, verbose=0)}
    results = {
        "task": task.name,
        "test_split": task.test_split,
        "metric": task.metric,
        "seq_len": seq_len,
        "float": floated.to_json(),
    }

    references = {"float": floated.model}
    deployed = floated.model
    if stages.qat_fit and resume and (qat := _finished_stage(staging, "qat", "qat.keras")):
        progress(f"[{next(step)}/{count}] quantization-aware training: done by an earlier run")
        results["qat"] = qat.to_json()
        references["qat"] = deployed = qat.model
        logits["qat"] = qat.model.predict(test_x, batch_size=256, verbose=0)
    elif stages.qat_fit:
        progress(f"[{next(step)}/{count}] quantization-aware training")
        qat = qat_finetune(
            floated.model,
            task,
            tokenizer,
            seq_len,
            stages.qat_fit,
            config=floated.config,
            log_csv=staging / "qat_log.csv",
            verbose=verbose,
            backup_dir=staging / "backup_qat" if resume else None,
        )
        _keep_stage(staging, "qat", "qat.keras", qat)
        results["qat"] = qat.to_json()
        references["qat"] = deployed = qat.model
        logits["qat"] = qat.model.predict(test_x, batch_size=256, verbose=0)

    if stages.int8:
        kind = "QAT" if stages.qat_fit else "post-training"
        progress(f"[{next(step)}/{count}] {kind} int8 conversion + TFLM check")
        converted = int8_under_tflm(
            deployed,
            task,
            tokenizer,
            seq_len,
            stages.int8,
            references=references,
            progress=progress,
        )
        (staging / "model_int8.tflite").write_bytes(converted.tflite)
        results["int8_tflm"] = {"from": kind, **converted.to_json()}
        logits["int8"] = converted.test_logits
        (staging / "memory.json").write_text(json.dumps(converted.memory, indent=2) + "\n")
        (staging / "memory.md").write_text(
            memory_markdown(converted.memory, f"{task.name}: int8 under TFLM")
        )
    if stages.ptq:
        progress(f"[{next(step)}/{count}] post-training int8 (no QAT) + TFLM check")
        converted = int8_under_tflm(
            floated.model,
            task,
            tokenizer,
            seq_len,
            int8_settings,
            references={"float": floated.model},
            measure_arena=False,
            progress=progress,
        )
        (staging / "model_ptq.tflite").write_bytes(converted.tflite)
        results["ptq_int8_tflm"] = converted.to_json()
        logits["ptq"] = converted.test_logits

    progress(f"[{next(step)}/{count}] writing {out}")
    for name in ("float.json", "qat.json", "arguments.json"):
        (staging / name).unlink(missing_ok=True)
    tokenizer.save(staging)
    if not task.is_regression:
        results["test_per_class"] = per_class(task, logits)
    record = run_record(
        task,
        tokenizer,
        seq_len,
        stages,
        sorted(p.name for p in staging.iterdir()),
        data=data_source,
        tokenizer_source=tokenizer_source,
        config=floated.config.to_dict() if floated.config else arguments["config"],
        backbone_dir=arguments["backbone_dir"],
        float_model=arguments["float_model"],
    )
    (staging / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n")
    results["wall_seconds"] = round(time.time() - started, 1)
    (staging / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    write_run_report(staging, task, results, logits)
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
    """The headline figures of a results.json: metrics and macro-F1 per stage, agreement,
    memory."""
    metric = results["metric"]
    line = {"task": results["task"], "seq_len": results["seq_len"]}
    classes = results.get("test_per_class", {})
    for short, stage in RESULT_KEYS.items():
        if stage in results:
            line[f"{stage}_test_{metric}"] = round(results[stage]["test"][metric], 4)
        if short in classes:
            line[f"{stage}_test_macro_f1"] = round(classes[short]["macro_f1"], 4)
    if "int8_tflm" in results:
        int8 = results["int8_tflm"]
        line["int8_agreement"] = {k: round(v, 4) for k, v in int8["agreement"].items()}
        memory = int8["memory"]
        if memory:
            line["flash_tflite_bytes"] = memory["flash_tflite_bytes"]
            line["ram_arena_bytes"] = memory["ram_arena_bytes"]
    line["wall_seconds"] = results["wall_seconds"]
    return line
