"""The paper benchmark's summaries and tables (bench/paper_benchmark.py) from its finished cells:
one row per (task, model), the per-task, classical, versus and every-cell tables."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from bench.common import group_identity
from bench.paper.plan import METRIC_LABEL, MODELS, PAPER_EMBBERT, STAGES
from tflm_embbert.data.datasets import TASKS


def load_cells(out: Path) -> tuple[list[dict], list[dict]]:
    """(finished cells, failed cells) found in <out>/cells."""
    folder = out / "cells"
    finished, failed = [], []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        data = json.loads(path.read_text())
        (failed if path.name.endswith(".error.json") else finished).append(data)
    return finished, failed


def score(cell: dict, stage: str) -> float | None:
    """The task's primary metric of one stage, x100 (percent; MCC and Spearman x100 too)."""
    test = cell.get(stage, {}).get("test")
    return None if not test else 100 * test[cell["metric"]]


def mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def table_order(cell: dict) -> tuple:
    return list(TASKS).index(cell["task"]), list(MODELS).index(cell["model"]), cell["seed"]


def row_order(row: dict) -> tuple:
    return list(TASKS).index(row["task"]), list(MODELS).index(row["model"])


def group_cells(cells: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """{(task, model): cells} in table order: tasks as in TASKS, models as in MODELS."""
    groups: dict[tuple[str, str], list[dict]] = {}
    order = sorted(cells, key=table_order)
    for cell in order:
        groups.setdefault((cell["task"], cell["model"]), []).append(cell)
    return groups


def summarize(cells: list[dict]) -> list[dict]:
    """One JSON row per (task, model): mean/std of each stage, memory, MACs, invoke time."""
    rows = []
    for (task, model), group in group_cells(cells).items():
        row = group_identity(task, model, group)
        for stage, _ in STAGES:
            values = [v for v in (score(c, stage) for c in group) if v is not None]
            row[stage] = {
                "values": [round(v, 4) for v in values],
                "mean": round(float(np.mean(values)), 4) if values else None,
                "std": round(float(np.std(values, ddof=1)), 4) if len(values) > 1 else None,
            }
        gaps = [score(c, "int8_tflm") - score(c, "float") for c in group]
        row["int8_minus_float_pp"] = round(float(np.mean(gaps)), 4)
        gaps = [score(c, "int8_tflm") - score(c, "qat") for c in group]
        row["int8_minus_qat_pp"] = round(float(np.mean(gaps)), 4)
        row["flash_bytes"] = int(np.median([c["flash_bytes"] for c in group]))
        row["arena_bytes"] = int(np.median([c["arena_bytes"] for c in group]))
        row["macs"] = int(np.median([c["macs"]["total"] for c in group]))
        row["invoke_ms"] = round(float(np.median([c["invoke_ms"] for c in group])), 3)
        row["wall_seconds"] = round(sum(c["wall_seconds"] for c in group), 1)
        rows.append(row)
    return rows


def uniform(cells: list[dict], get) -> str:
    """The distinct values of `get(cell)` over the cells, joined ("-" when there are none)."""
    return ", ".join(sorted({str(get(c)) for c in cells})) or "-"


def seeds_text(rows: list[dict], pretrained: bool) -> str:
    """ "3 seeds: mean ± sample std" / "1 seed" for the rows of pretrained (or other) models."""
    counts = sorted({len(r["seeds"]) for r in rows if MODELS[r["model"]].pretrained == pretrained})
    if not counts:
        return "no cells yet"
    text = "/".join(map(str, counts)) + (" seed" if counts == [1] else " seeds")
    return text + (": mean ± sample std" if max(counts) > 1 else "")


def recipe_text(cells: list[dict]) -> str:
    """The float recipe the cells ran (from their own records; cells from before the recipe
    had a schedule ran a constant lr), with a cell count when they differ."""
    counts: dict[str, int] = {}
    for c in cells:
        f = c["float"]
        schedule = f.get("schedule", "constant")
        text = f"lr {f.get('learning_rate', 1e-4):g} {schedule}"
        if schedule != "constant":
            text += " decay after a linear warm-up"
        text += f", batch {f.get('batch_size', 32)}, AdamW wd {f.get('weight_decay', 0.05):g}"
        counts[text] = counts.get(text, 0) + 1
    if len(counts) <= 1:
        return next(iter(counts), "-")
    return "; ".join(f"{t} ({n} cells)" for t, n in counts.items())


def epochs_text(cells: list[dict]) -> str:
    """Max float epochs: the common value, then the tasks that differ ("10 (imdb 5)")."""
    per_task = {c["task"]: c["settings"]["epochs"] for c in cells}
    if not per_task:
        return "-"
    values = list(per_task.values())
    common = max(set(values), key=values.count)
    others = [f"{t} {e}" for t, e in sorted(per_task.items()) if e != common]
    return f"{common}" + (f" ({', '.join(others)})" if others else "")


def is_classical(cell_or_row: dict) -> bool:
    return cell_or_row.get("kind") == "classical" or cell_or_row["model"] == "tfidf_lr"


def summarize_classical(cells: list[dict]) -> list[dict]:
    """One JSON row per (task, classical model): the test metric (mean over seeds), the chosen
    regularisation and the validation metric."""
    rows = []
    for (task, model), group in group_cells(cells).items():
        values = [score(c, "float") for c in group]
        rows.append(
            {
                "task": task,
                "model": model,
                "kind": "classical",
                "metric": group[0]["metric"],
                "test_split": group[0]["test_split"],
                "init": group[0]["init"],
                "seeds": [c["seed"] for c in group],
                "test": {
                    "values": [round(v, 4) for v in values],
                    "mean": round(float(np.mean(values)), 4),
                    "std": round(float(np.std(values, ddof=1)), 4) if len(values) > 1 else None,
                },
                "validation": round(
                    float(np.mean([100 * c["float"]["validation"][c["metric"]] for c in group])),
                    4,
                ),
                "chosen": [
                    f"{c['classical']['parameter']} {c['classical']['chosen']:g}" for c in group
                ],  # fmt: skip
                "features": [c["classical"]["features"] for c in group],
                "wall_seconds": round(sum(c["wall_seconds"] for c in group), 1),
            }
        )
    return rows


def task_label(row: dict) -> str:
    return f"{row['task']} ({METRIC_LABEL[row['metric']]}, {row['test_split']})"


def kib(row: dict) -> str:
    """A row's measured flash + arena in KiB."""
    return f"{(row['flash_bytes'] + row['arena_bytes']) / 1024:,.1f}"


def embbert_per_task(
    rows: list[dict], classical_rows: list[dict] = ()
) -> tuple[list[str], list[list[str]]]:
    """The README's summary: one row per task with an `embbert` row."""
    header = [
        "task (metric, split)",
        "`embbert` seeds",
        "float",
        "QAT",
        "int8 TFLM",
        "paper float / 8-bit",
        "flash + arena KiB",
        "best other int8 TFLM (model, flash + arena KiB)",
        "`embbert_scratch` int8 TFLM (`embbert` minus it, pp)",
        "`tfidf_lr` (`embbert` int8 minus it, pp)",
    ]
    classical = {r["task"]: r for r in classical_rows}
    table = []
    for ours in (r for r in rows if r["model"] == "embbert"):
        task = ours["task"]
        others = [r for r in rows if r["task"] == task and r["model"] != "embbert"]
        best = max(others, key=lambda r: r["int8_tflm"]["mean"], default=None)
        scratch = next((r for r in others if r["model"] == "embbert_scratch"), None)
        paper = PAPER_EMBBERT.get(task)
        best_text, scratch_text = "-", "not run yet"
        if scratch:
            gain = ours["int8_tflm"]["mean"] - scratch["int8_tflm"]["mean"]
            scratch_text = f"{mean_std(scratch['int8_tflm']['values'])} ({gain:+.2f})"
        if best:
            best_text = f"{best['int8_tflm']['mean']:.2f} (`{best['model']}`, {kib(best)})"
        table.append(
            [
                f"{task} ({METRIC_LABEL[ours['metric']]}, {ours['test_split']})",
                str(len(ours["seeds"])),
                *[mean_std(ours[stage]["values"]) for stage, _ in STAGES],
                f"{paper[0]} / {paper[1]}" if paper else "-",
                kib(ours),
                best_text,
                scratch_text,
                _versus_classical(ours, classical.get(task)),
            ]
        )
    return header, table


def _versus_classical(ours: dict, reference: dict | None) -> str:
    if reference is None:
        return "not run yet"
    gain = ours["int8_tflm"]["mean"] - reference["test"]["mean"]
    return f"{mean_std(reference['test']['values'])} ({gain:+.2f})"


def classical_table_row(row: dict, width: int) -> list[str]:
    """A `tfidf_lr` row of the main table: its metric in the float column, "-" elsewhere."""
    seeds = len(row["seeds"])
    cells = [
        f"{row['task']} ({METRIC_LABEL[row['metric']]}, {row['test_split']})",
        f"`{row['model']}`",
        "classical",
        f"{seeds}" + (" (mean ± std)" if seeds > 1 else ""),
        "whole text",
        mean_std(row["test"]["values"]) + " (host float64)",
    ]
    return cells + ["-"] * (width - len(cells))


def classical_cell_row(cell: dict) -> list:
    """A `tfidf_lr` cell in the every-cell table."""
    info = cell["classical"]
    row = [cell["task"], f"`{cell['model']}`", cell["seed"], "whole text"]
    row += [f"{score(cell, 'float'):.2f}", "-", "-"]
    row += [f"{info['parameter']} {info['chosen']:g}", "-", "-", "-", "-", "-", "-"]
    return row + [f"{cell['wall_seconds']:.0f}", code_text(cell)]


def classical_section(
    rows: list[dict], classical_rows: list[dict]
) -> tuple[list[str], list[list[str]]]:
    """Per task: the classical reference, `embbert` int8 and the best neural int8 beside it."""
    header = [
        "task (metric, split)",
        "`tfidf_lr` test",
        "validation",
        "chosen",
        "features",
        "`embbert` int8 TFLM (minus `tfidf_lr`, pp)",
        "best neural int8 TFLM (model; minus `tfidf_lr`, pp)",
    ]
    table = []
    for ref in classical_rows:
        neural = [r for r in rows if r["task"] == ref["task"]]
        ours = next((r for r in neural if r["model"] == "embbert"), None)
        best = max(neural, key=lambda r: r["int8_tflm"]["mean"], default=None)
        mean = ref["test"]["mean"]
        table.append(
            [
                f"{ref['task']} ({METRIC_LABEL[ref['metric']]}, {ref['test_split']})",
                mean_std(ref["test"]["values"]),
                f"{ref['validation']:.2f}",
                ", ".join(dict.fromkeys(ref["chosen"])),
                ", ".join(f"{n:,}" for n in dict.fromkeys(ref["features"])),
                f"{ours['int8_tflm']['mean']:.2f} ({ours['int8_tflm']['mean'] - mean:+.2f})"
                if ours
                else "-",
                f"{best['int8_tflm']['mean']:.2f} (`{best['model']}`; "
                f"{best['int8_tflm']['mean'] - mean:+.2f})"
                if best
                else "-",
            ]
        )
    return header, table


def versus(rows: list[dict], classical_rows: list[dict] = ()) -> list[str]:
    """One line per (task, other model): `embbert`'s int8 metric and memory against it (against
    the classical reference: the metric only, it has no measured memory)."""
    lines = []
    for ours in (r for r in rows if r["model"] == "embbert"):
        for ref in (r for r in classical_rows if r["task"] == ours["task"]):
            gain = ours["int8_tflm"]["mean"] - ref["test"]["mean"]
            verdict = (
                "embbert better"
                if gain > 0.005
                else ("equal metric" if gain >= -0.005 else "**classical reference better**")
            )
            lines.append(
                f"- {ours['task']} vs `{ref['model']}` (classical, host float64, memory not "
                f"measured): {gain:+.2f} pp ({ours['int8_tflm']['mean']:.2f} vs "
                f"{ref['test']['mean']:.2f}): {verdict}"
            )
        memory = ours["flash_bytes"] + ours["arena_bytes"]
        for other in (r for r in rows if r["task"] == ours["task"] and r["model"] != "embbert"):
            gain = ours["int8_tflm"]["mean"] - other["int8_tflm"]["mean"]
            extra = memory - other["flash_bytes"] - other["arena_bytes"]
            if abs(gain) < 0.005:
                smaller = "embbert smaller" if extra < 0 else "embbert not smaller"
                verdict = f"equal metric, {smaller}"
            elif gain > 0:
                verdict = (
                    "**embbert better with no more memory**"
                    if extra <= 0
                    else "embbert better, needs more memory"
                )
            else:
                verdict = (
                    "**other better with no more memory**"
                    if extra >= 0
                    else "other better, needs more memory"
                )
            lines.append(
                f"- {ours['task']} vs `{other['model']}`: {gain:+.2f} pp, {extra / 1024:+,.1f} KiB "
                f"({ours['int8_tflm']['mean']:.2f} vs {other['int8_tflm']['mean']:.2f}): "
                f"{verdict}"
            )
    return lines or ["- no task has both `embbert` and another model yet"]


def code_text(cell: dict) -> str:
    """The commit that ran a cell, with its date; the date alone for cells run before the
    commit was recorded."""
    run_on = cell.get("machine", {})
    date = run_on.get("date", "?")
    return f"{run_on['code']} ({date})" if "code" in run_on else f"- ({date})"


def graph_text(cell: dict) -> str:
    """Which int8 graph a cell ran: the converter's, or the lean rewrite and its row chunk."""
    lean = cell["int8_tflm"].get("lean")
    if not lean:
        return "converter"
    return f"lean, chunk {lean['chunk_rows'] or 'none'}"


def invocation_line(entry: dict) -> str:
    load = entry.get("load_average_at_end")
    return (
        f"- run started {entry['started']}: {entry['elapsed_seconds'] / 60:.1f} min"
        + (
            " (still running or stopped; up to its last finished cell)"
            if not entry.get("finished", True)
            else ""
        )
        + ", "
        f"{entry['computed']} cells computed, {entry['cached']} cached, {entry['failed']} failed"
        + (f"; load average at its end {' / '.join(map(str, load))}" if load else "")
        + f" (`{' '.join(entry['argv']) or 'no flags'}`)\n"
    )
