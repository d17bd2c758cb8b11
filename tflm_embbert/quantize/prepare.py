"""The one "prepare for conversion": what every path to a .tflite does to a trained model first.

A QAT model (tfmot QuantizeWrappers) converts as it is: its rewrites were applied before it was
wrapped. A float model gets `rewrites.export_rewrites` (constants folded) so that it converts to
the same graph a QAT model of it would.
"""

from __future__ import annotations

import os

from keras_models.backend import keras
from tflm_embbert.quantize.qat import load_qat_model
from tflm_embbert.quantize.rewrites import export_rewrites


def is_qat(model: keras.Model) -> bool:
    """True for a tfmot QAT model (its layers are QuantizeWrappers)."""
    return any(type(layer).__name__.startswith("QuantizeWrapper") for layer in model.layers)


def prepare_for_conversion(model: keras.Model) -> keras.Model:
    """The model to convert: a QAT model unchanged, a float model with `export_rewrites`."""
    return model if is_qat(model) else export_rewrites(model)


def load_for_conversion(path: str | os.PathLike) -> keras.Model:
    """A saved float or QAT .keras file, loaded and prepared for conversion."""
    return prepare_for_conversion(load_qat_model(path, compile=False))
