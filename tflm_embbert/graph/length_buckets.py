"""Length buckets: the model at several sequence lengths, sharing one copy of the weights.

Padded keys are masked and EmbBERT's conv branch is causal, so the [CLS] output for n real tokens
does not depend on the positions after n: a graph at length Lb < Lmax that computes exactly what the
full-length graph computes on its first Lb positions gives the same logits for every input of at
most Lb tokens, at a fraction of the MACs.

- `graph_at_length(full, shaped)`: the length-Lb graph made from the full-length int8 graph `full`,
  with tensor shapes (and unquantized int32 constants: RESHAPE shapes, slice bounds; op options)
  from `shaped` (the same model converted at Lb) but every quantization parameter and every
  quantized constant from `full`. A quantized constant with the length in its shape (the position
  table) becomes a prefix of the full one: it shares the full constant's buffer when the prefix is
  its first bytes (TFLM reads shape-many bytes), else a sliced copy.
- `buckets_as_subgraphs(full, {Lb: shaped})`: the canonical full model with one subgraph per
  bucket (the full graph last), all sharing the full model's buffers; per-bucket rewrites run here.
- `bucket_model_array(full, {Lb: shaped})`: what the Arduino library ships: one byte array holding
  a complete model per bucket (flatbuffer roots at known offsets sharing every weight buffer and
  identical table); the caller picks the bucket (`bucket_for`) and gives TFLM that root, so the
  arena is the chosen bucket's alone. Each root may carry its own metadata (e.g. its offline
  memory plan). `export.buckets` builds the library's model array with it.

Both graphs are first canonicalized in the same way: a STRIDED_SLICE that copies a constant
unchanged (the converter keeps one on the position table at some lengths and folds it at others)
is removed, its consumers read the constant. The padding is assumed at the end (pad id 0), as the
tokenizer writes it. A study of one dispatching .tflite instead (TFLM IF ops) is in
bench/bucket_dispatch.py.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

from tflm_embbert.graph.flatbuffer import (
    BufferTable,
    CompactBuffers,
    SharingBuilder,
    builtin_code,
    builtin_name,
    constant_array,
    constant_bytes,
    is_quantized,
    load_model,
    same_quantization,
    serialize,
    shared_model,
    tensor_name,
    tensor_shape,
)

PAD_ID = 0

_OP = schema_fb.BuiltinOperator

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
    if builtin_code(model, op) != _OP.STRIDED_SLICE:
        return False
    source, target = (graph.tensors[int(i)] for i in (op.inputs[0], op.outputs[0]))
    if constant_bytes(model, source) is None or int(op.outputs[0]) in list(graph.outputs):
        return False
    if any(constant_bytes(model, graph.tensors[int(i)]) is None for i in op.inputs[1:]):
        return False
    begin, strides = (
        constant_array(model, graph.tensors[int(i)]) for i in (op.inputs[1], op.inputs[3])
    )
    options = op.builtinOptions
    masks = (options.ellipsisMask, options.newAxisMask, options.shrinkAxisMask) if options else ()
    return (
        tensor_shape(source) == tensor_shape(target)
        and source.type == target.type
        and same_quantization(source, target)
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

    def pair_io(x, y, where: str) -> None:  # the inputs and outputs of two ops or two graphs
        for kind in ("inputs", "outputs"):
            a, b = list(getattr(x, kind)), list(getattr(y, kind))
            if len(a) != len(b):
                raise ValueError(f"topology differs at {where}: {len(a)} vs {len(b)} {kind}")
            for slot, (i, j) in enumerate(zip(a, b, strict=True)):
                pair(int(i), int(j), f"{where} {kind[:-1]} {slot}")

    for i, (op, op2) in enumerate(zip(graph.operators, other.operators, strict=True)):
        name, name2 = builtin_name(full, op), builtin_name(shaped, op2)
        if name != name2:
            raise ValueError(
                f"topology differs at op #{i}: {name} in the full graph, {name2} in shaped"
            )
        pair_io(op, op2, f"op #{i} {name}")
    pair_io(graph, other, "graph")
    pairs.pop(-1, None)
    if len(pairs) != len(graph.tensors):
        raise ValueError(f"topology differs: {len(graph.tensors) - len(pairs)} tensors unpaired")
    for a, b in pairs.items():
        x, y = graph.tensors[a], other.tensors[b]
        if x.type != y.type or len(tensor_shape(x)) != len(tensor_shape(y)):
            raise ValueError(
                f"topology differs at tensor {tensor_name(x)!r}: type {x.type} "
                f"rank {len(tensor_shape(x))} "
                f"in the full graph, type {y.type} rank {len(tensor_shape(y))} in shaped"
            )
        if (constant_bytes(full, x) is None) != (constant_bytes(shaped, y) is None):
            raise ValueError(
                f"topology differs at tensor {tensor_name(x)!r}: constant in one graph only"
            )
    return [pairs[i] for i in range(len(graph.tensors))]


def sequence_length(model: schema_fb.ModelT, subgraph: int = 0) -> int:
    """L of a graph taking (1, L) id inputs."""
    graph = model.subgraphs[subgraph]
    shapes = {tensor_shape(graph.tensors[int(i)]) for i in graph.inputs}
    if len(shapes) != 1 or len(next(iter(shapes))) != 2:
        raise ValueError(f"expected (1, L) inputs of one shape, got {sorted(shapes)}")
    return next(iter(shapes))[1]


# ----------------------------------------------------------------------------------------------
# one bucket


def graph_at_length(full: bytes, shaped: bytes) -> bytes:
    """The standalone length-Lb .tflite (one subgraph) computing what `full` computes on its first
    Lb positions: shapes from `shaped`, quantization and quantized constants from `full`."""
    model = canonicalize(load_model(full))
    buffers = BufferTable(model)
    model.subgraphs = [_bucket_subgraph(model, canonicalize(load_model(shaped)), buffers)]
    return serialize(model)


def _bucket_subgraph(full: schema_fb.ModelT, shaped: schema_fb.ModelT, buffers: BufferTable):
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
        tensor.shape = np.asarray(tensor_shape(twin), np.int32)
        tensor.shapeSignature = copy.deepcopy(twin.shapeSignature)
        if constant_bytes(full, tensor) is not None:
            tensor.buffer = _bucket_buffer(full, shaped, source.tensors[index], twin, buffers)
    for op, twin in zip(graph.operators, other.operators, strict=True):
        op.builtinOptionsType = twin.builtinOptionsType
        op.builtinOptions = copy.deepcopy(twin.builtinOptions)
    return graph


def _bucket_buffer(full, shaped, tensor, twin, buffers: BufferTable) -> int:
    """Buffer of a constant in the bucket: quantized -> full's data (same buffer, the shared
    prefix, or a sliced copy); unquantized (shape vectors, slice bounds) -> shaped's data."""
    if not is_quantized(tensor):
        return buffers.add(constant_bytes(shaped, twin))
    full_shape, shape = tensor_shape(tensor), tensor_shape(twin)
    if shape == full_shape:
        return tensor.buffer
    if any(s > f for s, f in zip(shape, full_shape, strict=True)):
        raise ValueError(
            f"constant {tensor_name(tensor)!r}: bucket shape {shape} exceeds the full shape "
            f"{full_shape}"
        )
    if _is_prefix(shape, full_shape):
        return tensor.buffer  # TFLM reads only the first shape-many bytes
    sliced = constant_array(full, tensor)[tuple(slice(0, s) for s in shape)]
    return buffers.add(np.ascontiguousarray(sliced).tobytes())


def _is_prefix(shape: tuple, full_shape: tuple) -> bool:
    """Row-major: the sub-array [:s0, :s1, ...] is the first bytes of the full array when the
    dims before the first cut dim are 1 and all dims after it are whole."""
    cut = next(i for i, (s, f) in enumerate(zip(shape, full_shape, strict=True)) if s != f)
    return all(d == 1 for d in shape[:cut]) and shape[cut + 1 :] == full_shape[cut + 1 :]


Rewrite = Callable[[schema_fb.ModelT, int], None]


def buckets_as_subgraphs(
    full: bytes, shaped: Mapping[int, bytes], rewrite: Rewrite | None = None
) -> tuple[schema_fb.ModelT, BufferTable]:
    """The canonical full model with one subgraph per bucket, in increasing length (the full
    graph last), each with its own (1, Lb) inputs, all sharing the full model's buffer list.
    `rewrite(model, index)` then runs on each bucket subgraph: it may edit that subgraph and
    append buffers and op codes, but must not change existing buffers (the buckets share them)."""
    model = canonicalize(load_model(full))
    full_length = sequence_length(model)
    buffers = BufferTable(model)
    graphs = []
    for length, shaped_bytes in sorted(shaped.items()):
        other = canonicalize(load_model(shaped_bytes))
        if sequence_length(other) != length:
            raise ValueError(f"shaped[{length}] is a graph of length {sequence_length(other)}")
        if length >= full_length:
            raise ValueError(f"bucket {length} is not shorter than the full graph ({full_length})")
        graphs.append(_bucket_subgraph(model, other, buffers))
    slots = signature_slots(model, model.subgraphs[0])
    model.subgraphs = graphs + model.subgraphs
    for index in range(len(model.subgraphs) if rewrite else 0):
        rewrite(model, index)
    retarget_signatures(model, slots, model.subgraphs[-1], len(model.subgraphs) - 1)
    return model, buffers


def graph_length(graph) -> int:
    return tensor_shape(graph.tensors[int(graph.inputs[0])])[1]


def signature_slots(model, graph) -> list:
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


def retarget_signatures(model, slots: list, graph, subgraph_index: int) -> None:
    """Points the signature entries (see `signature_slots`) at `graph`'s io tensors."""
    for item, is_input, position in slots:
        item.tensorIndex = int((graph.inputs if is_input else graph.outputs)[position])
    for signature in model.signatureDefs or []:
        signature.subgraphIndex = subgraph_index


def bucket_for(token_ids: np.ndarray, lengths, pad_id: int = PAD_ID) -> np.ndarray:
    """What the dispatcher picks for each row of (n, Lmax) ids: the shortest bucket Lb whose
    position Lb holds padding (the full length when none does)."""
    ids = np.asarray(token_ids)
    lengths = sorted(lengths)
    picked = np.full(len(ids), lengths[-1])
    for length in reversed(lengths[:-1]):
        picked = np.where(ids[:, length] == pad_id, length, picked)
    return picked


RootMetadata = Callable[[schema_fb.ModelT, int], Mapping[str, bytes]]


def bucket_model_array(
    full: bytes,
    shaped: Mapping[int, bytes],
    rewrite: Rewrite | None = None,
    root_metadata: RootMetadata | None = None,
) -> tuple[bytes, dict[int, int]]:
    """The buckets without a dispatcher: one byte array holding a complete single-subgraph model
    per bucket, each a flatbuffer root at its own 16-byte aligned offset, all sharing the weight
    buffers and every identical table. Returns (data, {Lb: offset}); the full model is the root at
    offset 0 (a plain .tflite). The caller picks the bucket (`bucket_for`) and runs
    `tflite::GetModel(data + offset)` with (1, Lb) inputs: TFLM prepares only that bucket, so the
    arena is the largest bucket's alone (a dispatching model prepares every subgraph).
    `root_metadata(model, index)`, if given, runs after the rewrites and returns metadata entries
    ({name: data}) for the root of bucket subgraph `index` alone (e.g. an offline memory plan of
    that subgraph, which becomes the root's subgraph 0); they replace same-named model metadata."""
    model, buffers = buckets_as_subgraphs(full, shaped, rewrite)
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
        slots = signature_slots(entry, model.subgraphs[-1])
        retarget_signatures(entry, slots, graph, 0)
        roots[graph_length(graph)] = shared_model(entry, compact, True).Pack(builder)
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
