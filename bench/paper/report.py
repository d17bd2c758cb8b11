"""The paper benchmark's report (bench/paper_benchmark.py): results.md, results.json and the
plots, rewritten from every cell under <out>/cells."""

from __future__ import annotations

from pathlib import Path

from bench.common import machine, markdown_table, write_json
from bench.paper import float_only
from bench.paper.plan import METRIC_LABEL, PAPER_EMBBERT, STAGES, read_invocations
from bench.paper.tables import (
    classical_cell_row,
    classical_section,
    classical_table_row,
    code_text,
    embbert_per_task,
    epochs_text,
    graph_text,
    group_cells,
    invocation_line,
    is_classical,
    kib,
    load_cells,
    mean_std,
    recipe_text,
    row_order,
    score,
    seeds_text,
    summarize,
    summarize_classical,
    table_order,
    task_label,
    uniform,
    versus,
)


def write_report(out: Path, planned: int | None = None) -> str:
    """results.json, results.md and the PNG plots from every cell under <out>/cells."""
    from bench.paper.plots import write_plots

    every_cell, failed = load_cells(out)
    cells = [c for c in every_cell if not is_classical(c) and not float_only.is_float_only(c)]
    classical = [c for c in every_cell if is_classical(c)]
    float_cells = [c for c in every_cell if float_only.is_float_only(c)]
    rows = summarize(cells)
    classical_rows = summarize_classical(classical)
    float_rows = float_only.summarize(float_cells, group_cells(float_cells), score)
    invocations = read_invocations(out)
    compute_s = sum(c["wall_seconds"] for c in every_cell)
    elapsed_s = sum(i["elapsed_seconds"] for i in invocations)
    if planned is None and invocations:
        # The largest plan any invocation had (a run of a subset of tasks or models plans less),
        # plus the largest of the runs of the classical reference alone (`--models tfidf_lr`).
        alone = [i["planned"] for i in invocations if i["argv"][-2:] == ["--models", "tfidf_lr"]]
        others = [i["planned"] for i in invocations if i["argv"][-2:] != ["--models", "tfidf_lr"]]
        planned = max(others, default=0) + max(alone, default=0)
    pct = uniform(cells, lambda c: f"{c['seq_len_rule']['percentile']:g}")
    cap = uniform(cells, lambda c: c["seq_len_rule"]["cap"])
    epochs = epochs_text(cells + float_cells)
    qat_epochs = uniform(cells, lambda c: c["settings"]["qat_epochs"])
    quick = any(c.get("quick") for c in cells)

    header = [
        "task (metric, split)",
        "model",
        "init",
        "seeds",
        "L",
        "float Keras",
        "QAT Keras",
        "int8 TFLM",
        "int8 - float pp",
        "int8 - QAT pp",
        "paper EmbBERT float / 8-bit",
        ".tflite B",
        "arena B",
        "flash + arena KiB",
        "MMACs",
        "host TFLM ms",
    ]
    table = []
    for row in sorted(rows + classical_rows + float_rows, key=row_order):
        if is_classical(row):
            table.append(classical_table_row(row, len(header)))
            continue
        if float_only.is_float_only(row):
            label = task_label(row)
            table.append(float_only.main_table_row(row, len(header), label, mean_std))
            continue
        paper = PAPER_EMBBERT.get(row["task"])
        paper_text = "-"
        if paper and row["model"] == "embbert":
            paper_text = f"{paper[0]} / {paper[1]}" + (f" ({paper[2]})" if paper[2] else "")
        seeds = len(row["seeds"])
        table.append(
            [
                f"{row['task']} ({METRIC_LABEL[row['metric']]}, {row['test_split']})",
                f"`{row['model']}`",
                "backbone" if row["init"].startswith("shipped") else "scratch",
                f"{seeds}" + (" (mean ± std)" if seeds > 1 else ""),
                "/".join(map(str, row["seq_len"])),
                *[mean_std(row[stage]["values"]) for stage, _ in STAGES],
                f"{row['int8_minus_float_pp']:+.2f}",
                f"{row['int8_minus_qat_pp']:+.2f}",
                paper_text,
                f"{row['flash_bytes']:,}",
                f"{row['arena_bytes']:,}",
                kib(row),
                f"{row['macs'] / 1e6:.2f}",
                f"{row['invoke_ms']:.1f}",
            ]
        )
    losses = [r for r in rows if min(r["int8_minus_float_pp"], r["int8_minus_qat_pp"]) < -0.5]
    loss_lines = [
        f"- {r['task']} / `{r['model']}`: {r['int8_minus_float_pp']:+.2f} pp vs float, "
        f"{r['int8_minus_qat_pp']:+.2f} pp vs QAT "
        f"(float {r['float']['mean']:.2f}, QAT {r['qat']['mean']:.2f}, "
        f"int8 {r['int8_tflm']['mean']:.2f})"
        for r in losses
    ] or ["- none"]
    versus_lines = versus(rows, classical_rows)
    per_task_header, per_task = embbert_per_task(rows, classical_rows)
    classical_header, classical_table = classical_section(rows, classical_rows)
    float_header, float_table = float_only.section(float_rows, rows, task_label, mean_std)
    every_header = [
        "task",
        "model",
        "seed",
        "L",
        "float",
        "QAT",
        "int8 TFLM",
        "best/run float epochs",
        "int8 = float class %",
        "int8 graph",
        ".tflite B",
        "arena B",
        "MACs",
        "host TFLM ms",
        "wall s",
        "code (date)",
    ]
    every = [
        classical_cell_row(c)
        if is_classical(c)
        else float_only.every_cell_row(c, len(every_header), code_text(c))
        if float_only.is_float_only(c)
        else [c["task"], f"`{c['model']}`", c["seed"], c["seq_len"]]
        + [f"{score(c, stage):.2f}" for stage, _ in STAGES]
        + [
            f"{c['float']['best_epoch']}/{c['float']['epochs_run']}",
            f"{100 * c['int8_tflm']['agreement']['float']:.1f}"
            if c["int8_tflm"]["agreement"]
            else "-",
            graph_text(c),
            f"{c['flash_bytes']:,}",
            f"{c['arena_bytes']:,}",
            f"{c['macs']['total']:,}",
            f"{c['invoke_ms']:.1f}",
            f"{c['wall_seconds']:.0f}",
            code_text(c),
        ]
        for c in sorted(every_cell, key=table_order)
    ]
    status = f"{len(every_cell)} cells finished" + (f" of {planned} planned" if planned else "")
    if failed:
        reasons = "; ".join(f"{f['cell']} ({f['error']})" for f in failed)
        status += f"; {len(failed)} failed: {reasons}"
    command = "python bench/paper_benchmark.py" + (" --quick" if quick else "")
    quick_text = ""
    if quick:
        quick_text = (
            "**Quick mode** (`--quick`): a smoke test of the whole benchmark, not results: "
            f"tasks {', '.join(dict.fromkeys(r['task'] for r in rows))}, one seed, at most "
            f"{epochs} float and {qat_epochs} QAT epochs, so every model is under-trained "
            "(the from-scratch baselines most).\n\n"
        )
    text = (
        f"# Paper benchmark{' (quick mode)' if quick else ''}: float, QAT and int8 under TFLM\n\n"
        f"Command: `{command}` (resumable; {status}). Every int8 figure is the full-integer "
        "model run example by example under the `tflite_micro` runtime on the whole test split "
        "(GLUE: dev). Metric x100: accuracy, Matthews correlation (CoLA), positive-class F1 "
        f"(MRPC), Spearman (STS-B). Fine-tuning: {recipe_text(cells + float_cells)}, up to "
        f"{epochs} float epochs, early stop after 3 epochs without gain, "
        f"best epoch on a seeded 10% validation slice of train; QAT up to {qat_epochs} epochs "
        "(lr 2e-5) from the float model, best validation epoch; test scored once.\n\n"
        f"- L per task (and tokenizer): the {pct}th percentile of the token lengths of the task's "
        f"training split, rounded up to a multiple of 16, capped at {cap}. `bert_2mb` uses its "
        "own 2,048-token WordPiece vocabulary (trained with the shipped tokenizer's recipe), so "
        "its L can differ. That vocabulary is committed beside the results (training it again "
        "is not bit-reproducible: the `tokenizers` trainer breaks ties in parallel); every cell "
        "records its tokenizer's sha256.\n"
        "- `embbert` is fine-tuned from the shipped pretrained backbone "
        f"({seeds_text(rows, True)}). The baselines are **trained from random initialisation** "
        "(no pretrained backbone "
        f"exists for them here; {seeds_text(rows, False)}); `embbert_scratch` is EmbBERT from "
        "random init, the equal-protocol comparison. The paper pretrained every model.\n"
        "- `tfidf_lr` is the classical reference (`bench/tfidf_baseline.py`, scikit-learn): "
        "TF-IDF of word 1-2 grams (fit on the train part; pairs: both texts, their difference, "
        "their elementwise product and cosine) + logistic regression (STS-B: Ridge regression), "
        "fit on the same train part as the neural cells, C (alpha) chosen by the task's metric "
        "on the same validation slice, test scored once. It runs in float64 on the host and has "
        "no int8 or TFLM path: its metric is in the float column, its memory is not measured, "
        "and it reads whole texts (the neural models are cut to L tokens).\n"
        "- `mamba` is the paper's MAMBA baseline (preset `mamba_2mb`: d 64, 5 Mamba blocks, "
        "expand 1, d_state 6, d_conv 4; the 2,048-token vocabulary of `bert_2mb`), trained from "
        f"random init. It is **{float_only.NOTE}**: its selective scan is not converted to int8 "
        "or run under TFLM, so only its float Keras metric is measured (the paper reports it in "
        "float too); its memory is its float32 weight bytes (section below), not a measured "
        "flash + arena.\n"
        "- AG News: the 10k-example train subset (`train_subset_alps10k.tsv`); the paper used all "
        "120k. Test: the official 7,600.\n"
        "- Paper columns: the paper's EmbBERT figures (float / 8-bit) from its code's result "
        "files, for reference only; its 8-bit is a GPU int8 scheme (bitsandbytes + LoRA), not "
        "a microcontroller runtime, and its MRPC figure is weighted F1 (ours: positive-class F1, "
        "GLUE's).\n"
        "- Memory is measured: flash = .tflite bytes, RAM = the smallest TFLM arena that "
        "allocates and invokes. MMACs: multiply-accumulates per inference in matmuls and "
        "convolutions (`tflm_embbert.graph.macs`). Host TFLM ms: median `invoke()` on this x86 "
        "host "
        "(reference kernels), not a board figure. The int8 graph is the one "
        "`tflm_embbert.tflm.int8_eval.int8_under_tflm` deploys: since the memory-lean rewrite "
        "(`tflm_embbert.graph.lean_graph`, exact) it is that rewrite with the row-chunk size whose "
        "arena is smallest (per cell: column `int8 graph` below).\n"
        "- .tflite and arena bytes are those of the code that ran the cell (column `code (date)` "
        "below; cells from before commits were recorded show only their date). The exporter got "
        "leaner while the run spanned sessions: cells run before the compact .tflite writer "
        "(commit 02b125c, 2026-12-02) carry 10-25 KB more .tflite bytes than a later export of "
        "the same model, and the earliest cells predate the per-tensor lean graph (bigger "
        "arenas). A row with several seeds shows their median.\n\n"
        + quick_text
        + markdown_table(header, table)
        + "\nint8 - float includes the QAT fine-tuning (extra epochs at a low learning rate); "
        "int8 - QAT isolates the conversion to full integer and the TFLM kernels.\n"
        + "\n## `embbert` per task (the README's table)\n\n"
        "`embbert`'s three stages beside the paper, its measured memory, the best other model "
        "under int8 TFLM (any init) and `embbert_scratch` (the same model from random init: what "
        "pretraining adds).\n\n"
        + markdown_table(per_task_header, per_task)
        + "\n## Classical reference: TF-IDF + logistic regression (`tfidf_lr`)\n\n"
        "Test metric of the classical reference beside `embbert` int8 under TFLM (mean over its "
        "seeds) and the best neural model's int8 metric; the regularisation chosen on the "
        "validation slice and the validation metric it gave.\n\n"
        + markdown_table(classical_header, classical_table)
        + f"\n## Float-only models ({float_only.NOTE})\n\n"
        "Their float Keras test metric, size (classifier with its task head) and mean float "
        "epoch time, beside `embbert`'s int8 TFLM and float Keras metrics (mean over its "
        "seeds).\n\n"
        + (markdown_table(float_header, float_table) if float_table else "- no cells yet\n")
        + "\n## Where int8 under TFLM loses more than 0.5 pp (against float or QAT Keras)\n\n"
        + "\n".join(loss_lines)
        + "\n\n## `embbert` against each other model (int8 TFLM metric, flash + arena)\n\n"
        "Per task, `embbert`'s int8 metric (mean over its seeds) minus the other model's, and "
        "its memory (.tflite + arena bytes) minus the other's. `embbert` wins at equal memory "
        'only where it scores higher **and** needs no more memory; "better, needs more memory" '
        "is a trade.\n\n" + "\n".join(versus_lines) + "\n\n## Compute\n\n"
        f"- {len(every_cell)} cells, {compute_s / 3600:.2f} h of cell wall time (sum); "
        f"{elapsed_s / 3600:.2f} h elapsed over {len(invocations)} invocation(s) "
        f"({elapsed_s / 60:.1f} min), machine: {machine()['cpu_count']} CPU cores. Times "
        "are wall times on a machine that may be shared (load average: 1, 5, 15 min).\n"
        + "".join(invocation_line(i) for i in invocations)
        + "\n## Every cell\n\n"
        + markdown_table(every_header, every)
        + "\nPlots: `accuracy_vs_memory.png` (int8-under-TFLM metric vs measured flash + arena), "
        "`int8_vs_float.png` (int8 TFLM minus float Keras, per task and model).\n"
    )
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.md").write_text(text)
    write_json(
        out / "results.json",
        {
            "machine": machine(),
            "quick": quick,
            "cells_finished": len(cells),
            "cells_planned": planned,
            "failed": [{"cell": f["cell"], "error": f["error"]} for f in failed],
            "compute": {
                "cell_wall_seconds_sum": round(compute_s, 1),
                "invocations_elapsed_seconds_sum": round(elapsed_s, 1),
                "invocations": len(invocations),
            },
            "paper_embbert_float_8bit": {k: v[:2] for k, v in PAPER_EMBBERT.items()},
            "rows": rows,
            "classical_rows": classical_rows,
            "float_only_rows": float_rows,
        },
    )
    if rows:
        write_plots(rows, out, references={r["task"]: r["test"]["mean"] for r in classical_rows})
    return text


def report_quietly(out: Path, planned: int | None = None) -> None:
    """Rewrites the report between cells; a failure is printed, not raised (the run goes on)."""
    try:
        write_report(out, planned=planned)
    except Exception as error:  # noqa: BLE001
        print(f"report not written: {type(error).__name__}: {error}", flush=True)
