"""Optimiser and learning-rate schedule shared by pretraining and fine-tuning."""

from __future__ import annotations

import math

from keras_models.backend import keras, register, tf
from tflm_embbert.training.settings import DECAYS


@register
class WarmupConstant(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then constant (resumable anywhere)."""

    def __init__(self, peak: float, warmup_steps: int):
        self.peak = peak
        self.warmup_steps = warmup_steps

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        if not self.warmup_steps:
            return tf.constant(self.peak, tf.float32)
        return self.peak * tf.minimum(1.0, (step + 1.0) / float(self.warmup_steps))

    def get_config(self):
        return {"peak": self.peak, "warmup_steps": self.warmup_steps}


@register
class WarmupDecay(keras.optimizers.schedules.LearningRateSchedule):
    """Linear warm-up from 0 to `peak` over `warmup_steps`, then `decay` ("linear" or "cosine")
    down to `peak * floor` at `total_steps` (and held there after it)."""

    def __init__(self, peak: float, warmup_steps: int, total_steps: int, decay="linear", floor=0.0):
        if decay not in ("linear", "cosine"):
            raise ValueError(f"decay: expected linear or cosine, got {decay!r}")
        if total_steps <= warmup_steps:
            raise ValueError(f"total_steps {total_steps} must exceed warmup_steps {warmup_steps}")
        self.peak, self.warmup_steps, self.total_steps = peak, warmup_steps, total_steps
        self.decay, self.floor = decay, floor

    def __call__(self, step):
        step = tf.cast(step, tf.float32)
        warm = tf.minimum(1.0, (step + 1.0) / float(max(1, self.warmup_steps)))
        span = float(self.total_steps - self.warmup_steps)
        done = tf.clip_by_value((step - float(self.warmup_steps)) / span, 0.0, 1.0)
        if self.decay == "linear":
            left = 1.0 - done
        else:
            left = 0.5 * (1.0 + tf.cos(math.pi * done))
        scale = self.floor + (1.0 - self.floor) * left
        return self.peak * tf.where(step < float(self.warmup_steps), warm, scale)

    def get_config(self):
        return {
            "peak": self.peak,
            "warmup_steps": self.warmup_steps,
            "total_steps": self.total_steps,
            "decay": self.decay,
            "floor": self.floor,
        }


def learning_rate_schedule(
    learning_rate: float, warmup_steps: int = 0, total_steps: int = 0, decay: str = "constant"
):
    """WarmupConstant for decay "constant" (or no total_steps), else WarmupDecay."""
    if decay not in DECAYS:
        raise ValueError(f"decay: expected one of {DECAYS}, got {decay!r}")
    if decay == "constant" or not total_steps:
        return WarmupConstant(learning_rate, warmup_steps)
    return WarmupDecay(learning_rate, warmup_steps, total_steps, decay)


def adamw(
    learning_rate: float,
    weight_decay: float,
    warmup_steps: int = 0,
    clipnorm=1.0,
    *,
    total_steps: int = 0,
    decay: str = "constant",
):
    """AdamW with warm-up (and optionally a decay to 0 at `total_steps`); like the reference,
    weight decay applies to every parameter."""
    return keras.optimizers.AdamW(
        learning_rate=learning_rate_schedule(learning_rate, warmup_steps, total_steps, decay),
        weight_decay=weight_decay,
        global_clipnorm=clipnorm,
    )
