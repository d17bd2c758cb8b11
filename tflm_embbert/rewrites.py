"""Export-time rewrites of a trained Keras classifier that keep its float outputs unchanged.

`fold_lambdas`: EmbBERT's block output is exp(<lq1, lk1>) * (A x Wo + bo)
- exp(<lq2, lk2>) * (s Wc + bc). After training the two exponentials are constants, so they move
into Wo/bo and Wc/bc and the lambda vectors become zero (exp(0) = 1: the converter drops a
multiply by 1, and a zero vector has zero gradient, so QAT keeps them at zero). Folding before QAT
means the fake-quantized kernels QAT trains are the kernels the int8 graph holds; folding after
would re-round them.

`export_rewrites(model)` applies every rewrite and returns the rewritten copy.
"""

from __future__ import annotations

import numpy as np

from keras_models import layers as L
from keras_models.backend import keras


def copy_model(model: keras.Model) -> keras.Model:
    """A new functional model with the same config and weights (`model` is left as it is)."""
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    return clone


def fold_lambdas(model: keras.Model) -> keras.Model:
    """A copy of `model` with every EmbBERTBlock's lambda1/lambda2 folded into its output Dense
    layers (attention Wo/bo and conv-branch Wc/bc); the lambda vectors of the copy are zero."""
    folded = copy_model(model)
    for layer in folded.layers:
        if not isinstance(layer, L.EmbBERTBlock):
            continue
        lambda1, lambda2 = (float(v) for v in layer.combine.lambdas())
        for dense, factor in (
            (layer.attention.output_dense, lambda1),
            (layer.conv_branch.contract, lambda2),
        ):
            dense.set_weights([w * np.float32(factor) for w in dense.get_weights()])
        layer.combine.set_weights([np.zeros_like(w) for w in layer.combine.get_weights()])
    return folded


def export_rewrites(model: keras.Model) -> keras.Model:
    """Every output-preserving rewrite, in order (today: `fold_lambdas`)."""
    return fold_lambdas(model)
