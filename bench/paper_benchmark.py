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
cells run the float stage alone, with no QAT, int8 or TFLM stage (bench/float_only.py).
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

import hashlib
import json
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from bench import float_only  # noqa: E402
from bench.common import group_identity, machine, markdown_table, write_json  # noqa: E402
from keras_models.presets import PRESETS, is_float_only  # noqa: E402
from tflm_embbert.common import paths  # noqa: E402
from tflm_embbert.data.datasets import TASKS  # noqa: E402
from tflm_embbert.quantize.settings import QAT_FIT  # noqa: E402
from tflm_embbert.stages import Stages  # noqa: E402
from tflm_embbert.tflm.settings import Int8Settings  # noqa: E402
from tflm_embbert.training.settings import FitSettings  # noqa: E402


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


# --------------------------------------------------------------------------- plan
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
) -> dict:
    """Computes every planned cell that has no JSON yet (written when it finishes; a cached cell
    is never recomputed). A failing cell writes <id>.error.json and the run goes on;
    `after_cell(done so far)` runs after each computed cell (so a long run's report and its
    invocation record are current even if the process is killed). Returns
    {"computed", "cached", "failed", "skipped"} lists of cell ids."""
    started = time.time()
    done = {"computed": [], "cached": [], "failed": [], "skipped": []}
    total = len(plan)
    for index, cell in enumerate(plan, 1):
        path = cell_path(out, cell)
        if path.exists():
            done["cached"].append(cell.id)
            progress(f"[{index}/{total}] {cell.id}: cached")
            continue
        elapsed = time.time() - started
        if (max_cells and len(done["computed"]) >= max_cells) or (
            max_seconds and elapsed >= max_seconds
        ):
            done["skipped"].append(cell.id)
            continue
        progress(f"[{index}/{total}] {cell.id}: running ({elapsed / 60:.1f} min into this run)")
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


# --------------------------------------------------------------------------- one cell
@dataclass
class Settings:
    data_dir: Path
    backbone: Path
    tokenizers_dir: Path
    models_out: Path
    epochs: int
    epoch_caps: dict[str, int]
    qat_epochs: int
    qat_learning_rate: float
    seq_len_percentile: float
    max_seq_len: int
    invoke_examples: int
    quick: bool
    _seq_lens: dict = field(default_factory=dict, repr=False)

    def epochs_for(self, task: str) -> int:
        return min(self.epochs, self.epoch_caps.get(task, self.epochs))


def vocab_sha256(tokenizer_dir: Path) -> str:
    return hashlib.sha256((Path(tokenizer_dir) / "vocab.txt").read_bytes()).hexdigest()


def tokenizer_dir_for(settings: Settings, vocab_size: int) -> Path:
    """The shipped tokenizer for its vocabulary size; otherwise <tokenizers_dir>/wordpiece<V>,
    trained with the shipped tokenizer's recipe (pretraining corpus + task train texts,
    min pair frequency 2) when missing."""
    from tflm_embbert.data.tokenizer import Tokenizer

    if Tokenizer.load(settings.backbone).vocab_size == vocab_size:
        return settings.backbone
    folder = settings.tokenizers_dir / f"wordpiece{vocab_size}"
    if not (folder / "vocab.txt").exists():
        from tflm_embbert.data.corpus import DEFAULT_TASK_TEXTS, corpus_texts

        print(f"training a {vocab_size}-token WordPiece tokenizer into {folder}", flush=True)
        texts = corpus_texts(
            settings.data_dir / "pretrain_corpus", DEFAULT_TASK_TEXTS, settings.data_dir
        )
        Tokenizer.train(texts, vocab_size, min_frequency=2).save(folder)
    return folder


def choose_seq_len(tokenizer, task, percentile: float, cap: int) -> int:
    """L for a task: the `percentile` of its whole official train split's token lengths (the
    validation slice included, so L does not depend on the seed), rounded up to a multiple of 16,
    capped at `cap`. Never looks at the test split."""
    from tflm_embbert.data.encoding import auto_seq_len

    return auto_seq_len(tokenizer, task.train + task.validation, percentile=percentile, cap=cap)


def compute_cell(cell: Cell, settings: Settings) -> dict:
    """Runs one cell (see the module docstring) and returns its JSON-ready results."""
    if MODELS[cell.model].kind == "classical":
        return compute_classical_cell(cell, settings)
    from keras_models.backend import keras
    from keras_models.presets import get_config
    from tflm_embbert.data.datasets import load_task
    from tflm_embbert.data.encoding import encode
    from tflm_embbert.data.tokenizer import Tokenizer
    from tflm_embbert.graph.macs import count_macs
    from tflm_embbert.pipeline import run_pipeline
    from tflm_embbert.tflm.check import invoke_ms

    spec = MODELS[cell.model]
    config = None if spec.pretrained else get_config(spec.preset)
    vocab_size = config.vocabulary_size if config else Tokenizer.load(settings.backbone).vocab_size
    if spec.pretrained:
        tokenizer_dir = settings.backbone
    else:
        tokenizer_dir = tokenizer_dir_for(settings, vocab_size)
    tokenizer = Tokenizer.load(tokenizer_dir)
    task = load_task(cell.task, settings.data_dir, seed=cell.seed)
    key = (cell.task, str(tokenizer_dir))
    if key not in settings._seq_lens:
        settings._seq_lens[key] = choose_seq_len(
            tokenizer, task, settings.seq_len_percentile, settings.max_seq_len
        )
    seq_len = settings._seq_lens[key]
    epochs = settings.epochs_for(cell.task)
    stages = Stages(
        float_fit=FitSettings(epochs=epochs),
        qat_fit=replace(
            QAT_FIT, epochs=settings.qat_epochs, learning_rate=settings.qat_learning_rate
        ),
        int8=Int8Settings(),
    )
    if spec.float_only:
        stages = Stages(float_fit=FitSettings(epochs=epochs))
    print(
        f"{cell.id}: {spec.preset}, "
        f"{'shipped backbone' if spec.pretrained else 'random init'}, L {seq_len}, "
        f"up to {epochs} float + {0 if spec.float_only else settings.qat_epochs} QAT epochs"
        f"{' (' + float_only.NOTE + ')' if spec.float_only else ''}, "
        f"{len(task.train)} train / {len(task.validation)} validation / {len(task.test)} test",
        flush=True,
    )
    folder = settings.models_out / cell.id
    keras.backend.clear_session()  # one process runs many cells: drop the previous graphs
    results = run_pipeline(
        task,
        tokenizer,
        config,
        folder,
        stages.with_seed(cell.seed),
        backbone_dir=settings.backbone if spec.pretrained else None,
        seq_len=seq_len,
        verbose=2,
        resume=True,
    )
    results["pipeline_wall_seconds"] = results.pop("wall_seconds")
    recorded = {
        "preset": spec.preset,
        "init": "shipped pretrained backbone" if spec.pretrained else "random init, no pretraining",
        "quick": settings.quick,
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "tokenizer": {
            "dir": _relative(tokenizer_dir),
            "vocab_size": tokenizer.vocab_size,
            "vocab_sha256": vocab_sha256(tokenizer_dir),
        },
        "seq_len_rule": {
            "percentile": settings.seq_len_percentile,
            "cap": settings.max_seq_len,
            "of": "token lengths of the whole official train split, rounded up to 16",
        },
        "settings": {"epochs": epochs},
        **results,
    }
    if spec.float_only:
        return {
            **recorded,
            **float_only.cell_fields(config, task.num_labels),
            "models_dir": _relative(folder),
            "machine": machine(),
        }
    recorded["settings"].update(
        qat_epochs=settings.qat_epochs, qat_learning_rate=settings.qat_learning_rate
    )
    tflite = (folder / "model_int8.tflite").read_bytes()
    timed, _ = encode(tokenizer, task.test[: settings.invoke_examples], seq_len)
    memory = results["int8_tflm"]["memory"]
    return {
        **recorded,
        "flash_bytes": memory["flash_tflite_bytes"],
        "arena_bytes": memory["ram_arena_bytes"],
        "macs": count_macs(tflite),
        "invoke_ms": round(invoke_ms(tflite, timed, count=settings.invoke_examples), 3),
        "invoke_examples": settings.invoke_examples,
        "models_dir": _relative(folder),
        "machine": machine(),
    }


CLASSICAL_INIT = "classical: TF-IDF word 1-2 grams + logistic regression (Ridge for regression)"


def compute_classical_cell(cell: Cell, settings: Settings) -> dict:
    """The TF-IDF + linear reference (bench/tfidf_baseline.py) on the cell's splits: fit on the
    train part, C (alpha) chosen on the validation slice, the test split scored once. Its test
    metrics sit under "float" (host float64), with no QAT / int8 stage."""
    from bench.tfidf_baseline import fit_tfidf
    from tflm_embbert.data.datasets import load_task

    task = load_task(cell.task, settings.data_dir, seed=cell.seed)
    result = fit_tfidf(task)
    print(
        f"{cell.id}: {result.model}, {result.parameter} {result.chosen:g} (validation "
        f"{100 * result.validation[task.metric]:.2f}), {result.features:,} features",
        flush=True,
    )
    return {
        "kind": "classical",
        "init": CLASSICAL_INIT,
        "task": cell.task,
        "metric": task.metric,
        "test_split": task.test_split,
        "examples": [len(task.train), len(task.validation), len(task.test)],
        "float": {"validation": result.validation, "test": result.test},
        "classical": result.to_json(),
        "load_average_at_end": [round(v, 2) for v in os.getloadavg()],
        "machine": machine(),
    }


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


def _relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(paths.REPO_ROOT))
    except ValueError:
        return str(path)


# --------------------------------------------------------------------------- report
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


def _mean_std(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def _table_order(cell: dict) -> tuple:
    return list(TASKS).index(cell["task"]), list(MODELS).index(cell["model"]), cell["seed"]


def _row_order(row: dict) -> tuple:
    return list(TASKS).index(row["task"]), list(MODELS).index(row["model"])


def group_cells(cells: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """{(task, model): cells} in table order: tasks as in TASKS, models as in MODELS."""
    groups: dict[tuple[str, str], list[dict]] = {}
    order = sorted(cells, key=_table_order)
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


def _uniform(cells: list[dict], get) -> str:
    """The distinct values of `get(cell)` over the cells, joined ("-" when there are none)."""
    return ", ".join(sorted({str(get(c)) for c in cells})) or "-"


def _seeds_text(rows: list[dict], pretrained: bool) -> str:
    """ "3 seeds: mean ± sample std" / "1 seed" for the rows of pretrained (or other) models."""
    counts = sorted({len(r["seeds"]) for r in rows if MODELS[r["model"]].pretrained == pretrained})
    if not counts:
        return "no cells yet"
    text = "/".join(map(str, counts)) + (" seed" if counts == [1] else " seeds")
    return text + (": mean ± sample std" if max(counts) > 1 else "")


def _recipe_text(cells: list[dict]) -> str:
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


def _epochs_text(cells: list[dict]) -> str:
    """Max float epochs: the common value, then the tasks that differ ("10 (imdb 5)")."""
    per_task = {c["task"]: c["settings"]["epochs"] for c in cells}
    if not per_task:
        return "-"
    values = list(per_task.values())
    common = max(set(values), key=values.count)
    others = [f"{t} {e}" for t, e in sorted(per_task.items()) if e != common]
    return f"{common}" + (f" ({', '.join(others)})" if others else "")


def write_report(out: Path, planned: int | None = None) -> str:
    """results.json, results.md and the PNG plots from every cell under <out>/cells."""
    from bench.plots import write_plots

    every_cell, failed = load_cells(out)
    cells = [c for c in every_cell if not is_classical(c) and not float_only.is_float_only(c)]
    classical = [c for c in every_cell if is_classical(c)]
    float_cells = [c for c in every_cell if float_only.is_float_only(c)]
    rows = summarize(cells)
    classical_rows = summarize_classical(classical)
    float_rows = float_only.summarize(float_cells, group_cells(float_cells), score)
    invocations = _read_invocations(out)
    compute_s = sum(c["wall_seconds"] for c in every_cell)
    elapsed_s = sum(i["elapsed_seconds"] for i in invocations)
    if planned is None and invocations:
        # The largest plan any invocation had (a run of a subset of tasks or models plans less),
        # plus the largest of the runs of the classical reference alone (`--models tfidf_lr`).
        alone = [i["planned"] for i in invocations if i["argv"][-2:] == ["--models", "tfidf_lr"]]
        others = [i["planned"] for i in invocations if i["argv"][-2:] != ["--models", "tfidf_lr"]]
        planned = max(others, default=0) + max(alone, default=0)
    pct = _uniform(cells, lambda c: f"{c['seq_len_rule']['percentile']:g}")
    cap = _uniform(cells, lambda c: c["seq_len_rule"]["cap"])
    epochs = _epochs_text(cells + float_cells)
    qat_epochs = _uniform(cells, lambda c: c["settings"]["qat_epochs"])
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
    for row in sorted(rows + classical_rows + float_rows, key=_row_order):
        if is_classical(row):
            table.append(_classical_table_row(row, len(header)))
            continue
        if float_only.is_float_only(row):
            label = _task_label(row)
            table.append(float_only.main_table_row(row, len(header), label, _mean_std))
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
                *[_mean_std(row[stage]["values"]) for stage, _ in STAGES],
                f"{row['int8_minus_float_pp']:+.2f}",
                f"{row['int8_minus_qat_pp']:+.2f}",
                paper_text,
                f"{row['flash_bytes']:,}",
                f"{row['arena_bytes']:,}",
                _kib(row),
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
    float_header, float_table = float_only.section(float_rows, rows, _task_label, _mean_std)
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
        _classical_cell_row(c)
        if is_classical(c)
        else float_only.every_cell_row(c, len(every_header), _code_text(c))
        if float_only.is_float_only(c)
        else [c["task"], f"`{c['model']}`", c["seed"], c["seq_len"]]
        + [f"{score(c, stage):.2f}" for stage, _ in STAGES]
        + [
            f"{c['float']['best_epoch']}/{c['float']['epochs_run']}",
            f"{100 * c['int8_tflm']['agreement']['float']:.1f}"
            if c["int8_tflm"]["agreement"]
            else "-",
            _graph_text(c),
            f"{c['flash_bytes']:,}",
            f"{c['arena_bytes']:,}",
            f"{c['macs']['total']:,}",
            f"{c['invoke_ms']:.1f}",
            f"{c['wall_seconds']:.0f}",
            _code_text(c),
        ]
        for c in sorted(every_cell, key=_table_order)
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
        f"(MRPC), Spearman (STS-B). Fine-tuning: {_recipe_text(cells + float_cells)}, up to "
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
        f"({_seeds_text(rows, True)}). The baselines are **trained from random initialisation** "
        "(no pretrained backbone "
        f"exists for them here; {_seeds_text(rows, False)}); `embbert_scratch` is EmbBERT from "
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
        + "".join(_invocation_line(i) for i in invocations)
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


def _task_label(row: dict) -> str:
    return f"{row['task']} ({METRIC_LABEL[row['metric']]}, {row['test_split']})"


def _kib(row: dict) -> str:
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
            scratch_text = f"{_mean_std(scratch['int8_tflm']['values'])} ({gain:+.2f})"
        if best:
            best_text = f"{best['int8_tflm']['mean']:.2f} (`{best['model']}`, {_kib(best)})"
        table.append(
            [
                f"{task} ({METRIC_LABEL[ours['metric']]}, {ours['test_split']})",
                str(len(ours["seeds"])),
                *[_mean_std(ours[stage]["values"]) for stage, _ in STAGES],
                f"{paper[0]} / {paper[1]}" if paper else "-",
                _kib(ours),
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
    return f"{_mean_std(reference['test']['values'])} ({gain:+.2f})"


def _classical_table_row(row: dict, width: int) -> list[str]:
    """A `tfidf_lr` row of the main table: its metric in the float column, "-" elsewhere."""
    seeds = len(row["seeds"])
    cells = [
        f"{row['task']} ({METRIC_LABEL[row['metric']]}, {row['test_split']})",
        f"`{row['model']}`",
        "classical",
        f"{seeds}" + (" (mean ± std)" if seeds > 1 else ""),
        "whole text",
        _mean_std(row["test"]["values"]) + " (host float64)",
    ]
    return cells + ["-"] * (width - len(cells))


def _classical_cell_row(cell: dict) -> list:
    """A `tfidf_lr` cell in the every-cell table."""
    info = cell["classical"]
    row = [cell["task"], f"`{cell['model']}`", cell["seed"], "whole text"]
    row += [f"{score(cell, 'float'):.2f}", "-", "-"]
    row += [f"{info['parameter']} {info['chosen']:g}", "-", "-", "-", "-", "-", "-"]
    return row + [f"{cell['wall_seconds']:.0f}", _code_text(cell)]


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
                _mean_std(ref["test"]["values"]),
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


def _code_text(cell: dict) -> str:
    """The commit that ran a cell, with its date; the date alone for cells run before the
    commit was recorded."""
    run_on = cell.get("machine", {})
    date = run_on.get("date", "?")
    return f"{run_on['code']} ({date})" if "code" in run_on else f"- ({date})"


def _graph_text(cell: dict) -> str:
    """Which int8 graph a cell ran: the converter's, or the lean rewrite and its row chunk."""
    lean = cell["int8_tflm"].get("lean")
    if not lean:
        return "converter"
    return f"lean, chunk {lean['chunk_rows'] or 'none'}"


def _invocation_line(entry: dict) -> str:
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


def _report_quietly(out: Path, planned: int | None = None) -> None:
    """Rewrites the report between cells; a failure is printed, not raised (the run goes on)."""
    try:
        write_report(out, planned=planned)
    except Exception as error:  # noqa: BLE001
        print(f"report not written: {type(error).__name__}: {error}", flush=True)


def _read_invocations(out: Path) -> list[dict]:
    path = out / "invocations.json"
    return json.loads(path.read_text()) if path.exists() else []


class InvocationLog:
    """This invocation's entry in <out>/invocations.json, rewritten after every cell, at the end,
    and every `every_seconds` in between (so a run killed inside a long cell, which the next run
    resumes, still has its elapsed time to within that)."""

    def __init__(self, out: Path, planned: int, argv: list[str], every_seconds: float = 60.0):
        self.path = out / "invocations.json"
        self.index = len(_read_invocations(out))
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
            entries = _read_invocations(self.path.parent)[: self.index]
            write_json(self.path, entries + [self.entry])


# --------------------------------------------------------------------------- CLI
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
        _report_quietly(out)

    done = run_cells(
        plan,
        out,
        lambda cell: compute_cell(cell, settings),
        max_cells=FLAGS.max_cells,
        max_seconds=3600 * FLAGS.max_hours,
        progress=lambda line: print(line, flush=True),
        after_cell=after_cell,
    )
    log.update(done, finished=True)
    print(write_report(out))
    total = time.time() - started
    print(f"this invocation: {total / 60:.1f} min; computed {len(done['computed'])} cells")
    if done["failed"]:
        sys.exit(f"{len(done['failed'])} cells failed: {', '.join(done['failed'])}")


if __name__ == "__main__":
    app.run(main)
