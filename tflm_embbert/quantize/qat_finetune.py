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
from tflm_embbert.training.finetune import FinetuneResult, evaluate, fit_best_epoch


def qat_finetune(
    float_model: keras.Model,
    task: TaskData,
    tokenizer: Tokenizer,
    seq_len: int,
    *,
    config: BackboneConfig | None = None,
    epochs: int = 2,
    batch_size: int = 32,
    learning_rate: float = 2e-5,
    weight_decay: float = 0.05,
    patience: int = 2,
    seed: int = 0,
    calibration_examples: int = 256,
    max_steps_per_epoch: int | None = None,
    log_csv: str | Path | None = None,
    verbose: int = 1,
    backup_dir: str | Path | None = None,
) -> FinetuneResult:
    """Quantization-aware fine-tuning that starts from a trained float classifier.

    The float model is first rewritten for export (`rewrites.export_rewrites`: constants folded),
    then wrapped by `qat.quantize_model` with its fake-quant ranges set from
    `calibration_examples` training examples, then fine-tuned for up to `epochs` epochs with the
    best validation epoch kept (epoch 1 at least). `float_model` is not modified.
    """
    train_x, train_y = encode(tokenizer, task.train, seq_len)
    val_x, val_y = encode(tokenizer, task.validation, seq_len)
    keras.utils.set_random_seed(seed)
    calibration = {k: v[:calibration_examples] for k, v in train_x.items()}
    model = quantize_model(export_rewrites(float_model), calibration)
    fitted = fit_best_epoch(
        model,
        task,
        (train_x, train_y),
        (val_x, val_y),
        epochs=epochs,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        warmup_steps=0,
        patience=patience,
        seed=seed,
        max_steps_per_epoch=max_steps_per_epoch,
        log_csv=log_csv,
        verbose=verbose,
        backup_dir=Path(backup_dir) if backup_dir else None,
    )
    test = evaluate(model, tokenizer, task.test, task.metric, seq_len)
    return FinetuneResult(
        model=model,
        config=config,
        seq_len=seq_len,
        test=test,
        **fitted,
        settings={
            "task": task.name,
            "test_split": task.test_split,
            "metric": task.metric,
            "stage": "qat",
            "epochs": epochs,
            "batch_size": batch_size,
            "learning_rate": learning_rate,
            "weight_decay": weight_decay,
            "patience": patience,
            "seed": seed,
            "calibration_examples": calibration_examples,
        },
    )
