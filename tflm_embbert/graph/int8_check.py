"""The one int8-graph checker: does a .tflite run full-integer under TFLM?

`check_int8_graph` raises a one-line ValueError naming the first op that would not run as int8
under TFLM (and the Keras layer it came from). Schema-only: never imports TensorFlow.
"""

from __future__ import annotations

from tflm_embbert.graph.flatbuffer import FLOAT_TYPES, TFLiteReport, inspect_tflite

# Builtin ops that TFLM (tflite-micro) runs with int8 tensors (int32 for indices/biases), each
# exercised under the TFLM host runtime by this project's models (tests/test_qat_convert_tflm.py)
# or a pure shape/copy op. Not exhaustive: TFLM registers more ops (see the runtime's
# Register_* list), but several are float-only (SQRT, SQUARE, LOG, EXP, GELU is not registered at
# all); add an op here only after running it in int8 under tflite_micro.runtime.
TFLM_INT8_OPS = frozenset(
    {
        # arithmetic and matmuls
        "ADD",
        "SUB",
        "MUL",
        "SQUARED_DIFFERENCE",
        "MINIMUM",
        "MAXIMUM",
        "RSQRT",
        "FULLY_CONNECTED",
        "BATCH_MATMUL",
        "CONV_2D",
        "DEPTHWISE_CONV_2D",
        # reductions, activations
        "MEAN",
        "SUM",
        "REDUCE_MIN",
        "SOFTMAX",
        "LOGISTIC",
        "RELU",
        # indexing and shapes
        "GATHER",
        "PAD",
        "STRIDED_SLICE",
        "RESHAPE",
        "TRANSPOSE",
        "CONCATENATION",  # lean_graph joins row chunks (tests/test_lean_graph.py)
        # lean_graph's mask bias: int8 keep != zero point -> bool, then a per-key int8 bias
        "NOT_EQUAL",
        "SELECT_V2",
        "EXPAND_DIMS",
        "SQUEEZE",
    }
)


def check_int8_graph(model_bytes: bytes, allowed_ops=TFLM_INT8_OPS) -> TFLiteReport:
    """Raises ValueError (one line) at the first op that would not run full-integer under TFLM:
    a custom/Flex op, an op outside `allowed_ops`, QUANTIZE/DEQUANTIZE (float or requantization
    inside the graph), or a float tensor. Returns the report when the graph passes."""
    report = inspect_tflite(model_bytes)
    allowed = frozenset(allowed_ops)

    def where(op):
        layer = report.layer_of(op)
        return f"op #{op.index} {op.name}" + (f" (Keras layer {layer!r})" if layer else "")

    for op in report.ops:
        if op.custom:
            kind = "Flex (TensorFlow) op" if op.name.startswith("Flex") else "custom op"
            raise ValueError(f"int8 check: {where(op)} is a {kind}; TFLM runs builtin ops only")
        if op.name in ("QUANTIZE", "DEQUANTIZE"):
            raise ValueError(
                f"int8 check: {where(op)} inside the graph: part of the model is not int8"
            )
        if op.name not in allowed:
            raise ValueError(
                f"int8 check: {where(op)} is not in the allowed TFLM int8 op set "
                f"({op.name} has no int8 kernel in TFLM or is not verified here)"
            )
        for index in op.inputs + op.outputs:
            if index >= 0 and report.tensors[index].dtype in FLOAT_TYPES:
                tensor = report.tensors[index]
                raise ValueError(
                    f"int8 check: {where(op)} uses {tensor.dtype} tensor {tensor.name!r}"
                )
    for tensor in report.inputs + report.outputs:
        if tensor.dtype in FLOAT_TYPES:
            raise ValueError(f"int8 check: graph input/output {tensor.name!r} is {tensor.dtype}")
    return report
