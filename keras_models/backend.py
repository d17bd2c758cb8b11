"""Single place that pins the Keras flavour: tf_keras (Keras 2), which tfmot needs.

Import `keras` and `tf` from here, never `tensorflow.keras` or Keras 3 directly.
"""

import os

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tf_keras as keras  # noqa: E402

__all__ = ["keras", "tf", "register"]


def register(cls):
    """Registers a layer for `.keras` serialization under the `embbert` package."""
    return keras.saving.register_keras_serializable(package="embbert")(cls)
