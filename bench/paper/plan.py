"""The paper benchmark's plan (bench/paper_benchmark.py): its models, the cells (task, model, seed)
in run order, the resumable loop that computes them and the record of every invocation."""

from __future__ import annotations

import json
import os
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from bench.common import write_json
from keras_models.presets import PRESETS, is_float_only
from tflm_embbert.data.datasets import TASKS


@dataclass(frozen=True)
class ModelSpec:
    name: str
    preset: str | None  # None: not a neural preset (the classical reference)
    pretrained: bool  # True: fine-tuned from the shipped backbone; False: random init
    kind: str = "neural"  # "neural" (float -> QAT -> int8 under TFLM) or "classical" (host only)
    float_only: bool = False  # neural with no QAT / int8 / TFLM path: the float stage alone


MODELS: dict[str, ModelSpec] = {
    "embbert": ModelSpec("embbert", "embbert", True),
    "bert_2mb": ModelSpec("bert_2mb", "bert_2mb", False),
    "nanobert": ModelSpec("nanobert", "nanobert", False),
    "embedder": ModelSpec("embedder", "embedder", False),
    "embedder_conv": ModelSpec("embedder_conv", "embedder_conv", False),
    # The paper's MAMBA baseline: a selective scan, float only (no int8 / TFLM path).
    "mamba": ModelSpec("mamba", "mamba_2mb", False, float_only=True),
    "embbert_scratch": ModelSpec("embbert_scratch", "embbert", False),
    # The classical reference (bench/tfidf_baseline.py): TF-IDF word 1-2 grams + logistic
    # regression (Ridge for STS-B), scikit-learn on the host; no int8 or TFLM path.
    "tfidf_lr": ModelSpec("tfidf_lr", None, False, kind="classical"),
}
assert all(
    spec.preset in PRESETS and spec.float_only == is_float_only(spec.preset)
    for spec in MODELS.values()
    if spec.kind == "neural"
)

# WNLI is left out by default: 635 train examples, and the paper scored it as 1 - accuracy.
DEFAULT_TASKS = [name for name in TASKS if name != "wnli"]
# Cheap tasks first, so a partial run already covers most of the table.
RUN_ORDER = (
    "snips",
    "cola",
    "mrpc",
    "rte",
    "stsb",
    "wnli",
    "emotion",
    "ag_news",
    "sst2",
    "cyberbullying",
    "imdb",
)
# The paper's figures (float / 8-bit), from ../shared/notes/embbert-reference.md ("from the
# code's result files"; test = GLUE dev). References only: never computed here. The paper's
# 8-bit is a GPU int8 scheme (bitsandbytes + LoRA), not a microcontroller runtime.
PAPER_EMBBERT = {
    "emotion": (89.6, 89.9, ""),
    "snips": (97.7, 97.9, ""),
    "ag_news": (90.5, 90.6, "paper: full 120k train"),
    "imdb": (84.1, 84.0, ""),
    "sst2": (79.3, 81.0, ""),
    "cola": (12.4, 10.7, ""),
    "mrpc": (69.2, 68.0, "paper: weighted F1, ours: positive-class F1"),
    "stsb": (49.3, 49.3, ""),
    "rte": (50.0, 49.3, ""),
}
METRIC_LABEL = {"accuracy": "acc", "mcc": "MCC", "f1": "F1 (pos.)", "spearman": "Spearman"}
STAGES = (("float", "float Keras"), ("qat", "QAT Keras"), ("int8_tflm", "int8 TFLM"))


@dataclass(frozen=True)
class Cell:
    task: str
    model: str
    seed: int

    @property
    def id(self) -> str:
        return f"{self.task}__{self.model}__s{self.seed}"


def plan_cells(
    tasks: list[str], models: list[str], embbert_seeds: list[int], baseline_seeds: list[int]
) -> list[Cell]:
    """Every (task, model, seed), in run order: seed 0 of every model except `embbert_scratch`
    task by task (cheap tasks first), then `embbert`'s other seeds, then the rest."""
    cells = []
    for task in tasks:
        for model in models:
            seeds = embbert_seeds if MODELS[model].pretrained else baseline_seeds
            for rank, seed in enumerate(dict.fromkeys(seeds)):
                if rank == 0 and model != "embbert_scratch":
                    phase = 0
                elif MODELS[model].pretrained:
                    phase = 1
                else:
                    phase = 2
                cost = RUN_ORDER.index(task) if task in RUN_ORDER else len(RUN_ORDER)
                cells.append((phase, cost, models.index(model), seed, task, model))
    return [Cell(task, model, seed) for *_, seed, task, model in sorted(cells)]


def cell_path(out: Path, cell: Cell) -> Path:
    return out / "cells" / f"{cell.id}.json"


def run_cells(
    plan: list[Cell],
    out: Path,
    compute: Callable[[Cell], dict],
    *,
    max_cells: int = 0,
    max_seconds: float = 0.0,
    progress: Callable[[str], None] = print,
    after_cell: Callable[[dict], None] | None = None,
    stale: Callable[[dict], bool] | None = None,
) -> dict:
    """Computes every planned cell that has no JSON yet (written when it finishes; a cached cell
    is recomputed only when `stale(its JSON)` is true, and its JSON is replaced only when the
    new one is written). A failing cell writes <id>.error.json and the run goes on;
    `after_cell(done so far)` runs after each computed cell (so a long run's report and its
    invocation record are current even if the process is killed). Returns
    {"computed", "cached", "failed", "skipped"} lists of cell ids."""
    started = time.time()
    done = {"computed": [], "cached": [], "failed": [], "skipped": []}
    total = len(plan)
    for index, cell in enumerate(plan, 1):
        path = cell_path(out, cell)
        if path.exists() and not (stale and stale(json.loads(path.read_text()))):
            done["cached"].append(cell.id)
            progress(f"[{index}/{total}] {cell.id}: cached")
            continue
        elapsed = time.time() - started
        if (max_cells and len(done["computed"]) >= max_cells) or (
            max_seconds and elapsed >= max_seconds
        ):
            done["skipped"].append(cell.id)
            continue
        again = " again (stale recipe)" if path.exists() else ""
        progress(
            f"[{index}/{total}] {cell.id}: running{again} ({elapsed / 60:.1f} min into this run)"
        )
        cell_started = time.time()
        error_path = path.with_name(f"{cell.id}.error.json")
        try:
            result = compute(cell)
        except Exception as error:  # noqa: BLE001 - one failing cell must not stop a long run
            line = " ".join(f"{type(error).__name__}: {error}".split())
            write_json(
                error_path,
                {
                    "cell": cell.id,
                    "error": line,
                    "traceback": traceback.format_exc(),
                    "wall_seconds": round(time.time() - cell_started, 1),
                },
            )
            done["failed"].append(cell.id)
            progress(f"[{index}/{total}] {cell.id}: FAILED ({line}); see {error_path}")
            continue
        result = {"cell": cell.id, **asdict(cell), **result}
        result["wall_seconds"] = round(time.time() - cell_started, 1)
        write_json(path, result)
        error_path.unlink(missing_ok=True)
        done["computed"].append(cell.id)
        remaining = total - index
        progress(
            f"[{index}/{total}] {cell.id}: done in {result['wall_seconds']:.0f} s "
            f"({_cell_summary(result)}); {remaining} cells after it"
        )
        if after_cell:
            after_cell(done)
    if done["skipped"]:
        progress(f"stopped by --max_cells/--max_hours: {len(done['skipped'])} cells left")
    return done


RECIPE_KEYS = ("learning_rate", "schedule", "warmup_fraction", "batch_size", "weight_decay")


def recipe_is_stale(cell: dict, fit) -> bool:
    """True for a fine-tuned cell whose recorded float recipe is not `fit`'s (FitSettings);
    cells from before the schedule was recorded ran lr 1e-4 constant. Classical cells: never."""
    recorded = cell.get("float")
    if not isinstance(recorded, dict) or "learning_rate" not in recorded:
        return False
    defaults = {"schedule": "constant", "warmup_fraction": 0.0}
    return any(recorded.get(k, defaults.get(k)) != getattr(fit, k) for k in RECIPE_KEYS)


def _cell_summary(cell: dict) -> str:
    if cell.get("kind") == "classical":
        return f"TF-IDF + linear test {100 * cell['float']['test'][cell['metric']]:.2f}"
    parts = []
    for stage, label in STAGES:
        if stage in cell and cell[stage].get("test"):
            parts.append(f"{label} {100 * cell[stage]['test'][cell['metric']]:.2f}")
    if cell.get("flash_bytes") and cell.get("arena_bytes"):
        parts.append(f"flash {cell['flash_bytes']:,} B + arena {cell['arena_bytes']:,} B")
    return ", ".join(parts)


def read_invocations(out: Path) -> list[dict]:
    path = out / "invocations.json"
    return json.loads(path.read_text()) if path.exists() else []


class InvocationLog:
    """This invocation's entry in <out>/invocations.json, rewritten after every cell, at the end,
    and every `every_seconds` in between (so a run killed inside a long cell, which the next run
    resumes, still has its elapsed time to within that)."""

    def __init__(self, out: Path, planned: int, argv: list[str], every_seconds: float = 60.0):
        self.path = out / "invocations.json"
        self.index = len(read_invocations(out))
        self.started = time.time()
        self.entry = {
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started)),
            "argv": argv,
            "planned": planned,
        }
        self._done: dict = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.update({}, finished=False)
        threading.Thread(target=self._tick, args=(every_seconds,), daemon=True).start()

    def _tick(self, every_seconds: float) -> None:
        while not self._stop.wait(every_seconds):
            self.update(self._done, finished=False)

    def update(self, done: dict, finished: bool) -> None:
        with self._lock:
            if self._stop.is_set():
                return
            if finished:
                self._stop.set()
            self._done = done
            self.entry.update(
                elapsed_seconds=round(time.time() - self.started, 1),
                finished=finished,
                load_average_at_end=[round(v, 2) for v in os.getloadavg()],
                **{k: len(done.get(k, [])) for k in ("computed", "cached", "failed", "skipped")},
            )
            entries = read_invocations(self.path.parent)[: self.index]
            write_json(self.path, entries + [self.entry])
