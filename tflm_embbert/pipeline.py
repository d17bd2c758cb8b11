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
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tflm_embbert.datasets import TaskData
from tflm_embbert.files import publish, staging_dir
from tflm_embbert.finetune import finetune, load_trained, qat_finetune
from tflm_embbert.int8_eval import int8_under_tflm
from tflm_embbert.memory_report import memory_markdown
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
    epochs: int = 10,
    qat_epochs: int = 0,
    qat_learning_rate: float = 2e-5,
    int8: bool = False,
    ptq: bool = False,
    calibration_examples: int = 200,
    seed: int = 0,
    verbose: int = 1,
    progress=None,
    **finetune_kwargs,
) -> dict:
    """Runs the stages asked for and returns the results.json dict (see the module docstring)."""
    progress = progress or _say
    started = time.time()
    staging = staging_dir(out)
    stages = 2 + (qat_epochs > 0) + int8 + ptq
    step = iter(range(1, stages + 1))

    if float_model:
        progress(f"[{next(step)}/{stages}] float model: {float_model} (no float training)")
        floated = load_trained(float_model, task, tokenizer, seq_len)
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
            **finetune_kwargs,
        )
    floated.model.save(staging / "model.keras")
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
    if qat_epochs > 0:
        progress(f"[{next(step)}/{stages}] quantization-aware training")
        qat = qat_finetune(
            floated.model,
            task,
            tokenizer,
            seq_len,
            config=floated.config,
            epochs=qat_epochs,
            learning_rate=qat_learning_rate,
            batch_size=finetune_kwargs.get("batch_size", 32),
            seed=seed,
            log_csv=staging / "qat_log.csv",
            verbose=verbose,
        )
        qat.model.save(staging / "qat.keras")
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
    tokenizer.save(staging)
    results["wall_seconds"] = round(time.time() - started, 1)
    (staging / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    publish(staging, out)
    return results


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
