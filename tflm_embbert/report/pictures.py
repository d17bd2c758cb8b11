"""PNG pictures of one run (matplotlib, Agg backend: no display needed).

- `confusion_png`: the test split's confusion matrix of one stage (counts, true rows).
- `int8_vs_float_png`: per-class recall of each stage side by side, and each test example's
  float score of the float model's class against the int8 model's score of that class.
- `memory_png`: the int8 model's flash (.tflite parts) and RAM (TFLM arena parts) in KiB.
- `latency_png`: estimated Cortex-M4 instructions per Invoke by op, one bar per graph / kernel set.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion_png(path: Path, y_true, y_pred, labels: list[str], title: str) -> Path:
    """Confusion matrix (rows: true class, columns: predicted) with counts in the cells."""
    from sklearn.metrics import ConfusionMatrixDisplay

    side = min(14.0, 3.0 + 0.55 * len(labels))
    fig, ax = plt.subplots(figsize=(side + 1.0, side))
    ConfusionMatrixDisplay.from_predictions(
        y_true,
        y_pred,
        labels=list(range(len(labels))),
        display_labels=labels,
        ax=ax,
        cmap="Blues",
        colorbar=False,
        xticks_rotation=45 if len(labels) > 3 else "horizontal",
        include_values=len(labels) <= 30,
    )
    ax.set_title(title)
    return _save(fig, path)


def softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.asarray(logits, np.float64) - np.max(logits, axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def int8_vs_float_png(
    path: Path, per_class: dict[str, dict], logits: dict[str, np.ndarray], labels: list[str]
) -> Path:
    """Left: recall (accuracy within the class) per class and stage (`per_class`: stage ->
    `data.metrics.per_class_metrics`). Right: float probability of the float model's class
    against the int8 probability of the same class, one dot per test example, crosses where
    the int8 class differs."""
    stages = list(per_class)
    fig, (bars, dots) = plt.subplots(
        1, 2, figsize=(max(9.0, 5.0 + 0.45 * len(labels) * len(stages) / 2), 4.2)
    )
    width = 0.8 / len(stages)
    x = np.arange(len(labels))
    for k, stage in enumerate(stages):
        recall = [row["recall"] for row in per_class[stage]["classes"]]
        bars.bar(x + (k - (len(stages) - 1) / 2) * width, recall, width, label=stage)
    bars.set_xticks(x, labels, rotation=45 if len(labels) > 3 else 0, ha="right")
    bars.set_ylim(0, 1.2)
    bars.set_ylabel("recall on the test split")
    bars.set_title("per-class recall")
    bars.legend(fontsize="small", loc="upper center", ncol=len(stages))

    float_p, int8_p = softmax(logits["float"]), softmax(logits["int8"])
    chosen = float_p.argmax(-1)
    rows = np.arange(len(chosen))
    same = int8_p.argmax(-1) == chosen
    dots.scatter(
        float_p[rows, chosen][same], int8_p[rows, chosen][same], s=10, alpha=0.5, label="same class"
    )
    dots.scatter(
        float_p[rows, chosen][~same],
        int8_p[rows, chosen][~same],
        s=30,
        marker="x",
        color="tab:red",
        label="int8 class differs",
    )
    dots.plot([0, 1], [0, 1], color="gray", linewidth=0.8)
    dots.set_xlim(0, 1.02)
    dots.set_ylim(0, 1.02)
    dots.set_xlabel("float: probability of its class")
    dots.set_ylabel("int8 under TFLM: probability of that class")
    dots.set_title(f"int8 vs float: same class on {100 * same.mean():.1f}% of {len(same)}")
    dots.legend(fontsize="small", loc="upper left")
    return _save(fig, path)


def memory_png(path: Path, memory: dict) -> Path:
    """Flash (.tflite: constants, tensor names, quantization parameters, the rest) and RAM (the
    TFLM arena: planned activations, persistent data, the planner's extra for the smallest
    arena that runs), stacked bars in KiB."""
    flash = memory["flash_breakdown"]
    arena = memory["arena"]
    parts = {
        "flash: .tflite": [
            ("weights and tables", flash["constants"]),
            ("tensor names", flash["tensor_names"]),
            ("quantization", flash["quantization_params"]),
            ("flatbuffer rest", flash["other"]),
        ],
        "RAM: TFLM arena": [
            ("planned activations", arena["planned"]),
            ("persistent", arena["persistent"]),
            ("planner extra", arena["minimum"] - arena["recorded"]),
        ],
    }
    fig, ax = plt.subplots(figsize=(8.0, 2.8))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    color = iter(colors * 2)
    for row, pieces in enumerate(parts.values()):
        left = 0.0
        for label, size in pieces:
            ax.barh(row, size / 1024, left=left, color=next(color), label=label)
            left += size / 1024
        ax.text(left, row, f" {left:,.1f} KiB", va="center")
    ax.set_yticks(range(len(parts)), list(parts))
    ax.invert_yaxis()
    ax.set_xlabel("KiB")
    ax.set_xlim(0, 1.25 * max(sum(s for _, s in p) for p in parts.values()) / 1024)
    ax.set_title(f"int8 model memory at L={memory['seq_len']}")
    ax.legend(fontsize="small", ncol=4, loc="upper center", bbox_to_anchor=(0.5, -0.35))
    return _save(fig, path)


def latency_png(path: Path, bars: dict[str, dict[str, float]], title: str) -> Path:
    """Cortex-M4 instructions per Invoke (tflm.latency estimates), one stacked bar per entry of
    `bars` ({label: {op: instructions}}), the ops with the most instructions overall first (the
    rest as "other ops"); each bar ends with its total and ms at 64 MHz, CPI 1.0-1.5."""
    from tflm_embbert.tflm.latency import CLOCK_HZ, CPIS

    totals: dict[str, float] = {}
    for by_op in bars.values():
        for op, value in by_op.items():
            totals[op] = totals.get(op, 0.0) + value
    shown = [op for op, _ in sorted(totals.items(), key=lambda kv: -kv[1])[:8]]
    fig, ax = plt.subplots(figsize=(9.0, 1.2 + 0.5 * len(bars)))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"] + ["#bbbbbb"]
    widest = max(sum(by_op.values()) for by_op in bars.values()) / 1e6
    for row, by_op in enumerate(bars.values()):
        left = 0.0
        parts = [(op, by_op.get(op, 0.0)) for op in shown]
        parts.append(("other ops", sum(v for op, v in by_op.items() if op not in shown)))
        for k, (op, value) in enumerate(parts):
            ax.barh(row, value / 1e6, left=left, color=colors[k % len(colors)],
                    label=op if row == 0 else None)  # fmt: skip
            left += value / 1e6
        ms = " - ".join(f"{left * 1e6 * cpi / CLOCK_HZ * 1e3:,.0f}" for cpi in CPIS)
        ax.text(left + 0.01 * widest, row, f"{left:.1f} M, {ms} ms", va="center")
    ax.set_yticks(range(len(bars)), list(bars))
    ax.invert_yaxis()
    ax.set_xlim(0, 1.45 * widest)
    ax.set_xlabel("million Cortex-M4 instructions per Invoke (estimate)")
    ax.set_title(title)
    ax.legend(
        fontsize="small", ncol=5, loc="upper center", bbox_to_anchor=(0.5, -0.5 / len(bars) - 0.25)
    )
    return _save(fig, path)
