"""Float-only models in the paper benchmark (bench/paper_benchmark.py): `mamba`, the paper's MAMBA
baseline, whose selective scan has no int8 / TFLM path here.

A float-only cell runs the float fine-tuning stage alone (no QAT, no int8 conversion, no TFLM run)
and records its float Keras metrics, parameter count and float32 weight bytes; the report shows it
with "float only, no TFLM path" in the int8 column and compares `embbert`'s int8 TFLM metric
against its float metric. Nothing here imports paper_benchmark (it runs as a script), so the
report's formatting helpers are passed in.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from bench.common import group_identity

NOTE = "float only, no TFLM path"


def is_float_only(cell_or_row: dict) -> bool:
    return bool(cell_or_row.get("float_only"))


def cell_fields(config, num_labels: int) -> dict:
    """What a float-only cell adds to its JSON: the classifier's size (task head included)."""
    from keras_models.models import build_classifier

    params = build_classifier(config, num_labels).count_params()
    return {"float_only": True, "params": params, "float_weight_bytes": 4 * params}


def summarize(cells: list[dict], groups: dict, score: Callable) -> list[dict]:
    """One row per (task, model) of float-only cells: the float test metric over seeds.
    `groups` is paper_benchmark.group_cells(cells), `score` its score(cell, stage)."""
    rows = []
    for (task, model), group in groups.items():
        values = [score(c, "float") for c in group]
        rows.append(
            {
                **group_identity(task, model, group),
                "float_only": True,
                "float": {
                    "values": [round(v, 4) for v in values],
                    "mean": round(float(np.mean(values)), 4),
                    "std": round(float(np.std(values, ddof=1)), 4) if len(values) > 1 else None,
                },
                "params": int(np.median([c["params"] for c in group])),
                "float_weight_bytes": int(np.median([c["float_weight_bytes"] for c in group])),
                "epoch_seconds": round(
                    float(np.mean([epoch_seconds(c) for c in group])), 1
                ),  # fmt: skip
                "wall_seconds": round(sum(c["wall_seconds"] for c in group), 1),
            }
        )
    return rows


def epoch_seconds(cell: dict) -> float:
    """Mean wall time of one float training epoch of a cell."""
    return cell["float"]["train_seconds"] / max(1, cell["float"]["epochs_run"])


def main_table_row(row: dict, width: int, task_label: str, mean_std: Callable) -> list[str]:
    """A float-only row of the main table: float Keras filled, the int8 column says why not."""
    seeds = len(row["seeds"])
    cells = [
        task_label,
        f"`{row['model']}`",
        "scratch",
        f"{seeds}" + (" (mean ± std)" if seeds > 1 else ""),
        "/".join(map(str, row["seq_len"])),
        mean_std(row["float"]["values"]),
        "-",
        NOTE,
    ]
    return cells + ["-"] * (width - len(cells))


def every_cell_row(cell: dict, width: int, code_text: str) -> list:
    """A float-only cell in the every-cell table."""
    row = [cell["task"], f"`{cell['model']}`", cell["seed"], cell["seq_len"]]
    row += [f"{100 * cell['float']['test'][cell['metric']]:.2f}", "-", NOTE]
    row += [f"{cell['float']['best_epoch']}/{cell['float']['epochs_run']}"]
    row += ["-"] * (width - len(row) - 2)
    return row + [f"{cell['wall_seconds']:.0f}", code_text]


def section(
    rows: list[dict], neural_rows: list[dict], task_label: Callable, mean_std: Callable
) -> tuple[list[str], list[list[str]]]:
    """Per (task, float-only model): its float metric, size, epoch time, and `embbert`'s int8
    TFLM metric against it (the paper's claim is that EmbBERT beats MAMBA)."""
    header = [
        "task (metric, split)",
        "model",
        "seeds",
        "L",
        "float Keras",
        "params",
        "float32 weights B",
        "s per epoch",
        "`embbert` int8 TFLM (minus it, pp)",
        "`embbert` float Keras (minus it, pp)",
    ]
    table = []
    for row in rows:
        ours = next(
            (r for r in neural_rows if r["task"] == row["task"] and r["model"] == "embbert"), None
        )
        theirs = row["float"]["mean"]
        compare = ["not run yet", "not run yet"]
        if ours:
            compare = [
                f"{ours[stage]['mean']:.2f} ({ours[stage]['mean'] - theirs:+.2f})"
                for stage in ("int8_tflm", "float")
            ]
        table.append(
            [
                task_label(row),
                f"`{row['model']}`",
                str(len(row["seeds"])),
                "/".join(map(str, row["seq_len"])),
                mean_std(row["float"]["values"]),
                f"{row['params']:,}",
                f"{row['float_weight_bytes']:,}",
                f"{row['epoch_seconds']:.0f}",
                *compare,
            ]
        )
    return header, table
