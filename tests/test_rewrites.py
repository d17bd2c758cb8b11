"""Export-time rewrites keep the float outputs of a classifier unchanged."""

import numpy as np

from keras_models import layers as L
from keras_models.backend import keras, tf
from keras_models.models import build_classifier
from tests.conftest import tiny_config
from tflm_embbert.graph.flatbuffer import inspect_tflite
from tflm_embbert.graph.int8_check import check_int8_graph
from tflm_embbert.quantize.convert import to_int8_tflite
from tflm_embbert.quantize.qat import quantize_model
from tflm_embbert.quantize.rewrites import export_rewrites, fold_constants, trained_parameters


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


def test_fold_constants_leaves_float_outputs_unchanged():
    model = _model_with_large_lambdas()
    before = model.get_weights()
    lambdas = [
        [float(v) for v in layer.combine.lambdas()]
        for layer in model.layers if isinstance(layer, L.EmbBERTBlock)
    ]
    assert any(abs(value - 1.0) > 0.2 for pair in lambdas for value in pair)  # a real fold
    folded = fold_constants(model)
    x = _inputs()
    expected = model.predict(x, verbose=0)
    # float32 round-off only: within 1e-5 of the logits' scale
    np.testing.assert_allclose(folded.predict(x, verbose=0), expected, rtol=0,
                               atol=1e-5 * np.abs(expected).max())
    blocks = [layer for layer in folded.layers if isinstance(layer, L.EmbBERTBlock)]
    assert blocks and all(block.folded and not block.combine.weights for block in blocks)
    assert len(folded.weights) == len(model.weights) - 4 * len(blocks)  # the lambda vectors
    assert trained_parameters(folded) == trained_parameters(model) == model.count_params()
    for original, kept in zip(before, model.get_weights(), strict=True):  # input untouched
        np.testing.assert_array_equal(original, kept)


def test_export_rewrites_are_identity_for_models_without_lambdas():
    model = build_classifier(tiny_config(arch="embedder", num_layers=0, kernel_size=3,
                                         pooling="rms"), 2)
    x = _inputs()
    np.testing.assert_array_equal(export_rewrites(model).predict(x, verbose=0),
                                  model.predict(x, verbose=0))


def test_folding_removes_the_multiplies_and_changes_no_int8_op():
    """Folded, the block has no lambda multiplies left in Keras; the converter had
    fused them into the FULLY_CONNECTED ops anyway, so the int8 op list is the same."""
    x = _inputs(16)
    model = _model_with_large_lambdas()
    folded = fold_constants(model)
    for qat_model in (quantize_model(model, x), quantize_model(folded, x)):
        assert check_int8_graph(to_int8_tflite(qat_model, 16, x))
    unfolded_ops = inspect_tflite(to_int8_tflite(model, 16, x)).op_counts
    folded_ops = inspect_tflite(to_int8_tflite(folded, 16, x)).op_counts
    assert folded_ops == unfolded_ops

    def multiplies(keras_model):
        graph = tf.function(keras_model).get_concrete_function(
            {k: tf.TensorSpec([1, 16], tf.int32) for k in x}).graph
        return sum(op.type == "Mul" for op in graph.get_operations() if "block_" in op.name)

    # per block, 4 fewer: <lq1, lk1> and <lq2, lk2>, lambda1 * attention, lambda2 * conv branch
    # (2 blocks in the tiny config)
    assert multiplies(model) - multiplies(folded) == 4 * 2


def test_converter_stores_3d_dense_kernels_per_channel_after_qat():
    """Pins what the rewrites docstring says: QAT fake-quantizes kernels per tensor, yet with
    per_channel_dense=True (not the default since the export's choice became it) the converter
    stores the (3-D input) Dense kernels of the blocks and the embedder's projection per
    channel; the 2-D head keeps one scale."""
    x = _inputs(16)
    report = inspect_tflite(to_int8_tflite(quantize_model(fold_constants(
        _model_with_large_lambdas()), x), 16, x, per_channel_dense=True))
    scales = {}
    for op in report.ops:
        if op.name == "FULLY_CONNECTED":
            kind = report.layer_of(op).split("_")[0]
            scales.setdefault(kind, set()).add(len(report.tensors[op.inputs[1]].scales))
    # The head's FC is named after its input (cls_token): its output is the graph output.
    assert scales == {"embedder": {16}, "block": {16}, "cls": {1}}
