"""Fine-tunes a classifier (or STS-B-style regressor) on a TaskData, keeping the best epoch.

The best epoch is chosen on the validation split (a seeded slice of train) by the task's primary
metric; the test split is scored once, at the end, on the chosen weights.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_models.backend import keras, tf
from keras_models.models import build_classifier, load_backbone, transfer_backbone_weights
from keras_models.presets import BackboneConfig
from tflm_embbert.common.errors import MissingFileError
from tflm_embbert.common.files import write_text_atomic
from tflm_embbert.data.encoding import auto_seq_len, encode
from tflm_embbert.data.examples import TaskData
from tflm_embbert.data.metrics import compute_metrics
from tflm_embbert.data.tokenizer import Tokenizer
from tflm_embbert.training.schedules import adamw
from tflm_embbert.training.settings import FitSettings


class BestOnValidation(keras.callbacks.Callback):
    """Scores the validation split each epoch with the task's metric, logs it as `val_<metric>`
    (so CSVLogger sees it), keeps the best weights and restores them at the end; stops training
    after `patience` epochs without improvement (as keras' EarlyStopping does).

    With `state_dir`, the best value / epoch / weights are written there after every epoch and
    read back when training starts, so a fit resumed by `keras.callbacks.BackupAndRestore`
    still knows the best epoch of the run that was interrupted."""

    def __init__(self, inputs, labels, metric: str, patience: int = 0, state_dir=None):
        super().__init__()
        self.inputs, self.labels, self.metric = inputs, labels, metric
        self.patience = patience
        self.state_dir = Path(state_dir) if state_dir is not None else None
        self.best_value = -math.inf
        self.best_epoch = -1
        self.best_weights = None
        self.best_metrics: dict[str, float] = {}
        self.epochs_done = 0
        self.resumed_from_epoch = 0

    def on_train_begin(self, logs=None):
        state = self.state_dir / "best.json" if self.state_dir else None
        if state is None or not state.is_file():
            return
        saved = json.loads(state.read_text())
        self.best_value, self.best_epoch = saved["best_value"], saved["best_epoch"]
        self.best_metrics, self.epochs_done = saved["best_metrics"], saved["epochs_done"]
        self.resumed_from_epoch = self.epochs_done
        with np.load(self.state_dir / "best_weights.npz") as weights:
            self.best_weights = [weights[f"w{i}"] for i in range(len(weights.files))]

    def on_epoch_end(self, epoch, logs=None):
        outputs = self.model.predict(self.inputs, batch_size=256, verbose=0)
        values = compute_metrics(self.metric, self.labels, _scores(outputs))
        if logs is not None:
            logs.update({f"val_{k}": v for k, v in values.items()})
        value = values[self.metric]
        improved = value > self.best_value
        if improved:
            self.best_value, self.best_epoch = value, epoch
            self.best_weights = self.model.get_weights()
            self.best_metrics = values
        self.epochs_done = epoch + 1
        if self.state_dir is not None:
            self._save_state(improved)
        shown = " ".join(f"{k} {v:.4f}" for k, v in values.items())
        print(f"epoch {epoch + 1}: validation {shown}", flush=True)
        if self.patience and epoch - self.best_epoch >= self.patience:
            best = self.best_epoch + 1
            print(f"epoch {epoch + 1}: early stopping (best epoch {best})", flush=True)
            self.model.stop_training = True

    def _save_state(self, weights_changed: bool) -> None:
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if weights_changed:  # weights first: best.json never names weights that are not there
            tmp = self.state_dir / "best_weights.tmp.npz"
            np.savez(tmp, **{f"w{i}": w for i, w in enumerate(self.best_weights)})
            tmp.replace(self.state_dir / "best_weights.npz")
        state = {
            "best_value": self.best_value,
            "best_epoch": self.best_epoch,
            "best_metrics": self.best_metrics,
            "epochs_done": self.epochs_done,
        }
        write_text_atomic(self.state_dir / "best.json", json.dumps(state))

    def on_train_end(self, logs=None):
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)


def _scores(outputs: np.ndarray) -> np.ndarray:
    return outputs[:, 0] if outputs.shape[-1] == 1 else outputs


@dataclass
class FinetuneResult:
    model: keras.Model
    config: BackboneConfig | None
    seq_len: int
    best_epoch: int
    epochs_run: int
    validation: dict[str, float]
    test: dict[str, float]
    train_seconds: float
    step_seconds: float  # mean wall time of one training step (batch `batch_size`)
    settings: dict = field(default_factory=dict)
    resumed_from_epoch: int = 0  # epochs an interrupted earlier run had done (0: not resumed)

    def to_json(self) -> dict:
        return {
            "config": self.config.to_dict() if self.config else None,
            "seq_len": self.seq_len,
            "best_epoch": self.best_epoch + 1,
            "epochs_run": self.epochs_run,
            "validation": self.validation,
            "test": self.test,
            "train_seconds": round(self.train_seconds, 1),
            "step_seconds": round(self.step_seconds, 5),
            **({"resumed_from_epoch": self.resumed_from_epoch} if self.resumed_from_epoch else {}),
            **self.settings,
        }

    @classmethod
    def from_json(cls, model: keras.Model, values: dict) -> FinetuneResult:
        """The inverse of `to_json` for a model saved by an earlier run."""
        values = dict(values)
        config = values.pop("config")
        return cls(
            model=model,
            config=BackboneConfig.from_dict(config) if config else None,
            seq_len=values.pop("seq_len"),
            best_epoch=values.pop("best_epoch") - 1,
            epochs_run=values.pop("epochs_run"),
            validation=values.pop("validation"),
            test=values.pop("test"),
            train_seconds=values.pop("train_seconds"),
            step_seconds=values.pop("step_seconds"),
            resumed_from_epoch=values.pop("resumed_from_epoch", 0),
            settings=values,
        )


class _StepTimer(keras.callbacks.Callback):
    """Mean wall time per training step, first epoch excluded when there are more (tracing)."""

    def __init__(self):
        super().__init__()
        self.epoch_times: list[tuple[float, int]] = []

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        steps = self.params.get("steps") or 1
        self.epoch_times.append((time.perf_counter() - self._start, steps))

    def mean_step(self) -> float:
        times = self.epoch_times[1:] or self.epoch_times
        return sum(t for t, _ in times) / max(1, sum(s for _, s in times))


def finetune(
    task: TaskData,
    tokenizer: Tokenizer,
    config: BackboneConfig | None,
    fit: FitSettings | None = None,
    *,
    backbone_dir: str | Path | None = None,
    seq_len: int = 0,
    log_csv: str | Path | None = None,
    verbose: int = 1,
    backup_dir: str | Path | None = None,
) -> FinetuneResult:
    """Fine-tunes from `backbone_dir`'s pretrained backbone (its own config is used), or trains
    `config` from scratch when `backbone_dir` is None. With `backup_dir` the fit resumes from
    the last epoch checkpointed there (see `fit_best_epoch`). `fit` defaults to FitSettings()."""
    fit = fit or FitSettings()
    if backbone_dir is not None:
        backbone, config = load_backbone(backbone_dir)
    elif config is None:
        raise ValueError("finetune: give a backbone_dir or a config to train from scratch")
    if config.vocabulary_size != tokenizer.vocab_size:
        raise ValueError(
            f"tokenizer has {tokenizer.vocab_size} tokens but the model expects "
            f"{config.vocabulary_size}: use the tokenizer the backbone was trained with"
        )
    if not seq_len:
        seq_len = auto_seq_len(tokenizer, task.train, cap=config.max_sequence_length)
    if seq_len > config.max_sequence_length:
        raise ValueError(
            f"seq_len {seq_len} exceeds the model's max_sequence_length "
            f"{config.max_sequence_length}"
        )
    keras.utils.set_random_seed(fit.seed)
    if fit.dropout is not None:
        config = config.replace(dropout=fit.dropout)
    model = build_classifier(config, task.num_labels)
    if backbone_dir is not None:
        transfer_backbone_weights(backbone, model)
    settings = {
        "from_backbone": str(backbone_dir) if backbone_dir is not None else None,
        "train_examples": len(task.train),
        "validation_examples": len(task.validation),
        "test_examples": len(task.test),
    }
    outputs = {"log_csv": log_csv, "verbose": verbose, "backup_dir": backup_dir}
    return fit_and_score(model, task, tokenizer, seq_len, fit, config, settings, **outputs)


def fit_and_score(
    model,
    task: TaskData,
    tokenizer: Tokenizer,
    seq_len: int,
    fit: FitSettings,
    config: BackboneConfig | None,
    settings: dict,
    *,
    log_csv: str | Path | None,
    verbose: int,
    backup_dir: str | Path | None,
) -> FinetuneResult:
    """Fits `model` in place on the task's train split (`fit_best_epoch`), then scores the test
    split once on the kept weights; `settings` are added to the result's settings."""
    train = encode(tokenizer, task.train, seq_len)
    validation = encode(tokenizer, task.validation, seq_len)
    fitted = fit_best_epoch(
        model,
        task,
        train,
        validation,
        fit,
        log_csv=log_csv,
        verbose=verbose,
        backup_dir=Path(backup_dir) if backup_dir else None,
    )
    best_is_last = fitted["best_epoch"] + 1 == fitted["epochs_run"] == fit.epochs
    if best_is_last:
        print(under_fitting_line(fit.epochs), flush=True)
    return FinetuneResult(
        model=model,
        config=config,
        seq_len=seq_len,
        test=evaluate(model, tokenizer, task.test, task.metric, seq_len),
        **fitted,
        settings={
            "task": task.name,
            "test_split": task.test_split,
            "metric": task.metric,
            **settings,
            **fit.to_json(),
            "warmup_steps": fit.warmup(_steps_per_epoch(len(train[1]), fit)),
            "dropout": config.dropout if config is not None else fit.dropout,
            "best_is_last": best_is_last,
        },
    )


def under_fitting_line(epochs: int) -> str:
    """The one line a fit prints when validation still improved at its last epoch."""
    return (
        f"warning: the best validation epoch is the last one ({epochs} of {epochs}): the model "
        f"may be under-fitted; try a larger --epochs (e.g. {2 * epochs})"
    )


def _steps_per_epoch(examples: int, fit: FitSettings) -> int:
    return fit.max_steps_per_epoch or math.ceil(examples / fit.batch_size)


def fit_best_epoch(
    model,
    task: TaskData,
    train: tuple,
    validation: tuple,
    fit: FitSettings,
    *,
    log_csv,
    verbose: int,
    backup_dir: Path | None = None,
) -> dict:
    """Compiles and fits `model` in place, keeping the best validation epoch's weights; returns
    the FinetuneResult fields that describe the fit.

    With `backup_dir`, every finished epoch is checkpointed there (model, optimizer, epoch, best
    epoch so far) and a fit that finds a checkpoint continues after its last epoch instead of
    starting again; the caller deletes `backup_dir` once the result is kept. A resumed fit
    shuffles its remaining epochs in a different order than an uninterrupted one would."""
    (train_x, train_y), (val_x, val_y) = train, validation
    if task.is_regression:
        loss, metrics = keras.losses.MeanSquaredError(), []
    else:
        loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        metrics = [keras.metrics.SparseCategoricalAccuracy(name="accuracy")]
    steps = _steps_per_epoch(len(train_y), fit)
    model.compile(
        optimizer=adamw(
            fit.learning_rate,
            fit.weight_decay,
            fit.warmup(steps),
            total_steps=steps * fit.epochs,
            decay=fit.schedule,
        ),
        loss=loss,
        metrics=metrics,
    )
    train_ds = (
        tf.data.Dataset.from_tensor_slices((train_x, train_y))
        .shuffle(len(train_y), seed=fit.seed, reshuffle_each_iteration=True)
        .batch(fit.batch_size)
        .prefetch(2)
    )
    best = BestOnValidation(
        val_x, val_y, task.metric, fit.patience, backup_dir / "best" if backup_dir else None
    )
    timer = _StepTimer()
    callbacks = [timer, best]  # `best` saves its state before BackupAndRestore saves the model
    if backup_dir:
        callbacks.append(
            keras.callbacks.BackupAndRestore(str(backup_dir / "fit"), delete_checkpoint=False)
        )
    if log_csv:
        callbacks.append(keras.callbacks.CSVLogger(str(log_csv), append=bool(backup_dir)))
    started = time.time()
    model.fit(
        train_ds,
        epochs=fit.epochs,
        steps_per_epoch=fit.max_steps_per_epoch,
        callbacks=callbacks,
        verbose=verbose,
    )
    return {
        "best_epoch": best.best_epoch,
        "epochs_run": best.epochs_done,
        "validation": best.best_metrics,
        "train_seconds": time.time() - started,
        "step_seconds": timer.mean_step(),
        "resumed_from_epoch": best.resumed_from_epoch,
    }


def load_trained(
    path: str | Path, task: TaskData, tokenizer: Tokenizer, seq_len: int = 0
) -> FinetuneResult:
    """A float classifier saved by an earlier run (its model.keras), scored on the validation
    and test splits as `finetune` scores them, so later stages (QAT, int8) can start from it."""
    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"--float_model: {path} does not exist (expected a model.keras)")
    model = keras.models.load_model(path, compile=False)
    outputs = model.output_shape[-1]
    if outputs != task.num_labels:
        raise ValueError(
            f"--float_model: {path} has {outputs} outputs but task {task.name} has "
            f"{task.num_labels} labels"
        )
    seq_len = seq_len or auto_seq_len(tokenizer, task.train)
    return FinetuneResult(
        model=model,
        config=None,
        seq_len=seq_len,
        best_epoch=-1,
        epochs_run=0,
        validation=evaluate(model, tokenizer, task.validation, task.metric, seq_len),
        test=evaluate(model, tokenizer, task.test, task.metric, seq_len),
        train_seconds=0.0,
        step_seconds=0.0,
        settings={
            "task": task.name,
            "test_split": task.test_split,
            "metric": task.metric,
            "loaded_from": str(path),
        },
    )


def evaluate(model, tokenizer, examples, metric: str, seq_len: int) -> dict[str, float]:
    inputs, labels = encode(tokenizer, examples, seq_len)
    outputs = model.predict(inputs, batch_size=256, verbose=0)
    return compute_metrics(metric, labels, _scores(outputs))
