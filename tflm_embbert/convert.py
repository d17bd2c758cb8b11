"""Full-integer TFLite conversion for TFLM, and checks that the result really is full-integer.

`to_int8_tflite` converts a classifier (float or QAT) with the batch fixed to 1: int32 token/segment
ids in, int8 logits out, int8 weights and activations inside. `inspect_tflite` reads a flatbuffer
(op counts, tensor dtypes, input/output quantization) without running it; `check_int8_graph`
raises a one-line ValueError naming the first op that would not run as int8 under TFLM.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

from keras_models.backend import keras, tf

INPUT_NAMES = ("token_ids", "segment_ids")

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

# Ops whose output row i depends only on row i of their inputs (element-wise, with broadcasting;
# SOFTMAX over the last axis), and reductions that lean_graph accepts when they reduce the last
# axis only. macs counts both as element-wise work.
ELEMENTWISE_OPS = frozenset(
    {
        "ADD",
        "SUB",
        "MUL",
        "MINIMUM",
        "MAXIMUM",
        "SQUARED_DIFFERENCE",
        "LOGISTIC",
        "RSQRT",
        "RELU",
        "SOFTMAX",
    }
)
REDUCTION_OPS = frozenset({"MEAN", "SUM", "REDUCE_MIN", "REDUCE_MAX"})

_DTYPE_BYTES = {
    "INT8": 1,
    "UINT8": 1,
    "BOOL": 1,
    "INT16": 2,
    "FLOAT16": 2,
    "INT64": 8,
    "FLOAT64": 8,
}
_FLOAT_TYPES = {"FLOAT16", "FLOAT32", "FLOAT64", "BFLOAT16"}
_TENSOR_TYPES = {v: k for k, v in vars(schema_fb.TensorType).items() if not k.startswith("_")}
_BUILTIN_OPS = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}


def to_int8_tflite(
    model: keras.Model,
    seq_len: int,
    representative_inputs: dict,
    max_calibration_examples: int = 200,
    per_channel_dense: bool = True,
) -> bytes:
    """Full-integer .tflite of a classifier taking int32 token_ids/segment_ids of shape (1, L).

    `representative_inputs` ({"token_ids": (n, L) int32, "segment_ids": (n, L) int32}, drawn from
    the training data) calibrates the ranges of tensors without a QAT fake-quant; a QAT model keeps
    its trained ranges. Output: int8 logits (scale and zero point in `inspect_tflite(...).outputs`).
    per_channel_dense=False keeps one weight scale per Dense kernel (QAT's own grid) instead of
    the converter's per-channel re-quantization; TFLM then needs no per-channel multiplier arrays
    for FULLY_CONNECTED, which matters when `lean_graph` repeats an FC per row chunk.
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


@dataclass
class TensorInfo:
    index: int
    name: str
    dtype: str
    shape: tuple
    scale: float | None = None  # first scale of a quantized tensor (per-channel: see scales)
    zero_point: int | None = None
    scales: list = field(default_factory=list)
    constant: bool = False  # holds data in the flatbuffer (weights, biases, tables)

    @property
    def nbytes(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64)) * _DTYPE_BYTES.get(self.dtype, 4)


@dataclass
class OpInfo:
    index: int
    name: str  # builtin name, or the custom code for a custom/Flex op
    custom: bool
    inputs: list  # tensor indices (-1: optional input absent)
    outputs: list
    options: object = None  # the builtin options table (object API), e.g. BatchMatMulOptionsT


@dataclass
class TFLiteReport:
    size_bytes: int
    ops: list  # OpInfo in execution order
    tensors: list  # TensorInfo by index
    inputs: list  # TensorInfo of the subgraph inputs
    outputs: list

    @property
    def op_counts(self) -> dict:
        return dict(Counter(op.name for op in self.ops))

    @property
    def tensor_dtypes(self) -> dict:
        return dict(Counter(t.dtype for t in self.tensors))

    def layer_of(self, op: OpInfo) -> str | None:
        """The Keras layer an op came from, read from tensor names: its outputs', else (for a
        converter-made tensor such as "tfl.dequantize") its consumers', else its inputs'."""
        consumers = [other for other in self.ops if set(other.inputs) & set(op.outputs)]
        candidates = op.outputs + [t for c in consumers for t in c.outputs] + op.inputs
        for index in candidates:
            if index >= 0:
                layer = layer_from_tensor_name(self.tensors[index].name)
                if layer:
                    return layer
        return None

    def summary(self) -> str:
        ops = ", ".join(f"{name} x{n}" for name, n in sorted(self.op_counts.items()))
        io = "; ".join(
            f"{kind} {t.name} {t.dtype}{list(t.shape)}"
            + (f" scale={t.scale:.6g} zp={t.zero_point}" if t.scale else "")
            for kind, group in (("in", self.inputs), ("out", self.outputs))
            for t in group
        )
        return f"{self.size_bytes} bytes; ops: {ops}; {io}"


def layer_from_tensor_name(name: str) -> str | None:
    """'qat_model/quant_block_0/attention/MatMul;...' -> 'block_0' (the functional layer name)."""
    parts = name.split(";")[0].split("/")
    if len(parts) < 3:  # inputs ("serving_default_token_ids:0"), converter constants
        return None
    return re.sub(r"^quant_", "", parts[1]) or None


def inspect_tflite(model_bytes: bytes, subgraph: int | None = None) -> TFLiteReport:
    """Op list, tensors (dtype, shape, quantization) and the graph's inputs/outputs.

    subgraph=None: the model must have exactly one subgraph; an index reads that subgraph of a
    model with several (e.g. length buckets)."""
    model = schema_fb.ModelT.InitFromObj(schema_fb.Model.GetRootAsModel(model_bytes, 0))
    if subgraph is None:
        if len(model.subgraphs) != 1:
            raise ValueError(f"expected one subgraph, got {len(model.subgraphs)}")
        subgraph = 0
    if not 0 <= subgraph < len(model.subgraphs):
        raise ValueError(f"subgraph {subgraph}: the model has {len(model.subgraphs)} subgraphs")
    graph = model.subgraphs[subgraph]
    tensors = []
    for i, tensor in enumerate(graph.tensors):
        quant = tensor.quantization
        scales = list(quant.scale) if quant is not None and quant.scale is not None else []
        zeros = list(quant.zeroPoint) if quant is not None and quant.zeroPoint is not None else []
        tensors.append(
            TensorInfo(
                index=i,
                name=tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name),
                dtype=_TENSOR_TYPES.get(tensor.type, str(tensor.type)),
                shape=tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ())),
                scale=float(scales[0]) if scales else None,
                zero_point=int(zeros[0]) if zeros else None,
                scales=[float(s) for s in scales],
                constant=_has_data(model, tensor.buffer),
            )
        )
    ops = []
    for i, op in enumerate(graph.operators or []):
        code = model.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        custom = builtin == schema_fb.BuiltinOperator.CUSTOM
        name = (
            (
                code.customCode.decode()
                if isinstance(code.customCode, bytes)
                else str(code.customCode)
            )
            if custom
            else _BUILTIN_OPS.get(builtin, str(builtin))
        )
        ops.append(
            OpInfo(
                i,
                name,
                custom,
                [int(t) for t in op.inputs],
                [int(t) for t in op.outputs],
                op.builtinOptions,
            )
        )
    return TFLiteReport(
        size_bytes=len(model_bytes),
        ops=ops,
        tensors=tensors,
        inputs=[tensors[i] for i in graph.inputs],
        outputs=[tensors[i] for i in graph.outputs],
    )


def _has_data(model, buffer_index: int) -> bool:
    if not buffer_index or buffer_index >= len(model.buffers):
        return False
    buffer = model.buffers[buffer_index]
    return (buffer.data is not None and len(buffer.data) > 0) or bool(buffer.size)


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
            if index >= 0 and report.tensors[index].dtype in _FLOAT_TYPES:
                tensor = report.tensors[index]
                raise ValueError(
                    f"int8 check: {where(op)} uses {tensor.dtype} tensor {tensor.name!r}"
                )
    for tensor in report.inputs + report.outputs:
        if tensor.dtype in _FLOAT_TYPES:
            raise ValueError(f"int8 check: graph input/output {tensor.name!r} is {tensor.dtype}")
    return report
