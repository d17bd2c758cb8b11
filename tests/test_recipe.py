"""The default fine-tuning recipe: one place for its values, the warm-up + decay schedule's
shape, early stopping that restores the best epoch, and the under-fitting line."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest

import tflm_embbert.training.finetune as ft
from keras_models.backend import keras
from tests.conftest import subprocess_env, tiny_config
from tests.test_train import _task
from tflm_embbert.training.schedules import WarmupConstant, WarmupDecay, learning_rate_schedule
from tflm_embbert.training.settings import FitSettings

RECIPE = FitSettings()


def _lr(schedule, step):
    return float(schedule(step))


@pytest.mark.parametrize("decay", ["linear", "cosine"])
def test_warmup_then_decay_to_zero(decay):
    peak, warmup, total = 1e-3, 10, 110
    s = WarmupDecay(peak, warmup, total, decay)
    ramp = [_lr(s, step) for step in range(warmup)]
    assert ramp == pytest.approx([peak * (i + 1) / warmup for i in range(warmup)])
    assert _lr(s, warmup) == pytest.approx(peak)
    assert _lr(s, warmup + 50) == pytest.approx(peak / 2)  # halfway: both decays at peak / 2
    quarter = 0.75 if decay == "linear" else 0.5 * (1 + math.cos(math.pi / 4))
    assert _lr(s, warmup + 25) == pytest.approx(peak * quarter, rel=1e-5)
    assert _lr(s, total) == pytest.approx(0.0, abs=1e-12)
    assert _lr(s, total + 7) == pytest.approx(0.0, abs=1e-12)  # held at the floor after
    after = [_lr(s, step) for step in range(warmup, total + 1)]
    assert all(a >= b for a, b in zip(after, after[1:], strict=False))  # never rises again
    assert WarmupDecay.from_config(s.get_config()).get_config() == s.get_config()


def test_constant_schedule_is_the_old_recipe():
    assert isinstance(learning_rate_schedule(1e-4, 0, 1000, "constant"), WarmupConstant)
    assert isinstance(learning_rate_schedule(1e-4, 5, 1000, "linear"), WarmupDecay)
    with pytest.raises(ValueError, match="decay"):
        learning_rate_schedule(1e-4, 0, 100, "step")


def test_defaults_live_in_one_place():
    """`train`'s flags show FitSettings' defaults (in a subprocess: other modules define flags)."""
    names = ("learning_rate", "schedule", "warmup_fraction", "epochs", "patience", "batch_size")
    code = (
        "import json; from tflm_embbert import train; "
        f"print(json.dumps({{k: train.FLAGS[k].default for k in {names!r}}}))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], env=subprocess_env(), capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    shown = json.loads(done.stdout.strip().splitlines()[-1])
    assert shown == {k: getattr(RECIPE, k) for k in names}
    assert (RECIPE.learning_rate, RECIPE.schedule, RECIPE.warmup_fraction) == (1e-3, "cosine", 0.06)


def test_early_stopping_restores_the_best_epoch(monkeypatch):
    """Scripted validation scores: best at epoch 2, then `patience` epochs without gain stop
    the fit, and the weights of epoch 2 come back at the end."""
    scores = iter([0.5, 0.8, 0.7, 0.8, 0.6, 0.9])
    monkeypatch.setattr(ft, "compute_metrics", lambda metric, y, s: {"accuracy": next(scores)})
    model = keras.Sequential([keras.layers.Dense(1, input_shape=(1,))])
    best = ft.BestOnValidation(np.zeros((2, 1), np.float32), np.zeros(2), "accuracy", patience=3)
    best.set_model(model)
    stopped_at = None
    for epoch in range(6):
        model.set_weights([np.full((1, 1), epoch, np.float32), np.zeros(1, np.float32)])
        best.on_epoch_end(epoch, {})
        if model.stop_training:
            stopped_at = epoch
            break
    assert stopped_at == 4  # epochs 3, 4, 5 (0-based 2..4) without beating 0.8 (a tie is none)
    best.on_train_end()
    assert best.best_epoch == 1 and model.get_weights()[0][0, 0] == 1.0


@pytest.mark.parametrize("rising, expect_line", [(True, True), (False, False)])
def test_under_fitting_is_said_in_one_line(
    monkeypatch, capsys, tiny_tokenizer, rising, expect_line
):
    values = iter(np.linspace(0.1, 0.9, 20) if rising else np.linspace(0.9, 0.1, 20))
    monkeypatch.setattr(
        ft, "compute_metrics", lambda metric, y, s: {"accuracy": float(next(values))}
    )
    result = ft.finetune(
        _task(), tiny_tokenizer, tiny_config(),
        FitSettings(epochs=2, max_steps_per_epoch=1, batch_size=8), seq_len=16, verbose=0,
    )  # fmt: skip
    out = capsys.readouterr().out
    assert (ft.under_fitting_line(2) in out) == expect_line
    assert result.settings["best_is_last"] == expect_line
    assert result.best_epoch == (1 if rising else 0)


def test_default_recipe_warms_up_and_decays_over_the_planned_steps(tiny_tokenizer):
    fit = FitSettings(
        epochs=3, batch_size=8, schedule="linear", warmup_fraction=0.25, dropout=0.0
    )
    result = ft.finetune(_task(), tiny_tokenizer, tiny_config(), fit, seq_len=16, verbose=0)
    schedule = result.model.optimizer.get_config()["learning_rate"]
    steps = math.ceil(len(_task().train) / 8) * 3  # 64 train examples, batch 8, 3 epochs
    assert schedule["class_name"].endswith("WarmupDecay")
    config = schedule["config"]
    assert (config["total_steps"], config["warmup_steps"]) == (steps, round(0.25 * steps))
    assert config["decay"] == "linear" and config["peak"] == RECIPE.learning_rate
    assert result.settings["schedule"] == "linear" and result.settings["dropout"] == 0.0
