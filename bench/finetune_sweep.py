"""Fine-tuning recipe sweep on the VALIDATION slices of paper tasks (float, shipped backbone).

    nice -n 5 python bench/finetune_sweep.py                     # phases A, B, C in turn
    python bench/finetune_sweep.py --report_only                  # table from the run files

No choice here ever sees a test split: each task's seeded 10% validation slice of train (the one
every neural cell uses) is split once more, with a fixed seed, into two halves:
- `select` picks the best epoch and drives early stopping (what the recipe does in `train`);
- `score` is never used by the fit: the config is scored on it at the epoch `select` chose, so a
  larger epoch budget gets no free draws from picking the maximum over more epochs.
The per-epoch curve on both halves is kept in each run's JSON.

Design (coarse to fine; every run is one JSON in <out>/runs/, skipped when present, so the sweep
resumes after an interruption, one run at a time):
- A (learning rate): lr in --lrs, the current recipe otherwise (constant lr, batch 32, dropout
  0.1, wd 0.05, up to 10 epochs, patience 3).
- B (schedule, epochs) at A's best lr (mean `score` over the tasks): warm-up (--warmup_fraction
  of the steps) + linear or cosine decay to 0 over --decay_epochs (patience 3); optionally
  constant lr with a larger epoch budget (--long_epochs, patience 4). Whether the epoch budget is
  enough is read from every run's curve (`best_is_last`).
- C (dropout, batch, weight decay) at the best of A + B (or, in a folder with only an R run, at
  the shipped recipe): one factor changed at a time (--phase_c_runs of them).
- D (patience) at the best of A + B: early stopping after --phase_d_patience epochs instead of 3.
- E (pooling) at the best of A + B: the classifier reads RMS pooling over the sequence instead of
  the [CLS] row (the backbone's NSP head was trained on [CLS]).
- R: the recipe `train` ships (FitSettings defaults) alone; with --backbone and its own --out it
  probes another backbone (bench/tapt_probe.py, pretraining probes).
--train_limit caps a task's train part (seeded subset; validation unchanged) to fit the CPU.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from bench.common import machine, markdown_table, write_json  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("tasks", ["snips", "emotion", "sst2"], "Tasks (validation slices only).")
flags.DEFINE_list(
    "train_limit",
    ["snips:6000", "emotion:6000", "sst2:6000"],
    "task:N caps the train part (seeded subset; part of the run's file name).",
)
flags.DEFINE_list("lrs", ["5e-4", "1e-3", "3e-4", "1e-4"], "Phase A learning rates.")
flags.DEFINE_list("phases", ["A", "B", "C"], "Phases to run, in order.")
flags.DEFINE_float("warmup_fraction", 0.06, "Phase B: warm-up share of the planned steps.")
flags.DEFINE_integer("decay_epochs", 10, "Phase B: epochs the decay schedules plan for.")
flags.DEFINE_integer(
    "long_epochs", 0, "Phase B: epoch budget of a constant-lr long run (0: none; phase A's curves)."
)
flags.DEFINE_integer("phase_c_runs", 2, "Phase C: how many of dropout 0, batch 16, wd 0.01.")
flags.DEFINE_integer("phase_d_patience", 5, "Phase D: early-stopping patience tried.")
flags.DEFINE_list("distill_alphas", ["0.5"], "Phase K: weights of the TF-IDF teacher's targets.")
flags.DEFINE_bool("teacher_chars", False, "Phase K: the teacher adds character 2-5 grams.")
flags.DEFINE_string("data_dir", None, "Task data (default ../shared/data).")
flags.DEFINE_string("backbone", None, "Backbone folder (default: the shipped one).")
flags.DEFINE_string("out", "bench/results/finetune_sweep", "Result folder.")
flags.DEFINE_float("max_minutes", 0, "Start no new run after this many minutes (0: no limit).")
flags.DEFINE_integer("seed", 0, "Seed (validation slice, init, shuffling).")
flags.DEFINE_bool("report_only", False, "Only rebuild results.md / results.json from the runs.")

PHASES = {"A", "B", "C", "D", "E", "K", "R"}
BASE = {
    "lr": 1e-4,
    "schedule": "constant",
    "warmup": 0.0,
    "epochs": 10,
    "patience": 3,
    "batch": 32,
    "dropout": 0.1,
    "wd": 0.05,
}


def shipped_recipe() -> dict:
    """The float recipe `train` ships (FitSettings defaults), in the sweep's keys."""
    from tflm_embbert.training.settings import FitSettings

    fit = FitSettings()
    return {
        "lr": fit.learning_rate,
        "schedule": fit.schedule,
        "warmup": fit.warmup_fraction,
        "epochs": fit.epochs,
        "patience": fit.patience,
        "batch": fit.batch_size,
        "dropout": BASE["dropout"] if fit.dropout is None else fit.dropout,
        "wd": fit.weight_decay,
    }


def run_name(task: str, recipe: dict) -> str:
    r = recipe
    return (
        f"{task}__lr{r['lr']:g}_{r['schedule']}_w{r['warmup']:g}_e{r['epochs']}_p{r['patience']}"
        f"_b{r['batch']}_d{r['dropout']:g}_wd{r['wd']:g}"
        + (f"_pool{r['pooling']}" if r.get("pooling", "first") != "first" else "")
        + (f"_kd{r['distill']:g}" if r.get("distill", 0) else "")
        + ("c" if r.get("distill", 0) and r.get("teacher_chars") else "")
    )


def train_limits() -> dict[str, int]:
    """--train_limit task:N,... as {task: N}."""
    return {t: int(n) for t, _, n in (item.partition(":") for item in FLAGS.train_limit)}


def split_validation(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(select, score) index halves of the validation slice (fixed seeded permutation)."""
    perm = np.random.default_rng(1000 + seed).permutation(n)
    half = n // 2
    return np.sort(perm[:half]), np.sort(perm[half:])


def fit_run(task_name: str, recipe: dict, phase: str) -> dict:
    from keras_models.backend import keras, tf
    from keras_models.models import build_classifier, load_backbone, transfer_backbone_weights
    from tflm_embbert.common import paths
    from tflm_embbert.data.datasets import load_task
    from tflm_embbert.data.encoding import auto_seq_len, encode
    from tflm_embbert.data.metrics import compute_metrics
    from tflm_embbert.training.finetune import BestOnValidation, _scores
    from tflm_embbert.training.schedules import adamw

    limit = train_limits().get(task_name)
    data_dir = Path(FLAGS.data_dir) if FLAGS.data_dir else paths.shared_data_dir()
    task = load_task(task_name, data_dir, seed=FLAGS.seed, train_limit=limit)
    backbone_dir = FLAGS.backbone or paths.SHIPPED_BACKBONE_DIR
    backbone, config = load_backbone(backbone_dir)
    from tflm_embbert.data.tokenizer import Tokenizer

    tokenizer = Tokenizer.load(backbone_dir)
    seq_len = auto_seq_len(tokenizer, task.train, cap=config.max_sequence_length)
    train_x, train_y = encode(tokenizer, task.train, seq_len)
    val_x, val_y = encode(tokenizer, task.validation, seq_len)
    sel, sco = split_validation(len(val_y), FLAGS.seed)
    sel_x, sel_y = {k: v[sel] for k, v in val_x.items()}, val_y[sel]
    sco_x, sco_y = {k: v[sco] for k, v in val_x.items()}, val_y[sco]

    keras.utils.set_random_seed(FLAGS.seed)
    config = dataclasses.replace(
        config, dropout=recipe["dropout"], pooling=recipe.get("pooling", "first")
    )
    model = build_classifier(config, task.num_labels)
    transfer_backbone_weights(backbone, model)
    steps_per_epoch = math.ceil(len(train_y) / recipe["batch"])
    total = steps_per_epoch * recipe["epochs"]
    warmup = int(round(recipe["warmup"] * total))
    teacher = None
    distill = recipe.get("distill", 0.0)
    if task.is_regression:
        loss, metrics = keras.losses.MeanSquaredError(), []
    elif distill:  # targets: (1 - a) one-hot + a out-of-fold TF-IDF teacher probabilities
        from bench.kd_teacher import fit_full, oof_teacher

        chars = bool(recipe.get("teacher_chars"))
        probs, teacher = oof_teacher(task.train, task.num_labels, seed=FLAGS.seed, chars=chars)
        onehot = np.eye(task.num_labels)[train_y]
        train_y = ((1 - distill) * onehot + distill * probs).astype("float32")
        features, full = fit_full(task.train, teacher["C"], chars)
        sco_examples = [task.validation[i] for i in sco]
        teacher_sco = full.predict_proba(features.transform(sco_examples))
        teacher["score_half"] = round(
            100 * compute_metrics(task.metric, sco_y, teacher_sco)[task.metric], 3
        )
        loss = keras.losses.CategoricalCrossentropy(from_logits=True)
        metrics = []
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    model.compile(
        optimizer=adamw(
            recipe["lr"], recipe["wd"], warmup, total_steps=total, decay=recipe["schedule"]
        ),
        loss=loss,
        metrics=metrics,
    )
    train_ds = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y))
        .shuffle(len(train_y), seed=FLAGS.seed, reshuffle_each_iteration=True)
        .batch(recipe["batch"])
        .prefetch(2)
    )
    curve: list[dict] = []

    class ScoreCurve(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.started = time.time()

        def on_epoch_end(self, epoch, logs=None):
            out = self.model.predict(sco_x, batch_size=256, verbose=0)
            value = compute_metrics(task.metric, sco_y, _scores(out))[task.metric]
            extra = {}
            if teacher is not None:  # information only: student + teacher averaged
                mixed = 0.5 * tf.nn.softmax(out).numpy() + 0.5 * teacher_sco
                extra["ensemble"] = round(
                    100 * compute_metrics(task.metric, sco_y, mixed)[task.metric], 3
                )
            curve.append(
                {
                    "epoch": epoch + 1,
                    "train_loss": round(float(logs["loss"]), 5),
                    "select": round(100 * float(logs[f"val_{task.metric}"]), 3),
                    "score": round(100 * float(value), 3),
                    "seconds": round(time.time() - self.started, 1),
                    **extra,
                }
            )

    best = BestOnValidation(sel_x, sel_y, task.metric, recipe["patience"])
    started = time.time()
    # `best` first: it writes val_<metric> into the logs ScoreCurve reads; it restores the best
    # weights at the end.
    model.fit(train_ds, epochs=recipe["epochs"], callbacks=[best, ScoreCurve()], verbose=0)
    chosen = curve[best.best_epoch]
    return {
        "task": task_name,
        "phase": phase,
        "recipe": recipe,
        "metric": task.metric,
        "seq_len": seq_len,
        "train_examples": len(train_y),
        "train_limit": limit,
        "select_examples": len(sel_y),
        "score_examples": len(sco_y),
        "steps_per_epoch": steps_per_epoch,
        "warmup_steps": warmup,
        "best_epoch": best.best_epoch + 1,
        "epochs_run": len(curve),
        "best_is_last": best.best_epoch + 1 == len(curve) and len(curve) == recipe["epochs"],
        "select_at_best": chosen["select"],
        "score_at_best": chosen["score"],
        "score_max_any_epoch": max(c["score"] for c in curve),
        "curve": curve,
        "teacher": teacher,
        "wall_seconds": round(time.time() - started, 1),
        "machine": machine(),
    }


def load_runs(out: Path) -> list[dict]:
    """Every run: the JSON files in <out>/runs/ (this machine's), then the committed
    results.json's runs that have no file there (a fresh clone has only those)."""
    runs = [json.loads(p.read_text()) for p in sorted((out / "runs").glob("*.json"))]
    have = {_run_id(r) for r in runs}
    if (out / "results.json").is_file():
        committed = json.loads((out / "results.json").read_text())["runs"]
        runs += [r for r in committed if _run_id(r) not in have]
    return sorted(runs, key=_run_id)


def _run_id(run: dict) -> str:
    return run_name(run["task"], run["recipe"]) + (
        f"_n{run['train_limit']}" if run["train_limit"] else ""
    )


def recipe_key(recipe: dict) -> str:
    return run_name("", recipe).lstrip("_")


def rank_recipes(runs: list[dict], tasks: list[str], phases: set[str]) -> list[tuple]:
    """(mean score over tasks, recipe) for recipes run on every task, best first."""
    by_recipe: dict[str, dict] = {}
    for r in runs:
        if r["phase"] in phases and r["task"] in tasks:
            entry = by_recipe.setdefault(recipe_key(r["recipe"]), {"recipe": r["recipe"]})
            entry[r["task"]] = r["score_at_best"]
    ranked = [
        (float(np.mean([e[t] for t in tasks])), e["recipe"])
        for e in by_recipe.values()
        if all(t in e for t in tasks)
    ]
    return sorted(ranked, key=lambda x: -x[0])


def phase_recipes(phase: str, runs: list[dict], tasks: list[str]) -> list[dict]:
    if phase == "A":
        return [{**BASE, "lr": float(lr)} for lr in FLAGS.lrs]
    if phase == "B":
        ranked = rank_recipes(runs, tasks, {"A"})
        if not ranked:
            return []
        lr = ranked[0][1]["lr"]
        decay = {"epochs": FLAGS.decay_epochs, "warmup": FLAGS.warmup_fraction, "patience": 3}
        recipes = [
            {**BASE, "lr": lr, "schedule": "linear", **decay},
            {**BASE, "lr": lr, "schedule": "cosine", **decay},
        ]
        if FLAGS.long_epochs:
            recipes.append({**BASE, "lr": lr, "epochs": FLAGS.long_epochs, "patience": 4})
        return recipes
    if phase == "C":  # at the best of A + B, or at the shipped recipe (R) in a probe folder
        ranked = rank_recipes(runs, tasks, {"A", "B"}) or rank_recipes(runs, tasks, {"R"})
        if not ranked:
            return []
        top = ranked[0][1]
        return [{**top, "dropout": 0.0}, {**top, "batch": 16}, {**top, "wd": 0.01}][
            : FLAGS.phase_c_runs
        ]
    if phase == "D":
        ranked = rank_recipes(runs, tasks, {"A", "B"})
        if not ranked:
            return []
        return [{**ranked[0][1], "patience": FLAGS.phase_d_patience}]
    if phase == "R":
        return [shipped_recipe()]
    if phase == "E":
        ranked = rank_recipes(runs, tasks, {"A", "B"})
        if not ranked:
            return []
        return [{**ranked[0][1], "pooling": "rms"}]
    if phase == "K":  # distillation from a TF-IDF teacher, at the shipped recipe
        extra = {"teacher_chars": True} if FLAGS.teacher_chars else {}
        return [{**shipped_recipe(), "distill": float(a), **extra} for a in FLAGS.distill_alphas]
    raise ValueError(f"unknown phase {phase!r}")


def _teacher_text(recipe: dict) -> str:
    if not recipe.get("distill"):
        return "-"
    kind = "TF-IDF words + chars" if recipe.get("teacher_chars") else "TF-IDF words"
    return f"{kind} ({recipe['distill']:g})"


def report(out: Path, tasks: list[str]) -> None:
    runs = load_runs(out)
    header = ["phase", "lr", "schedule", "warm-up", "max ep.", "patience", "batch", "dropout"]
    header += (
        ["wd", "pooling", "teacher (weight)"]
        + [f"{t} score (best ep./run)" for t in tasks]
        + ["mean score"]
    )
    ranked = {recipe_key(r): m for m, r in rank_recipes(runs, tasks, PHASES)}
    rows, seen = [], {}
    for r in runs:
        seen.setdefault((r["phase"], recipe_key(r["recipe"])), {})[r["task"]] = r
    for (phase, key), per_task in sorted(seen.items()):
        rec = next(iter(per_task.values()))["recipe"]
        row = [phase, f"{rec['lr']:g}", rec["schedule"], f"{rec['warmup']:g}", rec["epochs"]]
        row += [rec["patience"], rec["batch"], f"{rec['dropout']:g}", f"{rec['wd']:g}"]
        row.append(rec.get("pooling", "first"))
        row.append(_teacher_text(rec))
        for t in tasks:
            r = per_task.get(t)
            row.append(
                f"{r['score_at_best']:.2f} ({r['best_epoch']}/{r['epochs_run']}"
                f"{', last' if r['best_is_last'] else ''})"
                if r
                else "-"
            )
        row.append(f"{ranked[key]:.2f}" if key in ranked else "-")
        rows.append(row)
    lines = [
        "# Fine-tuning recipe sweep (validation slices only)",
        "",
        "Command: `nice -n 5 python bench/finetune_sweep.py` (resumable: one JSON per run in "
        "`runs/`; `--report_only` rebuilds this file). Float fine-tuning of "
        + (f"the backbone `{FLAGS.backbone}`" if FLAGS.backbone else "the shipped backbone")
        + ", seed 0. Each task's seeded 10% validation slice of train is split in two fixed "
        "halves: `select` picks the best epoch and drives early stopping, `score` (never seen "
        "by the fit) scores the config at that epoch. No test split is read. Figures x100 "
        "(accuracy).",
        "",
        "Train parts: "
        + ", ".join(
            f"{r['task']} {r['train_examples']:,}"
            + (f" (seeded subset, --train_limit {r['train_limit']})" if r["train_limit"] else "")
            + f", L {r['seq_len']}, score half {r['score_examples']:,}"
            for r in {r["task"]: r for r in runs}.values()
        )
        + ".",
        "",
        "Phases: A = learning rate with the old recipe (constant lr, batch 32, dropout 0.1, "
        "wd 0.05, up to 10 epochs, patience 3); B = schedule / epoch budget at A's best lr "
        "(warm-up + linear or cosine decay to 0 over the planned epochs; constant with a larger "
        "budget); C = batch, dropout, weight decay at the best of A + B, one factor at a time; "
        "D = a larger early-stopping patience at the best of A + B; E = the classifier's "
        "pooling: RMS pooling over the sequence instead of [CLS], at the best of A + B; R = the "
        "recipe `train` ships, alone; K = distillation at the shipped recipe: targets = (1 - w) "
        "one-hot + w out-of-fold TF-IDF + logistic-regression probabilities (bench/kd_teacher.py). "
        "`last`: the best epoch was the last of the budget (still improving).",
        "",
        markdown_table(header, rows),
    ]
    best = rank_recipes(runs, tasks, PHASES)
    if best:
        lines.append(f"Best mean score: {best[0][0]:.2f} with `{recipe_key(best[0][1])}`.\n")
    lines.append("## Per-epoch `score` curves\n")
    for r in runs:
        curve = " ".join(f"{c['score']:.1f}" for c in r["curve"])
        lines.append(
            f"- {r['task']} `{recipe_key(r['recipe'])}` ({r['phase']}, {r['wall_seconds']:.0f} s,"
            f" {r['steps_per_epoch']} steps/epoch): {curve}"
        )
    (out / "results.md").write_text("\n".join(lines) + "\n")
    write_json(out / "results.json", {"runs": runs, "ranking": best})


def main(argv):
    del argv
    out = Path(FLAGS.out)
    tasks = list(FLAGS.tasks)
    if FLAGS.report_only:
        report(out, tasks)
        return
    started = time.time()
    for phase in FLAGS.phases:
        for recipe in phase_recipes(phase, load_runs(out), tasks):
            for task in tasks:
                limit = train_limits().get(task)
                name = run_name(task, recipe) + (f"_n{limit}" if limit else "")
                path = out / "runs" / f"{name}.json"
                if path.exists():
                    continue
                minutes = (time.time() - started) / 60
                if FLAGS.max_minutes and minutes > FLAGS.max_minutes:
                    print(f"stopping: {minutes:.0f} min > --max_minutes", flush=True)
                    report(out, tasks)
                    return
                print(f"[{phase}] {path.stem}", flush=True)
                result = fit_run(task, recipe, phase)
                write_json(path, result)
                curve = " ".join(f"{c['score']:.1f}" for c in result["curve"])
                print(
                    f"  best epoch {result['best_epoch']}/{result['epochs_run']} "
                    f"score {result['score_at_best']:.2f} ({result['wall_seconds']:.0f} s): "
                    f"{curve}",
                    flush=True,
                )
                report(out, tasks)
    report(out, tasks)


if __name__ == "__main__":
    app.run(main)
