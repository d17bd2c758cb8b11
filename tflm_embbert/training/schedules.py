"""Optimiser and learning-rate schedule shared by pretraining and fine-tuning."""

from __future__ import annotations

from keras_models.backend import keras, register, tf


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


def adamw(learning_rate: float, weight_decay: float, warmup_steps: int = 0, clipnorm=1.0):
    """AdamW with warm-up; like the reference, weight decay applies to every parameter."""
    return keras.optimizers.AdamW(
        learning_rate=WarmupConstant(learning_rate, warmup_steps),
        weight_decay=weight_decay,
        global_clipnorm=clipnorm,
    )
