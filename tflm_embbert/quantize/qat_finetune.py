"""Quantization-aware fine-tuning (tfmot) that starts from a trained float classifier."""

from __future__ import annotations

from pathlib import Path

from keras_models.backend import keras
from keras_models.presets import BackboneConfig
from tflm_embbert.data.encoding import encode
from tflm_embbert.data.examples import TaskData
from tflm_embbert.data.tokenizer import Tokenizer
from tflm_embbert.quantize.qat import quantize_model
from tflm_embbert.quantize.rewrites import export_rewrites
from tflm_embbert.quantize.settings import QAT_FIT
from tflm_embbert.training.finetune import FinetuneResult, fit_and_score
from tflm_embbert.training.settings import FitSettings


def qat_finetune(
    float_model: keras.Model,
    task: TaskData,
    tokenizer: Tokenizer,
    seq_len: int,
    fit: FitSettings = QAT_FIT,
    *,
    config: BackboneConfig | None = None,
    calibration_examples: int = 256,
    log_csv: str | Path | None = None,
    verbose: int = 1,
    backup_dir: str | Path | None = None,
) -> FinetuneResult:
    """Quantization-aware fine-tuning that starts from a trained float classifier.

    The float model is first rewritten for export (`rewrites.export_rewrites`: constants folded),
    then wrapped by `qat.quantize_model` with its fake-quant ranges set from
    `calibration_examples` training examples, then fine-tuned for up to `fit.epochs` epochs with
    the best validation epoch kept (epoch 1 at least). `float_model` is not modified.
    """
    train_x, _ = encode(tokenizer, task.train[:calibration_examples], seq_len)
    keras.utils.set_random_seed(fit.seed)
    model = quantize_model(export_rewrites(float_model), train_x)
    settings = {"stage": "qat", "calibration_examples": calibration_examples}
    outputs = {"log_csv": log_csv, "verbose": verbose, "backup_dir": backup_dir}
    return fit_and_score(model, task, tokenizer, seq_len, fit, config, settings, **outputs)
