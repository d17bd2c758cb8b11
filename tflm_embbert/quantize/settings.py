"""The QAT stage's settings (no TensorFlow import)."""

from __future__ import annotations

from tflm_embbert.training.settings import FitSettings

# Every default of the QAT stage: a few epochs at a small rate, from the best float epoch.
QAT_FIT = FitSettings(epochs=2, learning_rate=2e-5, schedule="constant", patience=2)
