"""The one flatbuffer toolkit: reading and compact writing of .tflite files, with TFLM's schema
only (never TensorFlow).

Reading: `inspect_tflite(model_bytes)` gives the op list, tensors (dtype, shape, quantization) and
the graph's inputs/outputs as a `TFLiteReport`; `load_model` gives the schema's object API (ModelT)
for rewriting; `builtin_name` / `BUILTIN_CODES` map op codes and names.

Writing: `serialize(model)` writes a ModelT so that TFLM reads exactly the same model in fewer
bytes:
- every identical table (tensor, quantization parameters, operator, builtin options) and every
  identical vector and string is written once and pointed to from every place that uses it (a
  flatbuffer may point to one table from many places; TFLM only reads through offsets);
- tensors without data all point to the empty sentinel buffer 0 (the converter gives every
  activation an empty buffer of its own), buffers with the same bytes become one, and buffers
  no tensor or metadata entry points to are dropped;
- every buffer's data starts on a 16-byte boundary, as the converter writes it;
- `strip_names=True` also drops the names of every tensor other than the subgraph inputs and
  outputs (TFLM never reads them; the runtime matches inputs by name).

`model` itself is never modified.
"""

from __future__ import annotations

import copy
import re
from collections import Counter
from dataclasses import dataclass, field

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

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
FLOAT_TYPES = {"FLOAT16", "FLOAT32", "FLOAT64", "BFLOAT16"}
_TENSOR_TYPES = {v: k for k, v in vars(schema_fb.TensorType).items() if not k.startswith("_")}
BUILTIN_NAMES = {v: k for k, v in vars(schema_fb.BuiltinOperator).items() if not k.startswith("_")}
BUILTIN_CODES = {name: code for code, name in BUILTIN_NAMES.items()}


def load_model(model_bytes: bytes) -> schema_fb.ModelT:
    return schema_fb.ModelT.InitFromObj(schema_fb.Model.GetRootAsModel(model_bytes, 0))


def data_of(buffer) -> bytes | None:
    """The buffer's bytes, or None for an empty buffer."""
    data = buffer.data
    return bytes(np.asarray(data, np.uint8)) if data is not None and len(data) else None


def op_code_index(model: schema_fb.ModelT, builtin: int) -> int:
    """Index of the builtin op's entry in model.operatorCodes (appended when missing)."""
    for index, code in enumerate(model.operatorCodes):
        if max(code.builtinCode, code.deprecatedBuiltinCode) == builtin:
            return index
    code = schema_fb.OperatorCodeT()
    code.builtinCode, code.deprecatedBuiltinCode, code.version = builtin, min(builtin, 127), 1
    model.operatorCodes.append(code)
    return len(model.operatorCodes) - 1


def serialize(model: schema_fb.ModelT, strip_names: bool = False) -> bytes:
    """ModelT -> .tflite bytes, written compactly (module doc)."""
    buffers = CompactBuffers(model)
    builder = SharingBuilder(1 << 20)
    builder.Finish(shared_model(model, buffers, strip_names).Pack(builder), b"TFL3")
    return bytes(builder.Output())


def rewrite_compactly(model_bytes: bytes, strip_names: bool = True) -> bytes:
    """The same model, re-written by `serialize` (by default without inner tensor names)."""
    return serialize(load_model(model_bytes), strip_names)


class CompactBuffers:
    """The buffer list `serialize` writes for a model: the sentinel, then one buffer per distinct
    content that a tensor or a metadata entry points to (in first-use order). `extra_metadata`:
    more MetadataT entries (pointing into model.buffers) whose buffers must be kept."""

    def __init__(self, model: schema_fb.ModelT, extra_metadata=()):
        if data_of(model.buffers[0]) is not None:
            raise ValueError("buffer 0 of the model is not the empty sentinel buffer")
        self.remap: dict[int, int] = {}
        contents: dict[bytes, int] = {}
        self.buffers = [_Shared(schema_fb.BufferT())]
        users = [int(t.buffer) for graph in model.subgraphs for t in graph.tensors]
        users += [int(m.buffer) for m in list(model.metadata or []) + list(extra_metadata)]
        for index in users:
            if index in self.remap:
                continue
            data = data_of(model.buffers[index]) if 0 < index < len(model.buffers) else None
            if data is None:
                self.remap[index] = 0
                continue
            if data not in contents:
                contents[data] = len(self.buffers)
                self.buffers.append(_AlignedBuffer(data))
            self.remap[index] = contents[data]

    def metadata(self, entries):
        out = []
        for entry in entries or []:
            entry = copy.copy(entry)
            entry.buffer = self.remap[int(entry.buffer)]
            out.append(entry)
        return out or None


def shared_model(
    model: schema_fb.ModelT, buffers: CompactBuffers, strip_names: bool = False
) -> schema_fb.ModelT:
    """A shallow copy of `model` ready for `Pack` with a SharingBuilder: `buffers`' list, tensors
    pointing into it, every table wrapped to be written once."""
    model = copy.copy(model)
    model.subgraphs = [_shared_subgraph(g, buffers.remap, strip_names) for g in model.subgraphs]
    model.metadata = buffers.metadata(model.metadata)
    model.buffers = buffers.buffers
    return model


class SharingBuilder(flatbuffers.Builder):
    """A builder that writes each distinct string, vector and `_Shared` table once."""

    def __init__(self, size: int):
        super().__init__(size)
        self.tables: dict = {}
        self.strings: dict = {}
        self.vectors: dict = {}

    def CreateString(self, s, encoding="utf-8", errors="strict"):  # noqa: N802 (flatbuffers API)
        key = s if isinstance(s, bytes) else s.encode(encoding, errors)
        if key not in self.strings:
            self.strings[key] = super().CreateString(key)
        return self.strings[key]

    def CreateNumpyVector(self, x):  # noqa: N802 (flatbuffers API)
        key = (x.dtype.str, x.tobytes())
        if key not in self.vectors:
            self.vectors[key] = super().CreateNumpyVector(x)
        return self.vectors[key]


class _Shared:
    """Wraps an object-API table: `Pack` writes it once per distinct content and returns the same
    offset for every copy (content = its bytes packed alone)."""

    def __init__(self, table):
        self.table = table

    def Pack(self, builder):  # noqa: N802 (flatbuffers object API)
        alone = SharingBuilder(256)
        alone.Finish(self.table.Pack(alone))
        key = (type(self.table).__name__, bytes(alone.Output()))
        if key not in builder.tables:
            builder.tables[key] = self.table.Pack(builder)
        return builder.tables[key]


class _AlignedBuffer:
    """A Buffer table whose data vector starts on a 16-byte boundary (TFLite's force_align)."""

    def __init__(self, data: bytes):
        self.data = data

    def Pack(self, builder):  # noqa: N802 (flatbuffers object API)
        key = ("buffer", id(self))
        if key not in builder.tables:
            builder.tables[key] = self._pack(builder)
        return builder.tables[key]

    def _pack(self, builder):
        builder.StartVector(1, len(self.data), 16)
        builder.head -= len(self.data)
        builder.Bytes[builder.head : builder.head + len(self.data)] = self.data
        data = builder.EndVector()
        schema_fb.BufferStart(builder)
        schema_fb.BufferAddData(builder, data)
        return schema_fb.BufferEnd(builder)


def _shared_subgraph(graph, remap: dict, strip_names: bool):
    graph = copy.copy(graph)
    named = {int(i) for i in graph.inputs} | {int(i) for i in graph.outputs}
    tensors = []
    for index, tensor in enumerate(graph.tensors):
        tensor = copy.copy(tensor)
        tensor.buffer = remap[int(tensor.buffer)]
        if strip_names and index not in named:
            tensor.name = None
        if tensor.quantization is not None:
            tensor.quantization = _Shared(tensor.quantization)
        tensors.append(_Shared(tensor))
    graph.tensors = tensors
    operators = []
    for op in graph.operators:
        op = copy.copy(op)
        if op.builtinOptions is not None:
            op.builtinOptions = _Shared(op.builtinOptions)
        operators.append(_Shared(op))
    graph.operators = operators
    return graph


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
            else BUILTIN_NAMES.get(builtin, str(builtin))
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


def builtin_code(model: schema_fb.ModelT, op) -> int:
    """The builtin operator code of `op` (an OperatorT of `model`)."""
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def builtin_name(model: schema_fb.ModelT, op) -> str:
    """'FULLY_CONNECTED', ... for a builtin op; the custom code for a custom op."""
    return BUILTIN_NAMES.get(builtin_code(model, op), str(builtin_code(model, op)))


# ---- editing helpers: tensors, constants, operators of a ModelT -------------------------------

_NUMPY_TYPES = {
    schema_fb.TensorType.INT8: np.int8,
    schema_fb.TensorType.UINT8: np.uint8,
    schema_fb.TensorType.INT16: np.int16,
    schema_fb.TensorType.INT32: np.int32,
    schema_fb.TensorType.INT64: np.int64,
    schema_fb.TensorType.BOOL: np.bool_,
    schema_fb.TensorType.FLOAT32: np.float32,
}


def tensor_name(tensor) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def tensor_shape(tensor) -> tuple:
    return tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))


def constant_bytes(model: schema_fb.ModelT, tensor) -> bytes | None:
    """The constant's bytes, or None for a tensor TFLM allocates in the arena."""
    if not tensor.buffer or tensor.buffer >= len(model.buffers):
        return None
    return data_of(model.buffers[tensor.buffer])


def constant_array(model: schema_fb.ModelT, tensor) -> np.ndarray:
    dtype = _NUMPY_TYPES.get(tensor.type)
    if dtype is None:
        raise ValueError(f"tensor {tensor_name(tensor)!r}: unsupported constant type {tensor.type}")
    return np.frombuffer(constant_bytes(model, tensor), dtype).reshape(tensor_shape(tensor))


def is_quantized(tensor) -> bool:
    quant = tensor.quantization
    return quant is not None and quant.scale is not None and len(quant.scale) > 0


def same_quantization(a, b) -> bool:
    def key(tensor):
        if not is_quantized(tensor):
            return None
        q = tensor.quantization
        return (list(np.asarray(q.scale, np.float64)), list(np.asarray(q.zeroPoint, np.int64)))

    return key(a) == key(b)


class BufferTable:
    """The model's buffer list with content de-duplication for the buffers it adds (`add`)."""

    def __init__(self, model: schema_fb.ModelT):
        self.model = model
        if data_of(model.buffers[0]) is not None:
            raise ValueError("buffer 0 of the model is not the empty sentinel buffer")
        self.index = {}
        for i, buffer in enumerate(model.buffers):
            data = data_of(buffer)
            if data is not None:
                self.index.setdefault(data, i)

    def add(self, data: bytes) -> int:
        if data not in self.index:
            buffer = schema_fb.BufferT()
            buffer.data = np.frombuffer(data, np.uint8).copy()
            self.model.buffers.append(buffer)
            self.index[data] = len(self.model.buffers) - 1
        return self.index[data]


def new_tensor(name: str, tensor_type: int, shape, buffer: int = 0, like=None):
    tensor = copy.deepcopy(like) if like is not None else schema_fb.TensorT()
    tensor.name = name.encode()
    tensor.type = tensor_type
    tensor.shape = np.asarray(shape, np.int32)
    tensor.shapeSignature = None
    tensor.buffer = buffer
    return tensor


def add_int32_constant(graph, buffers: BufferTable, name: str, values) -> int:
    array = np.asarray(values, np.int32)
    graph.tensors.append(
        new_tensor(name, schema_fb.TensorType.INT32, array.shape, buffers.add(array.tobytes()))
    )
    return len(graph.tensors) - 1


def new_operator(model, builtin: int, inputs, outputs, options_type=0, options=None):
    op = schema_fb.OperatorT()
    op.opcodeIndex = op_code_index(model, builtin)
    op.inputs = np.asarray(inputs, np.int32)
    op.outputs = np.asarray(outputs, np.int32)
    op.builtinOptionsType, op.builtinOptions = options_type, options
    return op
