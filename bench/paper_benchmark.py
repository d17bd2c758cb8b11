"""The paper's benchmark, measured: every task x model, float Keras / QAT Keras / int8 under TFLM.

    python bench/paper_benchmark.py --quick          # snips + emotion, 5 models, 1 seed, 3+1 epochs
    python bench/paper_benchmark.py                  # everything (many hours; resumable)
    python bench/paper_benchmark.py --report_only    # rebuild results.md/json + plots from cells

One cell = (task, model, seed), run by `tflm_embbert.pipeline.run_pipeline`: float fine-tuning (best
epoch on a seeded 10% validation slice of train, the default recipe of `FitSettings`
(training/settings.py) up to --epochs, early stop after 3 epochs without gain; cells run before
2026-12-05 used the reference recipe lr 1e-4 constant, batch 32, AdamW wd 0.05; the report reads
each cell's own recipe) -> QAT fine-tuning (up to --qat_epochs at lr 2e-5, best validation epoch) ->
full-integer .tflite -> the whole test split (GLUE: dev) run example by example under the
`tflite_micro` runtime -> arena bisected to the smallest that runs. On top of the pipeline a cell
records the MACs per inference (`tflm_embbert.graph.macs.count_macs`) and the host TFLM invoke time
(`tflm_check.invoke_ms`).

Models: `embbert` is fine-tuned from the shipped pretrained backbone (3 seeds). The baselines
(`bert_2mb`, `nanobert`, `embedder`, `embedder_conv`) have no pretrained backbone here (pretraining
one took 1.2 h on this machine), so they are trained from random initialisation, 1 seed;
`embbert_scratch` (EmbBERT from random initialisation, 1 seed) gives the equal-protocol comparison.
`mamba` (the paper's MAMBA baseline, preset `mamba_2mb`, random init, 1 seed) is float only: its
cells run the float stage alone, with no QAT, int8 or TFLM stage (bench/paper/float_only.py).
`bert_2mb` and `mamba` have a 2,048-token vocabulary (their presets): one WordPiece tokenizer,
trained with the shipped tokenizer's recipe (same corpus and task train texts) into
--tokenizers_dir if missing.

Sequence length per task (and tokenizer): the --seq_len_percentile of the token lengths of the
task's whole official train split ([CLS]/[SEP] included), rounded up to a multiple of 16 and capped
at --max_seq_len (`tflm_embbert.training.finetune.auto_seq_len`).

Resumable: a finished cell is <out>/cells/<task>__<model>__s<seed>.json and is never recomputed;
a cell interrupted mid-way (a session ending inside a multi-hour bert_2mb cell) continues from its
last finished float / QAT epoch (`run_pipeline(resume=True)`; its JSON then gives
`resumed_from_epoch`, and its wall time counts only the run that finished it); a failed cell
writes <id>.error.json (one line) and the run goes on (it is retried next time).
Cells run cheap tasks first, seed 0 of every model before the extra seeds, so a partial run
already fills the table. Every invocation is appended to <out>/invocations.json (its wall time,
rewritten every minute); results.md / results.json / *.png are rewritten from all cells at the end
of each invocation.
"""

from __future__ import annotations

import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench.paper.cell import Settings, compute_cell  # noqa: E402
from bench.paper.plan import (  # noqa: E402
    DEFAULT_TASKS,
    MODELS,
    TASKS,
    Cell,
    InvocationLog,
    plan_cells,
    recipe_is_stale,
    run_cells,
)
from bench.paper.report import report_quietly, write_report  # noqa: E402
from tflm_embbert.common import paths  # noqa: E402
from tflm_embbert.training.settings import FitSettings  # noqa: E402

QUICK = {
    "tasks": ["snips", "emotion"],
    "models": ["embbert", "bert_2mb", "nanobert", "embedder", "embedder_conv"],
    "embbert_seeds": ["0"],
    "baseline_seeds": ["0"],
    "epochs": 3,
    "qat_epochs": 1,
    "out": "bench/results/paper_benchmark_quick",
    "models_out": "runs/paper_bench_quick",
}

FLAGS = flags.FLAGS
flags.DEFINE_bool(
    "quick",
    False,
    "Quick mode: "
    + ", ".join(f"{k}={v}" for k, v in QUICK.items())
    + " (flags given on the command line win).",
)
flags.DEFINE_list("tasks", DEFAULT_TASKS, f"Tasks, from: {', '.join(TASKS)}.")
flags.DEFINE_list("models", list(MODELS), f"Models, from: {', '.join(MODELS)}.")
flags.DEFINE_list("embbert_seeds", ["0", "1", "2"], "Seeds of `embbert` (pretrained backbone).")
flags.DEFINE_list("baseline_seeds", ["0"], "Seeds of every other model.")
flags.DEFINE_integer("epochs", 10, "Max float epochs (reference: up to 10).")
flags.DEFINE_list("epoch_caps", ["imdb:5"], "task:max_epochs caps on --epochs for big tasks.")
flags.DEFINE_integer("qat_epochs", 2, "Max QAT epochs.")
flags.DEFINE_float("qat_learning_rate", 2e-5, "QAT learning rate.")
flags.DEFINE_float("seq_len_percentile", 99.0, "Percentile of train token lengths giving L.")
flags.DEFINE_integer("max_seq_len", 256, "Cap on L.")
flags.DEFINE_integer("invoke_examples", 20, "Test examples timed for the host TFLM invoke time.")
flags.DEFINE_string("out", "bench/results/paper_benchmark", "Result folder (cells, tables, plots).")
flags.DEFINE_string("models_out", "runs/paper_bench", "Where each cell's models are written.")
flags.DEFINE_string(
    "tokenizers_dir",
    "bench/results/paper_benchmark/tokenizers",
    "Folder of the tokenizers not shipped (wordpiece<V>/), trained if missing.",
)
flags.DEFINE_string("backbone", str(paths.SHIPPED_BACKBONE_DIR), "Pretrained embbert backbone.")
flags.DEFINE_string("data_dir", None, "Task data (default ../shared/data).")
flags.DEFINE_bool("report_only", False, "Only rebuild results.md/json and the plots from cells.")
flags.DEFINE_bool(
    "refresh_recipe",
    False,
    "Recompute planned cells whose float recipe is not today's default (FitSettings); their "
    "models folder is cleared first. Combine with --models to choose which.",
)
flags.DEFINE_integer("max_cells", 0, "Stop after computing this many cells (0: no limit).")
flags.DEFINE_float("max_hours", 0.0, "Start no new cell after this many hours (0: no limit).")


def _known(values: list[str], known, what: str) -> bool:
    unknown = [v for v in values if v not in known]
    if unknown:
        raise flags.ValidationError(
            f"unknown {what} {', '.join(map(repr, unknown))}; known: {', '.join(known)}"
        )
    return True


def _seeds(values: list[str]) -> bool:
    if not values or not all(v.isdigit() for v in values):
        raise flags.ValidationError(f"expected non-negative integers, got {values}")
    return True


def parse_epoch_caps(values: list[str]) -> dict[str, int]:
    """["imdb:5"] -> {"imdb": 5}; one-line ValueError on a bad entry."""
    caps = {}
    for value in values:
        task, _, epochs = value.partition(":")
        if task not in TASKS or not epochs.isdigit() or int(epochs) < 1:
            raise ValueError(
                f"expected task:epochs with a known task and epochs >= 1, got {value!r}"
            )
        caps[task] = int(epochs)
    return caps


def _caps(values: list[str]) -> bool:
    try:
        parse_epoch_caps(values)
    except ValueError as error:
        raise flags.ValidationError(str(error)) from None
    return True


flags.register_validator("tasks", lambda v: _known(v, TASKS, "task"))
flags.register_validator("models", lambda v: _known(v, MODELS, "model"))
flags.register_validator("embbert_seeds", _seeds)
flags.register_validator("baseline_seeds", _seeds)
flags.register_validator("epoch_caps", _caps)
flags.register_validator("seq_len_percentile", lambda v: 0 < v <= 100, "must be in (0, 100]")
flags.register_validator("max_seq_len", lambda v: 16 <= v <= 256, "must be in [16, 256]")


def resolved(name: str):
    """A flag's value, with --quick's default when the flag was not given."""
    if FLAGS.quick and not FLAGS[name].present and name in QUICK:
        return QUICK[name]
    return FLAGS[name].value


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {' '.join(argv[1:])}")
    out = Path(resolved("out"))
    if FLAGS.report_only:
        print(write_report(out))
        return
    data_dir = Path(FLAGS.data_dir) if FLAGS.data_dir else paths.shared_data_dir()
    tasks = []
    for task in resolved("tasks"):
        if (data_dir / TASKS[task].folder).is_dir():
            tasks.append(task)
        elif FLAGS["tasks"].present:
            raise app.UsageError(f"--tasks: no data for {task} in {data_dir / TASKS[task].folder}")
        else:
            print(f"skipping {task}: no folder {data_dir / TASKS[task].folder}")
    models = list(dict.fromkeys(resolved("models")))
    plan = plan_cells(
        tasks,
        models,
        [int(s) for s in resolved("embbert_seeds")],
        [int(s) for s in resolved("baseline_seeds")],
    )
    settings = Settings(
        data_dir=data_dir,
        backbone=Path(FLAGS.backbone),
        tokenizers_dir=Path(FLAGS.tokenizers_dir),
        models_out=Path(resolved("models_out")),
        epochs=resolved("epochs"),
        epoch_caps=parse_epoch_caps(FLAGS.epoch_caps),
        qat_epochs=resolved("qat_epochs"),
        qat_learning_rate=FLAGS.qat_learning_rate,
        seq_len_percentile=FLAGS.seq_len_percentile,
        max_seq_len=FLAGS.max_seq_len,
        invoke_examples=FLAGS.invoke_examples,
        quick=FLAGS.quick,
    )
    print(
        f"paper benchmark: {len(plan)} cells planned ({len(tasks)} tasks x {len(models)} models), "
        f"results in {out}, models in {settings.models_out}",
        flush=True,
    )
    started = time.time()
    log = InvocationLog(out, len(plan), sys.argv[1:])

    def after_cell(done: dict) -> None:
        log.update(done, finished=False)
        report_quietly(out)

    fit = FitSettings()

    def stale(cell: dict) -> bool:
        return FLAGS.refresh_recipe and recipe_is_stale(cell, fit)

    def compute(cell: Cell) -> dict:
        if FLAGS.refresh_recipe:  # never resume a fit of the old recipe
            shutil.rmtree(settings.models_out / cell.id, ignore_errors=True)
        return compute_cell(cell, settings)

    done = run_cells(
        plan,
        out,
        compute,
        max_cells=FLAGS.max_cells,
        max_seconds=3600 * FLAGS.max_hours,
        progress=lambda line: print(line, flush=True),
        after_cell=after_cell,
        stale=stale,
    )
    log.update(done, finished=True)
    print(write_report(out))
    total = time.time() - started
    print(f"this invocation: {total / 60:.1f} min; computed {len(done['computed'])} cells")
    if done["failed"]:
        sys.exit(f"{len(done['failed'])} cells failed: {', '.join(done['failed'])}")


if __name__ == "__main__":
    app.run(main)
