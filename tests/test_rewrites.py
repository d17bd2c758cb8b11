"""Export-time rewrites keep the float outputs of a classifier unchanged."""

import numpy as np

from keras_models import layers as L
from keras_models.backend import keras
from keras_models.models import build_classifier
from tests.conftest import tiny_config
from tflm_embbert.convert import inspect_tflite, to_int8_tflite
from tflm_embbert.rewrites import export_rewrites, fold_lambdas


def _inputs(n=8, seq_len=16, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(5, 120, (n, seq_len)).astype(np.int32)
    token_ids[:, 0] = 2
    token_ids[n // 2 :, 10:] = 0  # some padded rows
    return {"token_ids": token_ids, "segment_ids": (token_ids > 0).astype(np.int32)}


def _model_with_large_lambdas():
    keras.utils.set_random_seed(3)
    model = build_classifier(tiny_config(), 3)
    rng = np.random.default_rng(1)
    for layer in model.layers:
        if isinstance(layer, L.EmbBERTBlock):
            layer.combine.set_weights(
                [rng.normal(0, 0.8, w.shape).astype(np.float32)
                 for w in layer.combine.get_weights()]
            )
    return model


def test_fold_lambdas_leaves_float_outputs_unchanged():
    model = _model_with_large_lambdas()
    before = model.get_weights()
    lambdas = [
        [float(v) for v in layer.combine.lambdas()]
        for layer in model.layers if isinstance(layer, L.EmbBERTBlock)
    ]
    assert any(abs(value - 1.0) > 0.2 for pair in lambdas for value in pair)  # a real fold
    folded = fold_lambdas(model)
    x = _inputs()
    expected = model.predict(x, verbose=0)
    # float32 round-off only: within 1e-5 of the logits' scale
    np.testing.assert_allclose(folded.predict(x, verbose=0), expected, rtol=0,
                               atol=1e-5 * np.abs(expected).max())
    for layer in folded.layers:
        if isinstance(layer, L.EmbBERTBlock):
            assert all(not w.any() for w in layer.combine.get_weights())
            assert [float(v) for v in layer.combine.lambdas()] == [1.0, 1.0]
    for original, kept in zip(before, model.get_weights(), strict=True):  # input untouched
        np.testing.assert_array_equal(original, kept)


def test_export_rewrites_are_identity_for_models_without_lambdas():
    model = build_classifier(tiny_config(arch="embedder", num_layers=0, kernel_size=3,
                                         pooling="rms"), 2)
    x = _inputs()
    np.testing.assert_array_equal(export_rewrites(model).predict(x, verbose=0),
                                  model.predict(x, verbose=0))


def test_folded_int8_graph_has_no_lambda_multiplies():
    """After folding, the block ends FC(attention) - FC(conv) with no MUL by a lambda, and the
    int8 graph is no larger than the converter's own fold of the unfolded model."""
    model = _model_with_large_lambdas()
    x = _inputs(16)
    folded = inspect_tflite(to_int8_tflite(fold_lambdas(model), 16, x))
    unfolded = inspect_tflite(to_int8_tflite(model, 16, x))
    assert folded.op_counts == unfolded.op_counts
    for op in folded.ops:
        if op.name == "SUB":
            producers = [o.name for o in folded.ops if set(o.outputs) & set(op.inputs)]
            if "FULLY_CONNECTED" in producers:
                assert producers == ["FULLY_CONNECTED", "FULLY_CONNECTED"]
