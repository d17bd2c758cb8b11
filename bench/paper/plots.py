"""PNG plots of the paper benchmark (bench/paper_benchmark.py), from its summary rows.

- accuracy_vs_memory.png: per task, the int8-under-TFLM metric of each model against its measured
  memory (flash = .tflite bytes + RAM = smallest TFLM arena), the paper's accuracy-vs-memory
  figure with measured int8 memory; a last panel averages over the tasks every plotted model has.
- int8_vs_float.png: int8 TFLM minus float Keras (pp) per task and model, +-0.5 pp marked.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

MARKERS = "os^Dvp*h"


def _models(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["model"] for r in rows))


def _tasks(rows: list[dict]) -> list[str]:
    return list(dict.fromkeys(r["task"] for r in rows))


def _kib(row: dict) -> float:
    return (row["flash_bytes"] + row["arena_bytes"]) / 1024


def _style(models: list[str]) -> dict[str, dict]:
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    return {
        m: {"color": colors[i % len(colors)], "marker": MARKERS[i % len(MARKERS)]}
        for i, m in enumerate(models)
    }


def accuracy_vs_memory(rows: list[dict], path: Path, references: dict | None = None) -> None:
    """`references`: {task: metric} of a classical model with no measured memory (the
    TF-IDF + LR row), drawn as a dashed horizontal line in its task's panel."""
    references = references or {}
    models, tasks = _models(rows), _tasks(rows)
    style = _style(models)
    by_key = {(r["task"], r["model"]): r for r in rows}
    complete = [t for t in tasks if all((t, m) in by_key for m in models)]
    panels = tasks + (["mean"] if len(complete) > 1 else [])
    cols = min(4, len(panels))
    nrows = -(-len(panels) // cols)
    fig, axes = plt.subplots(nrows, cols, figsize=(4.2 * cols, 3.4 * nrows), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for model in models:
            if panel == "mean":
                chosen = [by_key[(t, model)] for t in complete]
                x = float(np.mean([_kib(r) for r in chosen]))
                y = float(np.mean([r["int8_tflm"]["mean"] for r in chosen]))
                err = None
            elif (panel, model) in by_key:
                row = by_key[(panel, model)]
                x, y, err = _kib(row), row["int8_tflm"]["mean"], row["int8_tflm"]["std"]
            else:
                continue
            ax.errorbar(x, y, yerr=err, linestyle="none", markersize=8, capsize=3,
                        label=model, **style[model])  # fmt: skip
        if panel in references or (panel == "mean" and all(t in references for t in complete)):
            value = references.get(panel)
            if value is None:
                value = float(np.mean([references[t] for t in complete]))
            ax.axhline(value, linestyle="--", color="gray", label="tfidf_lr (classical, host)")
        if panel == "mean":
            ax.set_title(f"mean over {len(complete)} task(s) with every model", fontsize=10)
        else:
            metric = next(r["metric"] for r in rows if r["task"] == panel)
            ax.set_title(f"{panel} ({metric})", fontsize=10)
        ax.set_xlabel("int8 flash + TFLM arena (KiB)")
        ax.set_ylabel("int8 TFLM metric x100")
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=len(labels), frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 0.94 if nrows > 1 else 0.88))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def int8_vs_float(rows: list[dict], path: Path) -> None:
    models, tasks = _models(rows), _tasks(rows)
    style = _style(models)
    by_key = {(r["task"], r["model"]): r for r in rows}
    width = 0.8 / len(models)
    fig, ax = plt.subplots(figsize=(max(6.0, 1.3 * len(tasks) * max(1, len(models)) / 3), 4.2))
    for i, model in enumerate(models):
        xs, gaps = [], []
        for j, task in enumerate(tasks):
            if (task, model) in by_key:
                xs.append(j + (i - (len(models) - 1) / 2) * width)
                gaps.append(by_key[(task, model)]["int8_minus_float_pp"])
        ax.bar(xs, gaps, width=width, label=model, color=style[model]["color"])
    for level in (-0.5, 0.5):
        ax.axhline(level, color="grey", linestyle="--", linewidth=0.8)
    ax.axhline(0, color="black", linewidth=0.8)
    ax.set_xticks(range(len(tasks)), tasks)
    ax.set_ylabel("int8 TFLM - float Keras (pp, mean over seeds)")
    ax.set_title("int8 under TFLM vs float, per task (dashed: +-0.5 pp)", fontsize=10)
    ax.legend(fontsize=8, ncol=min(len(models), 3))
    ax.grid(axis="y", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_plots(rows: list[dict], out: Path, references: dict | None = None) -> list[Path]:
    """Both plots into `out` (`references`: see accuracy_vs_memory); returns their paths."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "accuracy_vs_memory.png", out / "int8_vs_float.png"]
    accuracy_vs_memory(rows, written[0], references)
    int8_vs_float(rows, written[1])
    return written
