"""The command-line flags that set the pipeline's stages, one vocabulary for every command.

Each default comes from its stage's settings (`training.settings.FitSettings`,
`quantize.settings.QAT_FIT`, `tflm.settings.Int8Settings`), so it is defined once. The define_*
functions may be called by several command modules in one process: a flag already defined is
left as it is. Flag names across train, export and bench: one value singular, several plural
(--seed / --seeds, --model / --models, --task / --tasks); --run names a pipeline output folder;
--train_limit and --test_limit cut a split.
"""

from __future__ import annotations

from dataclasses import replace

from absl import flags

from tflm_embbert.quantize.settings import QAT_FIT
from tflm_embbert.stages import Stages
from tflm_embbert.tflm.settings import Int8Settings
from tflm_embbert.training.settings import DECAYS, FitSettings

FLAGS = flags.FLAGS
FLOAT_FIT = FitSettings()
INT8 = Int8Settings()


def _define(kind, name: str, default, help_text: str, **kwargs) -> None:
    if name not in FLAGS:
        getattr(flags, f"DEFINE_{kind}")(name, default, help_text, **kwargs)


def define_fit_flags(epochs: int = FLOAT_FIT.epochs) -> None:
    """Float fine-tuning: --epochs --batch_size --learning_rate --schedule --warmup_fraction
    --warmup_steps --weight_decay --dropout --patience (`epochs`: a command's own default)."""
    _define("integer", "epochs", epochs, "Most float fine-tuning epochs (best validation kept).")
    _define("integer", "batch_size", FLOAT_FIT.batch_size, "Batch size.")
    _define("float", "learning_rate", FLOAT_FIT.learning_rate, "AdamW peak learning rate.")
    if "schedule" not in FLAGS:
        flags.DEFINE_enum(
            "schedule", FLOAT_FIT.schedule, list(DECAYS), "Learning-rate decay after the warm-up."
        )
    _define("float", "warmup_fraction", FLOAT_FIT.warmup_fraction, "Warm-up share of the steps.")
    _define("float", "dropout", FLOAT_FIT.dropout, "Dropout rate (default: the model's own).")
    _define("float", "weight_decay", FLOAT_FIT.weight_decay, "AdamW weight decay.")
    _define("integer", "warmup_steps", FLOAT_FIT.warmup_steps, "Warm-up steps (0: the share).")
    _define("integer", "patience", FLOAT_FIT.patience, "Stop after N epochs without improvement.")


def define_qat_flags(qat_epochs: int = 0) -> None:
    """Quantization-aware fine-tuning: --qat_epochs (0: no QAT stage) --qat_learning_rate."""
    _define("integer", "qat_epochs", qat_epochs, "Quantization-aware epochs (0: no QAT stage).")
    _define("float", "qat_learning_rate", QAT_FIT.learning_rate, "Learning rate of QAT.")


def define_int8_flags() -> None:
    """The int8 graph: --calibration_examples --lean --mask_bias --chunk_rows
    --per_channel_dense."""
    _define(
        "integer",
        "calibration_examples",
        INT8.calibration_examples,
        "Training examples calibrating int8 ranges.",
    )
    _define(
        "bool",
        "lean",
        INT8.lean,
        "Memory-lean graph (exact: same int8 outputs, checked on the test split): pre-transposed "
        "attention values, [CLS]-only last layer, optional row chunks, a per-key mask bias "
        "(tflm_embbert/graph/lean_graph.py).",
    )
    _define(
        "bool",
        "mask_bias",
        INT8.mask_bias,
        "With --lean: mask padded keys with one per-key bias instead of the converter's per-row "
        "floor (exact through the softmax, checked, dropped by itself if a difference shows).",
    )
    _define(
        "list",
        "chunk_rows",
        [str(rows) for rows in INT8.chunk_rows],
        "Row-chunk sizes to try with --lean (0 = no chunks); the smallest measured arena wins.",
    )
    _define(
        "bool",
        "per_channel_dense",
        INT8.per_channel_dense,
        "Per-channel int8 Dense weights (the converter's re-quantization). The default keeps "
        "QAT's per-tensor grid: the same or closer agreement with QAT, a smaller .tflite and "
        "arena (bench/results/dense_layout).",
    )


def chunk_rows(f=FLAGS) -> tuple[int, ...]:
    """--chunk_rows as integers; ValueError (one line) otherwise."""
    if not f.chunk_rows or not all(rows.isdigit() for rows in f.chunk_rows):
        raise ValueError(f"--chunk_rows: expected integers >= 0, got {','.join(f.chunk_rows)}")
    return tuple(int(rows) for rows in f.chunk_rows)


FIT_FLAGS = (
    "epochs",
    "batch_size",
    "learning_rate",
    "schedule",
    "warmup_fraction",
    "warmup_steps",
    "weight_decay",
    "dropout",
    "patience",
)


def fit_settings(f=FLAGS) -> FitSettings:
    return FitSettings(**{name: f[name].value for name in FIT_FLAGS}, seed=f.seed)


def int8_settings(f=FLAGS) -> Int8Settings:
    return Int8Settings(
        calibration_examples=f.calibration_examples,
        per_channel_dense=f.per_channel_dense,
        lean=f.lean,
        chunk_rows=chunk_rows(f),
        mask_bias=f.mask_bias,
        seed=f.seed,
    )


def stages(f=FLAGS, *, int8: bool, ptq: bool = False) -> Stages:
    """The Stages the flags ask for (QAT runs at the float stage's batch size)."""
    fit = fit_settings(f)
    qat = None
    if f.qat_epochs > 0:
        qat = replace(
            QAT_FIT,
            epochs=f.qat_epochs,
            learning_rate=f.qat_learning_rate,
            batch_size=fit.batch_size,
            seed=f.seed,
        )
    return Stages(float_fit=fit, qat_fit=qat, int8=int8_settings(f) if int8 else None, ptq=ptq)
