"""One cell of the paper benchmark (bench/paper_benchmark.py): a neural model through the whole
pipeline (float -> QAT -> int8 under TFLM, or the float stage alone), or the classical reference."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field, replace
from pathlib import Path

from bench.common import machine
from bench.paper import float_only
from bench.paper.plan import MODELS, Cell
from tflm_embbert.common import paths
from tflm_embbert.quantize.settings import QAT_FIT
from tflm_embbert.stages import Stages
from tflm_embbert.tflm.settings import Int8Settings
from tflm_embbert.training.settings import FitSettings


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


def _relative(path: Path) -> str:
    try:
        return str(Path(path).resolve().relative_to(paths.REPO_ROOT))
    except ValueError:
        return str(path)
