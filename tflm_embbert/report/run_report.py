"""The reader's side of a run folder: predictions.csv, the PNG pictures and report.md.

    write_run_report(folder, task, results, logits)

`logits`: {stage: (test examples, labels) array} for the stages that ran, in order: "float"
(Keras), "qat" (Keras), "int8" (dequantized int8 logits under TFLM). predictions.csv has one row
per test example: its row in the test split (0-based, the file's order), the text, the true
label, then per stage the predicted class and its softmax probability (regression: the predicted
score). The pictures are classification-only except the memory one (needs the int8 stage).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from tflm_embbert.data.examples import TaskData
from tflm_embbert.report import pictures

PREDICTIONS = "predictions.csv"
REPORT = "report.md"
CONFUSION = "confusion_matrix.png"
INT8_VS_FLOAT = "int8_vs_float.png"
MEMORY = "memory.png"
LATENCY = "latency.png"
STAGE_NAMES = {
    "float": "float Keras",
    "qat": "QAT Keras",
    "int8": "int8 under TFLM",
    "ptq": "post-training int8 under TFLM",
}
RESULT_KEYS = {"float": "float", "qat": "qat", "int8": "int8_tflm", "ptq": "ptq_int8_tflm"}
FILES = {
    "run.json": "what the run was: task, labels, L, tokenizer, data source, settings",
    "results.json": "every stage's validation and test metrics, per-class figures, timings",
    PREDICTIONS: "one row per test example: true label, each stage's class and probability",
    REPORT: "this page",
    "model.keras": "float classifier (best validation epoch)",
    "qat.keras": "quantization-aware classifier",
    "model_int8.tflite": "full-integer model, checked under the TFLM runtime",
    "model_ptq.tflite": "post-training int8 of the float model",
    "memory.json": "flash, TFLM arena and the tensors alive at the activation peak",
    "memory.md": "the same as a table",
    CONFUSION: "confusion matrix of the deployed stage on the test split",
    INT8_VS_FLOAT: "per-class recall of each stage; int8 against float probabilities",
    MEMORY: "flash and arena parts of the int8 model",
    LATENCY: "estimated Cortex-M4 instructions per Invoke of the int8 model, by op",
    "train_log.csv": "float fine-tuning, one row per epoch",
    "qat_log.csv": "quantization-aware fine-tuning, one row per epoch",
    "vocab.txt": "the tokenizer's vocabulary",
    "tokenizer_config.json": "the tokenizer's settings",
}


def predictions_csv(task: TaskData, logits: dict[str, np.ndarray]) -> str:
    """The CSV text of predictions.csv (see the module docstring)."""
    pairs = any(e.text_b is not None for e in task.test)
    header = ["row", "text", *(["text_b"] if pairs else [])]
    if task.is_regression:
        header += ["true_score"] + [f"{stage}_score" for stage in logits]
    else:
        header += ["true_label"]
        for stage in logits:
            header += [f"{stage}_label", f"{stage}_score"]
    probabilities = {
        stage: values.reshape(len(task.test), -1)
        if task.is_regression
        else pictures.softmax(values)
        for stage, values in logits.items()
    }
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(header)
    for row, example in enumerate(task.test):
        line = [row, example.text_a, *([example.text_b or ""] if pairs else [])]
        if task.is_regression:
            line += [f"{example.label:.6g}"]
            line += [f"{probabilities[stage][row, 0]:.6g}" for stage in logits]
        else:
            line += [task.label_names[example.label]]
            for stage in logits:
                chosen = int(probabilities[stage][row].argmax())
                line += [task.label_names[chosen], f"{probabilities[stage][row, chosen]:.4f}"]
        writer.writerow(line)
    return out.getvalue()


def per_class(task: TaskData, logits: dict[str, np.ndarray]) -> dict[str, dict]:
    """{stage: `per_class_metrics`} on the test split (empty for regression)."""
    from tflm_embbert.data.metrics import per_class_metrics

    if task.is_regression:
        return {}
    truth = [e.label for e in task.test]
    return {s: per_class_metrics(truth, v, task.label_names) for s, v in logits.items()}


def write_run_report(
    folder: Path, task: TaskData, results: dict, logits: dict[str, np.ndarray]
) -> list[str]:
    """Writes predictions.csv, the pictures and report.md into `folder` (results.json's dict
    `results` with its "test_per_class"); returns the names written."""
    folder = Path(folder)
    (folder / PREDICTIONS).write_text(predictions_csv(task, logits), encoding="utf-8")
    written = [PREDICTIONS]
    classes = results.get("test_per_class") or {}
    if classes:
        shown = "int8" if "int8" in logits else "qat" if "qat" in logits else "float"
        truth = [e.label for e in task.test]
        title = f"{task.name}: {STAGE_NAMES[shown]}, {task.test_split} split"
        pictures.confusion_png(
            folder / CONFUSION, truth, logits[shown].argmax(-1), task.label_names, title
        )
        written.append(CONFUSION)
        if "int8" in logits:
            chosen = {s: classes[s] for s in ("float", "qat", "int8") if s in classes}
            pictures.int8_vs_float_png(folder / INT8_VS_FLOAT, chosen, logits, task.label_names)
            written.append(INT8_VS_FLOAT)
    memory = (results.get("int8_tflm") or {}).get("memory")
    if memory:
        pictures.memory_png(folder / MEMORY, memory)
        written.append(MEMORY)
    if (folder / "model_int8.tflite").is_file():
        _latency_png(folder / LATENCY, (folder / "model_int8.tflite").read_bytes(), results)
        written.append(LATENCY)
    (folder / REPORT).write_text(report_markdown(folder, task, results, written))
    return written + [REPORT]


def _latency_png(path: Path, tflite: bytes, results: dict) -> Path:
    """The int8 model's estimated instructions per Invoke on the Cortex-M4 (tflm.latency),
    with TFLM + CMSIS-NN kernels and with the library's own kernels."""
    from tflm_embbert.tflm import latency

    bars = {
        "TFLM + CMSIS-NN": latency.estimate_tflite(tflite).by_op,
        "own kernels": latency.estimate_tflite(tflite, latency.own_kernel_ops()).by_op,
    }
    title = f"int8 model at L={results['seq_len']}: Cortex-M4 instructions per Invoke"
    return pictures.latency_png(path, bars, title)


def _stage_rows(results: dict) -> list[str]:
    stages = [s for s, key in RESULT_KEYS.items() if key in results]
    metrics = list(dict.fromkeys(m for s in stages for m in results[RESULT_KEYS[s]]["test"]))
    classes = results.get("test_per_class") or {}
    header = ["stage", *metrics] + (["macro-F1"] if classes else [])
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for stage in stages:
        test = results[RESULT_KEYS[stage]]["test"]
        cells = [STAGE_NAMES[stage]] + [f"{test[m]:.4f}" if m in test else "" for m in metrics]
        if classes:
            cells.append(f"{classes[stage]['macro_f1']:.4f}" if stage in classes else "")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def _class_rows(classes: dict[str, dict]) -> list[str]:
    stages = list(classes)
    header = ["label", "support"] + [f"{STAGE_NAMES[s]}: P / R / F1" for s in stages]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    first = classes[stages[0]]["classes"]
    for index, row in enumerate(first):
        cells = [row["label"], str(row["support"])]
        for stage in stages:
            c = classes[stage]["classes"][index]
            cells.append(f"{c['precision']:.3f} / {c['recall']:.3f} / {c['f1']:.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def report_markdown(folder: Path, task: TaskData, results: dict, pictures_written) -> str:
    """report.md: the run at a glance, linking every picture and file of `folder`."""
    counts = f"{len(task.train)} train / {len(task.validation)} validation / {len(task.test)}"
    labels = "regression (one score)" if task.is_regression else ", ".join(task.label_names)
    lines = [
        f"# {task.name}: run report",
        "",
        f"{counts} {task.test_split} examples; L={results['seq_len']} tokens; "
        f"labels in class order: {labels}. The run's settings and data: [run.json](run.json); "
        "every figure: [results.json](results.json); each test example: "
        f"[{PREDICTIONS}]({PREDICTIONS}).",
        "",
        f"## Test results ({task.test_split} split, scored once per stage)",
        "",
        *_stage_rows(results),
        "",
    ]
    agreement = (results.get("int8_tflm") or {}).get("agreement") or {}
    if agreement:
        shown = ", ".join(f"{STAGE_NAMES.get(k, k)} {100 * v:.1f}%" for k, v in agreement.items())
        lines += [f"int8 under TFLM predicts the same class as: {shown}.", ""]
    classes = results.get("test_per_class") or {}
    if classes:
        lines += ["## Per class", "", *_class_rows(classes), ""]
    titles = {
        CONFUSION: "Confusion matrix",
        INT8_VS_FLOAT: "int8 against float",
        MEMORY: "Memory of the int8 model",
        LATENCY: "Cortex-M4 latency of the int8 model (estimate)",
    }
    shown_pictures = [name for name in titles if name in pictures_written]
    if shown_pictures:
        lines += ["## Pictures", ""]
        for name in shown_pictures:
            lines += [f"### {titles[name]}", "", f"![{titles[name]}]({name})", ""]
    if (folder / "memory.md").is_file():
        lines += ["Memory figures and the largest tensors: [memory.md](memory.md).", ""]
    present = sorted(
        {p.name for p in folder.iterdir() if p.is_file()} | set(pictures_written) | {REPORT}
    )
    lines += ["## Files", "", "| file | what |", "|---|---|"]
    lines += [f"| [{name}]({name}) | {FILES.get(name, '')} |" for name in present]
    return "\n".join(lines) + "\n"
