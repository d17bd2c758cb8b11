"""Study, not shipped: length buckets as ONE dispatching .tflite (TFLM IF ops) instead of the
export's model array of one root per bucket (tflm_embbert.graph.length_buckets.bucket_model_array).

`dispatching_model(full, {Lb: shaped})`: one .tflite whose subgraphs are the buckets (the last is
the full graph), sharing one copy of every weight buffer, with subgraph 0 a dispatcher: it takes the
(1, Lmax) ids and, through a tree of TFLM IF ops (cond = token_ids[0, Lb] != pad: a real token
beyond bucket Lb), runs the shortest bucket that holds the input. Each bucket slices its (1, Lmax)
inputs to (1, Lb) with STRIDED_SLICE. `dispatching_model_t` returns the ModelT (per-subgraph
rewrites can run before serializing); `dispatch_table` reads back which subgraph holds which
length; `check_dispatching_model` is its int8 check.

Why it is not shipped: TFLM prepares every subgraph at AllocateTensors, so the persistent arena
(kernel data, per-tensor structs, BATCH_MATMUL transposes) is the sum over all buckets, where the
model array's chosen root costs its own bucket's alone (`python bench/length_buckets.py --study
graphs` measures both).
"""

from __future__ import annotations

import json
from collections.abc import Mapping

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

from tflm_embbert.graph import length_buckets as lb
from tflm_embbert.graph.flatbuffer import (
    BufferTable,
    add_int32_constant,
    builtin_code,
    builtin_name,
    data_of,
    load_model,
    new_operator,
    new_tensor,
    serialize,
    tensor_name,
    tensor_shape,
)
from tflm_embbert.graph.int8_check import TFLM_INT8_OPS

# Ops the dispatcher subgraphs and the bucket input slices add (int32 / bool tensors): IF,
# NOT_EQUAL and int32 STRIDED_SLICE run under tflite_micro.runtime (tests/test_length_buckets.py).
DISPATCH_OPS = frozenset({"IF", "NOT_EQUAL", "STRIDED_SLICE"})
METADATA_NAME = "length_buckets"  # JSON {"lengths": [...], "subgraphs": [...]} in the model
_OP = schema_fb.BuiltinOperator


def dispatching_model(
    full: bytes,
    shaped: Mapping[int, bytes],
    pad_id: int = lb.PAD_ID,
    rewrite: lb.Rewrite | None = None,
) -> bytes:
    """One .tflite: the buckets of `shaped` ({Lb: the model converted at Lb}) plus the full graph,
    weights stored once, subgraph 0 dispatching the (1, Lmax) input to the shortest bucket.
    `rewrite(model, index)`, if given, runs on every bucket subgraph (see
    `length_buckets.buckets_as_subgraphs`)."""
    return serialize(dispatching_model_t(full, shaped, pad_id, rewrite))


def dispatching_model_t(
    full: bytes,
    shaped: Mapping[int, bytes],
    pad_id: int = lb.PAD_ID,
    rewrite: lb.Rewrite | None = None,
) -> schema_fb.ModelT:
    """`dispatching_model` before serialization: a ModelT whose subgraphs are the dispatchers
    (subgraph 0 first) then the buckets in increasing length; `dispatch_table` maps them."""
    model, buffers = lb.buckets_as_subgraphs(full, shaped, rewrite)
    buckets = model.subgraphs
    full_graph = buckets[-1]
    lengths = [lb.graph_length(graph) for graph in buckets]
    for graph in buckets[:-1]:
        _slice_inputs(model, graph, full_graph, buffers)
    dispatchers = _dispatch_tree(model, full_graph, lengths, buffers, pad_id)
    model.subgraphs = dispatchers + buckets
    first_bucket = len(dispatchers)
    for graph in dispatchers:
        for op in graph.operators:
            if builtin_code(model, op) == _OP.IF:  # bucket positions were encoded as -1 - position
                for field in ("thenSubgraphIndex", "elseSubgraphIndex"):
                    value = getattr(op.builtinOptions, field)
                    if value < 0:
                        setattr(op.builtinOptions, field, first_bucket - 1 - value)
    lb.retarget_signatures(model, lb.signature_slots(model, full_graph), model.subgraphs[0], 0)
    table = {"lengths": lengths, "subgraphs": [first_bucket + i for i in range(len(lengths))]}
    _set_metadata(model, buffers, METADATA_NAME, json.dumps(table).encode())
    return model


def _slice_inputs(model, graph, full_graph, buffers: BufferTable) -> None:
    """The bucket takes (1, Lmax) inputs and STRIDED_SLICEs them to its own (1, Lb) inputs."""
    full_length = lb.graph_length(full_graph)
    new_inputs, slices = [], []
    for index in graph.inputs:
        tensor = graph.tensors[int(index)]
        length = tensor_shape(tensor)[1]
        graph.tensors.append(
            new_tensor(tensor_name(tensor), tensor.type, (1, full_length), like=tensor)
        )
        new_inputs.append(len(graph.tensors) - 1)
        tensor.name = f"{tensor_name(tensor)}/bucket_slice".encode()
        begin = add_int32_constant(graph, buffers, "bucket_slice/begin", [0, 0])
        end = add_int32_constant(graph, buffers, f"bucket_slice/end_{length}", [1, length])
        strides = add_int32_constant(graph, buffers, "bucket_slice/strides", [1, 1])
        slices.append(
            new_operator(
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


def _dispatch_tree(model, full_graph, lengths: list, buffers: BufferTable, pad_id: int) -> list:
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
        new_tensor(
            tensor_name(full_graph.tensors[int(i)]),
            full_graph.tensors[int(i)].type,
            tensor_shape(full_graph.tensors[int(i)]),
            like=full_graph.tensors[int(i)],
        )
        for i in list(full_graph.inputs) + list(full_graph.outputs)
    ]
    inputs = list(range(len(full_graph.inputs)))
    outputs = list(range(len(inputs), len(graph.tensors)))
    token = _token_input(graph, inputs)
    begin = add_int32_constant(graph, buffers, f"dispatch/begin_{length}", [0, length])
    end = add_int32_constant(graph, buffers, f"dispatch/end_{length}", [1, length + 1])
    strides = add_int32_constant(graph, buffers, "dispatch/strides", [1, 1])
    pad = add_int32_constant(graph, buffers, f"dispatch/pad_{pad_id}", [[pad_id]])
    graph.tensors.append(new_tensor(f"dispatch/token_{length}", schema_fb.TensorType.INT32, (1, 1)))
    picked = len(graph.tensors) - 1
    graph.tensors.append(new_tensor(f"dispatch/beyond_{length}", schema_fb.TensorType.BOOL, (1, 1)))
    cond = len(graph.tensors) - 1
    options = schema_fb.IfOptionsT()
    options.thenSubgraphIndex, options.elseSubgraphIndex = then_index, else_index
    graph.operators = [
        new_operator(
            model,
            _OP.STRIDED_SLICE,
            [token, begin, end, strides],
            [picked],
            schema_fb.BuiltinOptions.StridedSliceOptions,
            schema_fb.StridedSliceOptionsT(),
        ),
        new_operator(model, _OP.NOT_EQUAL, [picked, pad], [cond]),
        new_operator(
            model, _OP.IF, [cond] + inputs, outputs, schema_fb.BuiltinOptions.IfOptions, options
        ),
    ]
    graph.inputs, graph.outputs = np.asarray(inputs, np.int32), np.asarray(outputs, np.int32)
    return graph


def _token_input(graph, inputs: list) -> int:
    named = [i for i in inputs if "token_ids" in tensor_name(graph.tensors[i])]
    if len(named) != 1:
        names = [tensor_name(graph.tensors[i]) for i in inputs]
        raise ValueError(f"cannot tell the token_ids input among the graph inputs {names}")
    return named[0]


def _set_metadata(model, buffers: BufferTable, name: str, data: bytes) -> None:
    entry = schema_fb.MetadataT()
    entry.name, entry.buffer = name.encode(), buffers.add(data)
    model.metadata = [m for m in (model.metadata or []) if m.name != entry.name] + [entry]


def dispatch_table(model_bytes: bytes) -> dict[int, int]:
    """{bucket length: subgraph index} of a bucketed model (empty for a plain model)."""
    model = load_model(model_bytes)
    for entry in model.metadata or []:
        if entry.name == METADATA_NAME.encode():
            table = json.loads(data_of(model.buffers[entry.buffer]))
            return dict(zip(table["lengths"], table["subgraphs"], strict=True))
    return {}


def check_dispatching_model(model_bytes: bytes) -> None:
    """ValueError (one line) at the first op of any subgraph that TFLM would not run in int8:
    bucket subgraphs may use TFLM_INT8_OPS (their input slices are int32 STRIDED_SLICEs),
    dispatcher subgraphs only DISPATCH_OPS (so no QUANTIZE/DEQUANTIZE or custom op anywhere),
    and no op may touch a float tensor."""
    model = load_model(model_bytes)
    buckets = set(dispatch_table(model_bytes).values()) or {0}
    for index, graph in enumerate(model.subgraphs):
        allowed = TFLM_INT8_OPS if index in buckets else DISPATCH_OPS
        for number, op in enumerate(graph.operators):
            name = builtin_name(model, op)
            where = f"subgraph {index} op #{number} {name}"
            if name not in allowed:
                kind = "bucket" if index in buckets else "dispatcher"
                raise ValueError(f"bucketed check: {where} is not allowed in a {kind} subgraph")
            for tensor in (
                graph.tensors[int(i)] for i in list(op.inputs) + list(op.outputs) if i >= 0
            ):
                if tensor.type in _FLOAT_TYPES:
                    raise ValueError(
                        f"bucketed check: {where} uses float tensor {tensor_name(tensor)!r}"
                    )


_FLOAT_TYPES = {
    schema_fb.TensorType.FLOAT16,
    schema_fb.TensorType.FLOAT32,
    schema_fb.TensorType.FLOAT64,
    schema_fb.TensorType.BFLOAT16,
}
