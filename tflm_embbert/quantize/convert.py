"""Full-integer TFLite conversion for TFLM.

`to_int8_tflite` converts a classifier (float or QAT) with the batch fixed to 1: int32 token/segment
ids in, int8 logits out, int8 weights and activations inside. Reading and checking the result is
the graph stage's job (`tflm_embbert.graph.flatbuffer.inspect_tflite`,
`tflm_embbert.graph.int8_check.check_int8_graph`).
"""

from __future__ import annotations

import numpy as np

from keras_models.backend import keras, tf

INPUT_NAMES = ("token_ids", "segment_ids")


def to_int8_tflite(
    model: keras.Model,
    seq_len: int,
    representative_inputs: dict,
    max_calibration_examples: int = 200,
    per_channel_dense: bool = False,
) -> bytes:
    """Full-integer .tflite of a classifier taking int32 token_ids/segment_ids of shape (1, L).

    `representative_inputs` ({"token_ids": (n, L) int32, "segment_ids": (n, L) int32}, drawn from
    the training data) calibrates the ranges of tensors without a QAT fake-quant; a QAT model keeps
    its trained ranges. Output: int8 logits (scale and zero point in `inspect_tflite(...).outputs`).
    per_channel_dense=False (the default, as in the export) keeps one weight scale per Dense
    kernel (QAT's own grid) instead of the converter's per-channel re-quantization; TFLM then
    needs no per-channel multiplier arrays for FULLY_CONNECTED, which matters when `lean_graph`
    repeats an FC per row chunk.
    """
    arrays = _check_inputs(representative_inputs, seq_len)
    count = min(len(arrays["token_ids"]), max_calibration_examples)
    specs = [tf.TensorSpec([1, seq_len], tf.int32, name=name) for name in INPUT_NAMES]

    @tf.function(input_signature=specs)
    def serve(token_ids, segment_ids):
        return model({"token_ids": token_ids, "segment_ids": segment_ids}, training=False)

    def representative_dataset():
        for i in range(count):
            yield {name: arrays[name][i : i + 1] for name in INPUT_NAMES}

    converter = tf.lite.TFLiteConverter.from_concrete_functions(
        [serve.get_concrete_function()], model
    )
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = representative_dataset
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_output_type = tf.int8  # ids stay int32 whatever the input type says
    converter._experimental_disable_per_channel_quantization_for_dense_layers = not (
        per_channel_dense
    )
    try:
        return bytes(converter.convert())
    except Exception as error:  # many lines of MLIR, or none (the reason went to stderr)
        lines = [line.strip() for line in str(error).splitlines() if "error" in line.lower()]
        reason = lines[0] if lines else str(error).strip().split("\n")[0]
        reason = reason or f"{type(error).__name__} (the converter logged its reason above)"
        raise ValueError(f"int8 conversion failed: {reason}") from error


def _check_inputs(inputs: dict, seq_len: int) -> dict:
    missing = [name for name in INPUT_NAMES if name not in inputs]
    if missing:
        raise ValueError(f"representative_inputs: missing {missing}; expected {list(INPUT_NAMES)}")
    arrays = {name: np.asarray(inputs[name]) for name in INPUT_NAMES}
    for name, array in arrays.items():
        if array.ndim != 2 or array.shape[1] != seq_len or array.dtype.kind not in "iu":
            raise ValueError(
                f"representative_inputs[{name!r}]: expected integer (n, {seq_len}), "
                f"got {array.dtype} {array.shape}"
            )
        arrays[name] = array.astype(np.int32)
    return arrays
