"""Reading and writing .tflite flatbuffers (the object API of TFLM's schema), written compactly.

`serialize(model)` writes a ModelT so that TFLM reads exactly the same model in fewer bytes:
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

import flatbuffers
import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb


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
