"""Length buckets: one .tflite that runs the shortest sequence length holding the input.

Padded keys are masked and EmbBERT's conv branch is causal, so the [CLS] output for n real tokens
does not depend on the positions after n: a graph at length Lb < Lmax that computes exactly what the
full-length graph computes on its first Lb positions gives the same logits for every input of at
most Lb tokens, at a fraction of the MACs.

- `bucket_graph(full, shaped)`: the length-Lb graph made from the full-length int8 graph `full`,
  with tensor shapes (and unquantized int32 constants: RESHAPE shapes, slice bounds; op options)
  from `shaped` (the same model converted at Lb) but every quantization parameter and every
  quantized constant from `full`. A quantized constant with the length in its shape (the position
  table) becomes a prefix of the full one: it shares the full constant's buffer when the prefix is
  its first bytes (TFLM reads shape-many bytes), else a sliced copy.
- `bucketed_model(full, {Lb: shaped})`: one .tflite whose subgraphs are the buckets (the last is
  the full graph), sharing one copy of every weight buffer, with subgraph 0 a dispatcher: it takes
  the (1, Lmax) ids and, through a tree of TFLM IF ops (cond = token_ids[0, Lb] != pad: a real token
  beyond bucket Lb), runs the shortest bucket that holds the input. Each bucket slices its (1, Lmax)
  inputs to (1, Lb) with STRIDED_SLICE. The output is the full graph's int8 logits tensor.
  `bucketed_model_t` returns the flatbuffer object (ModelT) so per-subgraph rewrites can run before
  `serialize` (or pass `rewrite=`); `bucket_subgraphs` reads back which subgraph holds which length.
  TFLM prepares every subgraph at AllocateTensors: the planned arena is the largest bucket's plus
  the dispatchers' few (1, Lmax) copies, but the persistent part (kernel data, per-tensor structs,
  BATCH_MATMUL transposes) is the sum over all buckets.
- `bucket_entries(full, {Lb: shaped})`: the same buckets without a dispatcher, as one byte array
  holding a complete model per bucket (flatbuffer roots at known offsets sharing every weight
  buffer and identical table); the caller picks the bucket and gives TFLM that root, so the arena
  is the chosen bucket's alone. Each root may carry its own metadata (`root_metadata`: e.g. its
  offline memory plan). `export.buckets` builds the exported library's model array with it.
- `serialize(model)` (`flatbuffer_model`): ModelT -> bytes writing each identical table once (the
  buckets repeat most tensors, quantization parameters and names) with 16-byte aligned buffers;
  `bucket_entries` also drops inner tensor names.

Both graphs are first canonicalized in the same way: a STRIDED_SLICE that copies a constant
unchanged (the converter keeps one on the position table at some lengths and folds it at others)
is removed, its consumers read the constant. The padding is assumed at the end (pad id 0), as the
tokenizer writes it.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Mapping

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

from tflm_embbert.convert import TFLM_INT8_OPS
from tflm_embbert.flatbuffer_model import (
    CompactBuffers,
    SharingBuilder,
    load_model,
    serialize,
    shared_model,
)
from tflm_embbert.flatbuffer_model import data_of as _data_of
from tflm_embbert.flatbuffer_model import op_code_index as _op_code_index

# Ops the dispatcher subgraphs and the bucket input slices add (int32 / bool tensors): IF,
# NOT_EQUAL and int32 STRIDED_SLICE run under tflite_micro.runtime (tests/test_length_buckets.py).
DISPATCH_OPS = frozenset({"IF", "NOT_EQUAL", "STRIDED_SLICE"})
BUCKETED_OPS = TFLM_INT8_OPS | DISPATCH_OPS
METADATA_NAME = "length_buckets"  # JSON {"lengths": [...], "subgraphs": [...]} in the model
PAD_ID = 0

_OP = schema_fb.BuiltinOperator
_BUILTIN_NAMES = {v: k for k, v in vars(_OP).items() if not k.startswith("_")}
_NUMPY_TYPES = {
    schema_fb.TensorType.INT8: np.int8,
    schema_fb.TensorType.UINT8: np.uint8,
    schema_fb.TensorType.INT16: np.int16,
    schema_fb.TensorType.INT32: np.int32,
    schema_fb.TensorType.INT64: np.int64,
    schema_fb.TensorType.BOOL: np.bool_,
    schema_fb.TensorType.FLOAT32: np.float32,
}


# ----------------------------------------------------------------------------------------------
# flatbuffer helpers


def _builtin(model: schema_fb.ModelT, op) -> int:
    code = model.operatorCodes[op.opcodeIndex]
    return max(code.builtinCode, code.deprecatedBuiltinCode)


def _op_name(model: schema_fb.ModelT, op) -> str:
    return _BUILTIN_NAMES.get(_builtin(model, op), str(_builtin(model, op)))


def _name(tensor) -> str:
    return tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)


def _shape(tensor) -> tuple:
    return tuple(int(d) for d in (tensor.shape if tensor.shape is not None else ()))


def _data(model: schema_fb.ModelT, tensor) -> bytes | None:
    """The constant's bytes, or None for a tensor TFLM allocates in the arena."""
    if not tensor.buffer or tensor.buffer >= len(model.buffers):
        return None
    return _data_of(model.buffers[tensor.buffer])


def _array(model: schema_fb.ModelT, tensor) -> np.ndarray:
    dtype = _NUMPY_TYPES.get(tensor.type)
    if dtype is None:
        raise ValueError(f"tensor {_name(tensor)!r}: unsupported constant type {tensor.type}")
    return np.frombuffer(_data(model, tensor), dtype).reshape(_shape(tensor))


def _quantized(tensor) -> bool:
    quant = tensor.quantization
    return quant is not None and quant.scale is not None and len(quant.scale) > 0


def _same_quantization(a, b) -> bool:
    def key(tensor):
        if not _quantized(tensor):
            return None
        q = tensor.quantization
        return (list(np.asarray(q.scale, np.float64)), list(np.asarray(q.zeroPoint, np.int64)))

    return key(a) == key(b)


class _Buffers:
    """The model's buffer list with content de-duplication for the buffers it adds."""

    def __init__(self, model: schema_fb.ModelT):
        self.model = model
        if _data_of(model.buffers[0]) is not None:
            raise ValueError("buffer 0 of the model is not the empty sentinel buffer")
        self.index = {}
        for i, buffer in enumerate(model.buffers):
            data = _data_of(buffer)
            if data is not None:
                self.index.setdefault(data, i)

    def add(self, data: bytes) -> int:
        if data not in self.index:
            buffer = schema_fb.BufferT()
            buffer.data = np.frombuffer(data, np.uint8).copy()
            self.model.buffers.append(buffer)
            self.index[data] = len(self.model.buffers) - 1
        return self.index[data]


def _tensor(name: str, tensor_type: int, shape, buffer: int = 0, like=None):
    tensor = copy.deepcopy(like) if like is not None else schema_fb.TensorT()
    tensor.name = name.encode()
    tensor.type = tensor_type
    tensor.shape = np.asarray(shape, np.int32)
    tensor.shapeSignature = None
    tensor.buffer = buffer
    return tensor


def _constant(graph, buffers: _Buffers, name: str, values) -> int:
    array = np.asarray(values, np.int32)
    graph.tensors.append(
        _tensor(name, schema_fb.TensorType.INT32, array.shape, buffers.add(array.tobytes()))
    )
    return len(graph.tensors) - 1


def _operator(model, builtin: int, inputs, outputs, options_type=0, options=None):
    op = schema_fb.OperatorT()
    op.opcodeIndex = _op_code_index(model, builtin)
    op.inputs = np.asarray(inputs, np.int32)
    op.outputs = np.asarray(outputs, np.int32)
    op.builtinOptionsType, op.builtinOptions = options_type, options
    return op


# ----------------------------------------------------------------------------------------------
# canonical form and topology


def canonicalize(model: schema_fb.ModelT) -> schema_fb.ModelT:
    """Removes STRIDED_SLICE ops that copy a constant unchanged (same shape and quantization,
    begin 0, strides 1) and the tensors no op uses; in place, returns `model`. Exact: the removed
    op copies bytes."""
    if len(model.subgraphs) != 1:
        raise ValueError(f"expected a single-subgraph model, got {len(model.subgraphs)} subgraphs")
    graph = model.subgraphs[0]
    for op in list(graph.operators):
        if _is_identity_constant_slice(model, graph, op):
            source, target = int(op.inputs[0]), int(op.outputs[0])
            graph.operators.remove(op)
            for other in graph.operators:
                other.inputs = np.where(other.inputs == target, source, other.inputs)
    remap = _drop_unused_tensors(graph)
    for signature in model.signatureDefs or []:
        for entry in (signature.inputs or []) + (signature.outputs or []):
            entry.tensorIndex = remap[entry.tensorIndex]
    return model


def _is_identity_constant_slice(model, graph, op) -> bool:
    if _builtin(model, op) != _OP.STRIDED_SLICE:
        return False
    source, target = (graph.tensors[int(i)] for i in (op.inputs[0], op.outputs[0]))
    if _data(model, source) is None or int(op.outputs[0]) in list(graph.outputs):
        return False
    if any(_data(model, graph.tensors[int(i)]) is None for i in op.inputs[1:]):
        return False
    begin, strides = (_array(model, graph.tensors[int(i)]) for i in (op.inputs[1], op.inputs[3]))
    options = op.builtinOptions
    masks = (options.ellipsisMask, options.newAxisMask, options.shrinkAxisMask) if options else ()
    return (
        _shape(source) == _shape(target)
        and source.type == target.type
        and _same_quantization(source, target)
        and not np.any(begin)
        and np.all(strides == 1)
        and not any(masks)
    )


def _drop_unused_tensors(graph) -> dict:
    used = set(int(i) for i in graph.inputs) | set(int(i) for i in graph.outputs)
    for op in graph.operators:
        used |= {int(i) for i in op.inputs if i >= 0} | {int(i) for i in op.outputs}
        used |= {int(i) for i in (op.intermediates if op.intermediates is not None else [])}
    keep = sorted(used)
    remap = {old: new for new, old in enumerate(keep)}
    graph.tensors = [graph.tensors[i] for i in keep]

    def renumber(indices):
        return np.asarray([remap[int(i)] if i >= 0 else -1 for i in indices], np.int32)

    graph.inputs, graph.outputs = renumber(graph.inputs), renumber(graph.outputs)
    for op in graph.operators:
        op.inputs, op.outputs = renumber(op.inputs), renumber(op.outputs)
        if op.intermediates is not None:
            op.intermediates = renumber(op.intermediates)
    return remap


def match_topology(full: schema_fb.ModelT, shaped: schema_fb.ModelT) -> list[int]:
    """For canonical single-subgraph models with the same op sequence, the shaped graph's tensor
    index of every full-graph tensor (tensors are paired through the operators' input/output
    slots; the numbering may differ). ValueError (one line) at the first difference."""
    graph, other = full.subgraphs[0], shaped.subgraphs[0]
    if len(graph.operators) != len(other.operators):
        raise ValueError(
            f"topology differs: {len(graph.operators)} ops in the full graph, "
            f"{len(other.operators)} in the shaped graph"
        )
    if len(graph.tensors) != len(other.tensors):
        raise ValueError(
            f"topology differs: {len(graph.tensors)} tensors in the full graph, "
            f"{len(other.tensors)} in the shaped graph"
        )
    pairs: dict[int, int] = {}
    back: dict[int, int] = {}

    def pair(a: int, b: int, where: str) -> None:
        if (a < 0) != (b < 0):
            raise ValueError(f"topology differs at {where}: an optional input absent in one graph")
        if pairs.setdefault(a, b) != b or back.setdefault(b, a) != a:
            raise ValueError(
                f"topology differs at {where}: full tensor {a} meets shaped tensor {b}, but "
                f"elsewhere full {a} meets shaped {pairs[a]} and shaped {b} meets full {back[b]}"
            )

    for i, (op, op2) in enumerate(zip(graph.operators, other.operators, strict=True)):
        name, name2 = _op_name(full, op), _op_name(shaped, op2)
        if name != name2:
            raise ValueError(
                f"topology differs at op #{i}: {name} in the full graph, {name2} in shaped"
            )
        for kind in ("inputs", "outputs"):
            a, b = list(getattr(op, kind)), list(getattr(op2, kind))
            if len(a) != len(b):
                raise ValueError(f"topology differs at op #{i} {name}: {len(a)} vs {len(b)} {kind}")
            for slot, (x, y) in enumerate(zip(a, b, strict=True)):
                pair(int(x), int(y), f"op #{i} {name} {kind[:-1]} {slot}")
    for kind in ("inputs", "outputs"):
        a, b = list(getattr(graph, kind)), list(getattr(other, kind))
        if len(a) != len(b):
            raise ValueError(f"topology differs: {len(a)} vs {len(b)} graph {kind}")
        for slot, (x, y) in enumerate(zip(a, b, strict=True)):
            pair(int(x), int(y), f"graph {kind[:-1]} {slot}")
    pairs.pop(-1, None)
    if len(pairs) != len(graph.tensors):
        raise ValueError(f"topology differs: {len(graph.tensors) - len(pairs)} tensors unpaired")
    for a, b in pairs.items():
        x, y = graph.tensors[a], other.tensors[b]
        if x.type != y.type or len(_shape(x)) != len(_shape(y)):
            raise ValueError(
                f"topology differs at tensor {_name(x)!r}: type {x.type} rank {len(_shape(x))} "
                f"in the full graph, type {y.type} rank {len(_shape(y))} in shaped"
            )
        if (_data(full, x) is None) != (_data(shaped, y) is None):
            raise ValueError(f"topology differs at tensor {_name(x)!r}: constant in one graph only")
    return [pairs[i] for i in range(len(graph.tensors))]


def sequence_length(model: schema_fb.ModelT, subgraph: int = 0) -> int:
    """L of a graph taking (1, L) id inputs."""
    graph = model.subgraphs[subgraph]
    shapes = {_shape(graph.tensors[int(i)]) for i in graph.inputs}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"expected (1, L) inputs of one shape, got {sorted(shapes)}")
    return next(iter(shapes))[1]


# ----------------------------------------------------------------------------------------------
# one bucket


def bucket_graph(full: bytes, shaped: bytes) -> bytes:
    """The standalone length-Lb .tflite (one subgraph) computing what `full` computes on its first
    Lb positions: shapes from `shaped`, quantization and quantized constants from `full`."""
    model = canonicalize(load_model(full))
    buffers = _Buffers(model)
    model.subgraphs = [_bucket_subgraph(model, canonicalize(load_model(shaped)), buffers)]
    return serialize(model)


def _bucket_subgraph(full: schema_fb.ModelT, shaped: schema_fb.ModelT, buffers: _Buffers):
    """A copy of full's canonical subgraph 0 with shaped's shapes; buffers index `buffers`
    (= full's buffer list, extended)."""
    length, full_length = sequence_length(shaped), sequence_length(full)
    if length > full_length:
        raise ValueError(f"bucket length {length} exceeds the full graph's length {full_length}")
    pairs = match_topology(full, shaped)
    source, other = full.subgraphs[0], shaped.subgraphs[0]
    graph = copy.deepcopy(source)
    for index, tensor in enumerate(graph.tensors):
        twin = other.tensors[pairs[index]]
        tensor.shape = np.asarray(_shape(twin), np.int32)
        tensor.shapeSignature = copy.deepcopy(twin.shapeSignature)
        if _data(full, tensor) is not None:
            tensor.buffer = _bucket_buffer(full, shaped, source.tensors[index], twin, buffers)
    for op, twin in zip(graph.operators, other.operators, strict=True):
        op.builtinOptionsType = twin.builtinOptionsType
        op.builtinOptions = copy.deepcopy(twin.builtinOptions)
    return graph


def _bucket_buffer(full, shaped, tensor, twin, buffers: _Buffers) -> int:
    """Buffer of a constant in the bucket: quantized -> full's data (same buffer, the shared
    prefix, or a sliced copy); unquantized (shape vectors, slice bounds) -> shaped's data."""
    if not _quantized(tensor):
        return buffers.add(_data(shaped, twin))
    full_shape, shape = _shape(tensor), _shape(twin)
    if shape == full_shape:
        return tensor.buffer
    if any(s > f for s, f in zip(shape, full_shape, strict=True)):
        raise ValueError(
            f"constant {_name(tensor)!r}: bucket shape {shape} exceeds the full shape {full_shape}"
        )
    if _is_prefix(shape, full_shape):
        return tensor.buffer  # TFLM reads only the first shape-many bytes
    sliced = _array(full, tensor)[tuple(slice(0, s) for s in shape)]
    return buffers.add(np.ascontiguousarray(sliced).tobytes())


def _is_prefix(shape: tuple, full_shape: tuple) -> bool:
    """Row-major: the sub-array [:s0, :s1, ...] is the first bytes of the full array when the
    dims before the first cut dim are 1 and all dims after it are whole."""
    cut = next(i for i, (s, f) in enumerate(zip(shape, full_shape, strict=True)) if s != f)
    return all(d == 1 for d in shape[:cut]) and shape[cut + 1 :] == full_shape[cut + 1 :]


# ----------------------------------------------------------------------------------------------
# the bucketed model


Rewrite = Callable[[schema_fb.ModelT, int], None]


def bucketed_model(
    full: bytes,
    shaped: Mapping[int, bytes],
    pad_id: int = PAD_ID,
    rewrite: Rewrite | None = None,
) -> bytes:
    """One .tflite: the buckets of `shaped` ({Lb: the model converted at Lb}) plus the full graph,
    weights stored once, subgraph 0 dispatching the (1, Lmax) input to the shortest bucket.
    `rewrite(model, index)`, if given, runs on every bucket subgraph (see `bucket_models`)."""
    return serialize(bucketed_model_t(full, shaped, pad_id, rewrite))


def bucketed_model_t(
    full: bytes,
    shaped: Mapping[int, bytes],
    pad_id: int = PAD_ID,
    rewrite: Rewrite | None = None,
) -> schema_fb.ModelT:
    """`bucketed_model` before serialization: a ModelT whose subgraphs are the dispatchers
    (subgraph 0 first) then the buckets in increasing length; `bucket_subgraphs` maps them."""
    model, buffers = bucket_models(full, shaped, rewrite)
    buckets = model.subgraphs
    full_graph = buckets[-1]
    lengths = [_graph_length(graph) for graph in buckets]
    for graph in buckets[:-1]:
        _slice_inputs(model, graph, full_graph, buffers)
    dispatchers = _dispatch_tree(model, full_graph, lengths, buffers, pad_id)
    model.subgraphs = dispatchers + buckets
    first_bucket = len(dispatchers)
    for graph in dispatchers:
        for op in graph.operators:
            if _builtin(model, op) == _OP.IF:  # bucket positions were encoded as -1 - position
                for field in ("thenSubgraphIndex", "elseSubgraphIndex"):
                    value = getattr(op.builtinOptions, field)
                    if value < 0:
                        setattr(op.builtinOptions, field, first_bucket - 1 - value)
    _retarget_signatures(model, _signature_slots(model, full_graph), model.subgraphs[0], 0)
    table = {"lengths": lengths, "subgraphs": [first_bucket + i for i in range(len(lengths))]}
    _set_metadata(model, buffers, METADATA_NAME, json.dumps(table).encode())
    return model


def bucket_models(
    full: bytes, shaped: Mapping[int, bytes], rewrite: Rewrite | None = None
) -> tuple[schema_fb.ModelT, _Buffers]:
    """The canonical full model with one subgraph per bucket, in increasing length (the full
    graph last), each with its own (1, Lb) inputs, all sharing the full model's buffer list.
    `rewrite(model, index)` then runs on each bucket subgraph: it may edit that subgraph and
    append buffers and op codes, but must not change existing buffers (the buckets share them)."""
    model = canonicalize(load_model(full))
    full_length = sequence_length(model)
    buffers = _Buffers(model)
    graphs = []
    for length, shaped_bytes in sorted(shaped.items()):
        other = canonicalize(load_model(shaped_bytes))
        if sequence_length(other) != length:
            raise ValueError(f"shaped[{length}] is a graph of length {sequence_length(other)}")
        if length >= full_length:
            raise ValueError(f"bucket {length} is not shorter than the full graph ({full_length})")
        graphs.append(_bucket_subgraph(model, other, buffers))
    slots = _signature_slots(model, model.subgraphs[0])
    model.subgraphs = graphs + model.subgraphs
    for index in range(len(model.subgraphs) if rewrite else 0):
        rewrite(model, index)
    _retarget_signatures(model, slots, model.subgraphs[-1], len(model.subgraphs) - 1)
    return model, buffers


def _slice_inputs(model, graph, full_graph, buffers: _Buffers) -> None:
    """The bucket takes (1, Lmax) inputs and STRIDED_SLICEs them to its own (1, Lb) inputs."""
    full_length = _graph_length(full_graph)
    new_inputs, slices = [], []
    for index in graph.inputs:
        tensor = graph.tensors[int(index)]
        length = _shape(tensor)[1]
        graph.tensors.append(_tensor(_name(tensor), tensor.type, (1, full_length), like=tensor))
        new_inputs.append(len(graph.tensors) - 1)
        tensor.name = f"{_name(tensor)}/bucket_slice".encode()
        begin = _constant(graph, buffers, "bucket_slice/begin", [0, 0])
        end = _constant(graph, buffers, f"bucket_slice/end_{length}", [1, length])
        strides = _constant(graph, buffers, "bucket_slice/strides", [1, 1])
        slices.append(
            _operator(
                model,
                _OP.STRIDED_SLICE,
                [new_inputs[-1], begin, end, strides],
                [int(index)],
                schema_fb.BuiltinOptions.StridedSliceOptions,
                schema_fb.StridedSliceOptionsT(),
            )
        )
    graph.inputs = np.asarray(new_inputs, np.int32)
    graph.operators = slices + graph.operators


def _graph_length(graph) -> int:
    return _shape(graph.tensors[int(graph.inputs[0])])[1]


def _dispatch_tree(model, full_graph, lengths: list, buffers: _Buffers, pad_id: int) -> list:
    """Dispatcher subgraphs, root first: each tests one bucket length Lb (a token beyond it?) and
    runs the longer or the shorter half. IF targets that are buckets are written as -1 - position
    and fixed once the number of dispatchers is known."""
    dispatchers: list = []

    def build(low: int, high: int) -> int:  # returns a subgraph reference for lengths[low:high+1]
        if low == high:
            return -1 - low
        position = len(dispatchers)
        dispatchers.append(None)
        middle = (low + high) // 2
        longer, shorter = build(middle + 1, high), build(low, middle)
        dispatchers[position] = _dispatcher(
            model, full_graph, lengths[middle], longer, shorter, buffers, pad_id
        )
        return position

    if len(lengths) > 1:
        build(0, len(lengths) - 1)
    return dispatchers


def _dispatcher(model, full_graph, length: int, then_index, else_index, buffers, pad_id: int):
    """IF(token_ids[0, length] != pad, inputs...) -> then (longer) / else (bucket <= length)."""
    graph = schema_fb.SubGraphT()
    graph.name = f"dispatch_{length}".encode()
    graph.tensors = [
        _tensor(
            _name(full_graph.tensors[int(i)]),
            full_graph.tensors[int(i)].type,
            _shape(full_graph.tensors[int(i)]),
            like=full_graph.tensors[int(i)],
        )
        for i in list(full_graph.inputs) + list(full_graph.outputs)
    ]
    inputs = list(range(len(full_graph.inputs)))
    outputs = list(range(len(inputs), len(graph.tensors)))
    token = _token_input(graph, inputs)
    begin = _constant(graph, buffers, f"dispatch/begin_{length}", [0, length])
    end = _constant(graph, buffers, f"dispatch/end_{length}", [1, length + 1])
    strides = _constant(graph, buffers, "dispatch/strides", [1, 1])
    pad = _constant(graph, buffers, f"dispatch/pad_{pad_id}", [[pad_id]])
    graph.tensors.append(_tensor(f"dispatch/token_{length}", schema_fb.TensorType.INT32, (1, 1)))
    picked = len(graph.tensors) - 1
    graph.tensors.append(_tensor(f"dispatch/beyond_{length}", schema_fb.TensorType.BOOL, (1, 1)))
    cond = len(graph.tensors) - 1
    options = schema_fb.IfOptionsT()
    options.thenSubgraphIndex, options.elseSubgraphIndex = then_index, else_index
    graph.operators = [
        _operator(
            model,
            _OP.STRIDED_SLICE,
            [token, begin, end, strides],
            [picked],
            schema_fb.BuiltinOptions.StridedSliceOptions,
            schema_fb.StridedSliceOptionsT(),
        ),
        _operator(model, _OP.NOT_EQUAL, [picked, pad], [cond]),
        _operator(
            model, _OP.IF, [cond] + inputs, outputs, schema_fb.BuiltinOptions.IfOptions, options
        ),
    ]
    graph.inputs, graph.outputs = np.asarray(inputs, np.int32), np.asarray(outputs, np.int32)
    return graph


def _token_input(graph, inputs: list) -> int:
    named = [i for i in inputs if "token_ids" in _name(graph.tensors[i])]
    if len(named) != 1:
        names = [_name(graph.tensors[i]) for i in inputs]
        raise ValueError(f"cannot tell the token_ids input among the graph inputs {names}")
    return named[0]


def _signature_slots(model, graph) -> list:
    """(entry, is_input, position) of every signature entry, as a position among `graph`'s
    inputs/outputs (the converter's signature names subgraph 0's io tensors), so it can follow
    a graph whose tensors are renumbered; signatures naming other tensors are dropped."""
    inputs, outputs = [int(i) for i in graph.inputs], [int(i) for i in graph.outputs]
    slots = []
    for signature in model.signatureDefs or []:
        for is_input, items, io in (
            (True, signature.inputs, inputs),
            (False, signature.outputs, outputs),
        ):
            for item in items or []:
                if item.tensorIndex not in io:
                    model.signatureDefs = None
                    return []
                slots.append((item, is_input, io.index(item.tensorIndex)))
    return slots


def _retarget_signatures(model, slots: list, graph, subgraph_index: int) -> None:
    """Points the signature entries (see `_signature_slots`) at `graph`'s io tensors."""
    for item, is_input, position in slots:
        item.tensorIndex = int((graph.inputs if is_input else graph.outputs)[position])
    for signature in model.signatureDefs or []:
        signature.subgraphIndex = subgraph_index


def _set_metadata(model, buffers: _Buffers, name: str, data: bytes) -> None:
    entry = schema_fb.MetadataT()
    entry.name, entry.buffer = name.encode(), buffers.add(data)
    model.metadata = [m for m in (model.metadata or []) if m.name != entry.name] + [entry]


def bucket_subgraphs(model_bytes: bytes) -> dict[int, int]:
    """{bucket length: subgraph index} of a bucketed model (empty for a plain model)."""
    model = load_model(model_bytes)
    for entry in model.metadata or []:
        if entry.name == METADATA_NAME.encode():
            table = json.loads(_data_of(model.buffers[entry.buffer]))
            return dict(zip(table["lengths"], table["subgraphs"], strict=True))
    return {}


def chosen_length(token_ids: np.ndarray, lengths, pad_id: int = PAD_ID) -> np.ndarray:
    """What the dispatcher picks for each row of (n, Lmax) ids: the shortest bucket Lb whose
    position Lb holds padding (the full length when none does)."""
    ids = np.asarray(token_ids)
    lengths = sorted(lengths)
    picked = np.full(len(ids), lengths[-1])
    for length in reversed(lengths[:-1]):
        picked = np.where(ids[:, length] == pad_id, length, picked)
    return picked


RootMetadata = Callable[[schema_fb.ModelT, int], Mapping[str, bytes]]


def bucket_entries(
    full: bytes,
    shaped: Mapping[int, bytes],
    rewrite: Rewrite | None = None,
    root_metadata: RootMetadata | None = None,
) -> tuple[bytes, dict[int, int]]:
    """The buckets without a dispatcher: one byte array holding a complete single-subgraph model
    per bucket, each a flatbuffer root at its own 16-byte aligned offset, all sharing the weight
    buffers and every identical table. Returns (data, {Lb: offset}); the full model is the root at
    offset 0 (a plain .tflite). The caller picks the bucket (`chosen_length`) and runs
    `tflite::GetModel(data + offset)` with (1, Lb) inputs: TFLM prepares only that bucket, so the
    arena is the largest bucket's alone (a dispatching model prepares every subgraph).
    `root_metadata(model, index)`, if given, runs after the rewrites and returns metadata entries
    ({name: data}) for the root of bucket subgraph `index` alone (e.g. an offline memory plan of
    that subgraph, which becomes the root's subgraph 0); they replace same-named model metadata."""
    model, buffers = bucket_models(full, shaped, rewrite)
    extra = []
    for index in range(len(model.subgraphs)):
        entries = []
        for name, data in (root_metadata(model, index) if root_metadata else {}).items():
            entry = schema_fb.MetadataT()
            entry.name, entry.buffer = name.encode(), buffers.add(data)
            entries.append(entry)
        extra.append(entries)
    # built once: every root points to the same buffer tables
    compact = CompactBuffers(model, [entry for entries in extra for entry in entries])
    builder = SharingBuilder(1 << 20)
    roots = {}
    for graph, own in zip(model.subgraphs, extra, strict=True):
        entry = copy.copy(model)
        entry.subgraphs = [graph]
        names = {m.name for m in own}
        entry.metadata = [m for m in (model.metadata or []) if m.name not in names] + own
        entry.metadata = entry.metadata or None
        entry.signatureDefs = copy.deepcopy(model.signatureDefs)
        slots = _signature_slots(entry, model.subgraphs[-1])
        _retarget_signatures(entry, slots, graph, 0)
        roots[_graph_length(graph)] = shared_model(entry, compact, True).Pack(builder)
    full_length = max(roots)
    ends = {length: _prepend_root(builder, roots[length]) for length in sorted(roots)[:-1]}
    builder.Finish(roots[full_length], b"TFL3")
    data = bytes(builder.Output())
    offsets = {length: len(data) - end for length, end in ends.items()}
    offsets[full_length] = 0
    return data, offsets


def _prepend_root(builder, root: int) -> int:
    """Writes a 16-byte aligned root header (uoffset to `root`, file identifier) and returns its
    offset from the end of the buffer."""
    builder.Prep(16, 8)
    for byte in reversed(b"TFL3"):
        builder.PrependByte(byte)
    builder.PrependUOffsetTRelative(root)
    return builder.Offset()


def check_bucketed_graph(model_bytes: bytes) -> None:
    """ValueError (one line) at the first op of any subgraph that TFLM would not run in int8:
    bucket subgraphs may use TFLM_INT8_OPS (their input slices are int32 STRIDED_SLICEs),
    dispatcher subgraphs only DISPATCH_OPS (so no QUANTIZE/DEQUANTIZE or custom op anywhere),
    and no op may touch a float tensor."""
    model = load_model(model_bytes)
    buckets = set(bucket_subgraphs(model_bytes).values()) or {0}
    for index, graph in enumerate(model.subgraphs):
        allowed = TFLM_INT8_OPS if index in buckets else DISPATCH_OPS
        for number, op in enumerate(graph.operators):
            name = _op_name(model, op)
            where = f"subgraph {index} op #{number} {name}"
            if name not in allowed:
                kind = "bucket" if index in buckets else "dispatcher"
                raise ValueError(f"bucketed check: {where} is not allowed in a {kind} subgraph")
            for tensor in (
                graph.tensors[int(i)] for i in list(op.inputs) + list(op.outputs) if i >= 0
            ):
                if tensor.type in _FLOAT_TYPES:
                    raise ValueError(f"bucketed check: {where} uses float tensor {_name(tensor)!r}")


_FLOAT_TYPES = {
    schema_fb.TensorType.FLOAT16,
    schema_fb.TensorType.FLOAT32,
    schema_fb.TensorType.FLOAT64,
    schema_fb.TensorType.BFLOAT16,
}
