"""Export-time rewrites of a trained Keras classifier that keep its float outputs unchanged.

`fold_constants`: an EmbBERT block computes exp(<lq1, lk1>) * (A x Wo + bo)
- exp(<lq2, lk2>) * (s Wc + bc). After training the two factors are constants, so they move
into Wo/bo and Wc/bc, and the block is rebuilt in its `folded=True` form (no lambda weights, no
lambda multiplies; same outputs up to float round-off). The converter would fuse these
multiplies into the FULLY_CONNECTED ops itself; folding first makes the Keras graph that QAT
trains have the int8 graph's structure: QAT fake-quantizes Wo * lambda1 and Wc * lambda2, the
kernels the int8 model holds, with the lambdas fixed. (The query's 1/sqrt(d) stays a multiply
in Keras, where moving it into Wq would change how AdamW trains Wq during QAT; the converter
fuses it into Wq/bq.) Measured: the converter stores the kernels of the 3-D Dense layers per
channel either way, re-quantizing QAT's per-tensor grid (each channel's scale <= the tensor's;
the 2-D head keeps its per-tensor scale).

`export_rewrites(model)` applies every rewrite and returns the rewritten copy.
"""

from __future__ import annotations

import numpy as np

from keras_models import layers as L
from keras_models.backend import keras


def _scaled(layer, factor: float) -> list:
    return [w * np.float32(factor) for w in layer.get_weights()]


def fold_constants(model: keras.Model) -> keras.Model:
    """A copy of `model` with every EmbBERTBlock folded (see the module docstring)."""

    def clone(layer):
        config = layer.get_config()
        if isinstance(layer, L.EmbBERTBlock):
            config = {**config, "folded": True}
        return layer.__class__.from_config(config)

    folded = keras.models.clone_model(model, clone_function=clone)
    for old in model.layers:
        new = folded.get_layer(old.name)
        if not isinstance(old, L.EmbBERTBlock) or old.folded:
            new.set_weights(old.get_weights())
            continue
        lambda1, lambda2 = (float(v) for v in old.combine.lambdas())
        new.attention.query_dense.set_weights(old.attention.query_dense.get_weights())
        new.attention.output_dense.set_weights(_scaled(old.attention.output_dense, lambda1))
        new.conv_branch.conv.set_weights(old.conv_branch.conv.get_weights())
        new.conv_branch.contract.set_weights(_scaled(old.conv_branch.contract, lambda2))
    return folded


def export_rewrites(model: keras.Model) -> keras.Model:
    """Every output-preserving rewrite, in order (today: `fold_constants`)."""
    return fold_constants(model)


def trained_parameters(model: keras.Model) -> int:
    """Trainable parameters of the model as trained: a folded block (also inside a QAT wrapper)
    counts the four lambda vectors that now live in its Dense weights, so a folded model reports
    the preset's count (357,248 for `embbert`'s backbone)."""
    count = sum(int(np.prod(w.shape)) for w in model.trainable_weights)
    for layer in model.layers:
        block = getattr(layer, "layer", layer)  # a QAT wrapper's inner layer
        if isinstance(block, L.EmbBERTBlock) and block.folded:
            count += 4 * block.hidden_dim
    return count
