"""Offline memory plan: the arena offset of every activation tensor, written into the model.

TFLM places activation tensors with a greedy planner that sees only lifetimes: a tensor gets its
own bytes for as long as it lives. The flatbuffer metadata "OfflineMemoryAllocation" (TFLM's
memory-management doc: version, subgraph, tensor count, then one head offset per tensor, -1 for
"plan at runtime") lets an exporter place tensors itself, and the plan may overlap tensors whose
data is not needed at the same time. `offline_plan` uses that for three exact aliases:

- CONCATENATION along the rows of (1, r, d) pieces: each piece is placed inside the output at its
  row offset, so the pieces are written where the whole tensor lives and the op copies each piece
  onto itself (the row chunks of `lean_graph` then cost one whole tensor, not two);
- RESHAPE: the output shares the input's bytes (TFLM skips the copy when the pointers match);
- in place: an element-wise op (ADD, SUB, MUL, LOGISTIC, RSQRT, SOFTMAX ...) whose output has the
  size of an input that dies at that op writes over that input. Each kernel reads an element
  before it writes the element at the same index, and no element is read after its index is
  written (the per-row passes of SOFTMAX read a row before writing it).

The remaining blocks (one per alias group, living from its first producer to its last reader)
are placed by a first-fit over address ranges in several orders (largest first, in order of
creation, longest-lived first, then seeded shuffles) until one reaches the lower bound (the
largest sum of blocks alive at one op); the smallest head is kept. Scratch buffers that kernels
request at runtime are still planned by TFLM around these offsets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb

from tflm_embbert.graph.flatbuffer import (
    builtin_name,
    constant_bytes,
    load_model,
    serialize,
    tensor_shape,
)

METADATA_NAME = b"OfflineMemoryAllocation"
ALIGNMENT = 16  # TFLM's buffer alignment (kBufferAlignment)
IN_PLACE_OPS = frozenset(
    {"ADD", "SUB", "MUL", "LOGISTIC", "RSQRT", "TANH", "SOFTMAX", "QUANTIZE", "SQUARED_DIFFERENCE"}
)
_ITEM_BYTES = {
    schema_fb.TensorType.INT8: 1,
    schema_fb.TensorType.UINT8: 1,
    schema_fb.TensorType.BOOL: 1,
    schema_fb.TensorType.INT16: 2,
    schema_fb.TensorType.FLOAT16: 2,
    schema_fb.TensorType.INT32: 4,
    schema_fb.TensorType.FLOAT32: 4,
    schema_fb.TensorType.INT64: 8,
}


@dataclass
class Plan:
    offsets: list[int]  # per tensor of the subgraph: head offset, -1 when not in the arena
    head_bytes: int  # end of the furthest planned block
    lower_bound: int  # largest sum of live blocks at one op (no placement can do better)
    aliases: dict  # kind -> number of tensors that share another tensor's bytes


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


class _Graph:
    def __init__(self, model, index: int):
        self.model, self.graph = model, model.subgraphs[index]
        self.tensors = self.graph.tensors
        self.ops = list(self.graph.operators or [])

    def op_name(self, op) -> str:
        return builtin_name(self.model, op)

    def is_constant(self, t: int) -> bool:
        return constant_bytes(self.model, self.tensors[t]) is not None

    def shape(self, t: int) -> list[int]:
        return list(tensor_shape(self.tensors[t]))

    def nbytes(self, t: int) -> int:
        return int(np.prod(self.shape(t), dtype=np.int64)) * _ITEM_BYTES[self.tensors[t].type]


def lifetimes(g: _Graph) -> dict[int, list[int]]:
    """Arena tensor -> [first op, last op], as TFLM counts them (inputs from op 0, outputs to
    the last op); constants and unused tensors are not in the arena."""
    last_op = max(len(g.ops) - 1, 0)
    life: dict[int, list[int]] = {int(t): [0, 0] for t in g.graph.inputs}
    for i, op in enumerate(g.ops):
        for t in list(op.inputs) + list(op.outputs):
            t = int(t)
            if t < 0 or g.is_constant(t):
                continue
            if t in life:
                life[t][1] = max(life[t][1], i)
            else:
                life[t] = [i, i]
    for t in g.graph.outputs:
        life.setdefault(int(t), [last_op, last_op])[1] = last_op
    return life


def arena_lifetimes(model_bytes: bytes, subgraph: int = 0) -> dict[int, list[int]]:
    """`lifetimes` of a .tflite's subgraph."""
    return lifetimes(_Graph(load_model(model_bytes), subgraph))


class _Groups:
    """Union of tensors sharing bytes: each tensor has a root and a byte offset inside it."""

    def __init__(self, life: dict, nbytes):
        self.parent = {t: (t, 0) for t in life}
        self.life = {t: list(v) for t, v in life.items()}
        self.size = {t: nbytes(t) for t in life}

    def find(self, t: int) -> tuple[int, int]:
        offset = 0
        while self.parent[t][0] != t:
            t, step = self.parent[t]
            offset += step
        return t, offset

    def attach(self, t: int, root: int, offset: int) -> None:
        """Places root group of t inside `root` at `offset` (t must be its own root)."""
        self.parent[t] = (root, offset)
        self.life[root][0] = min(self.life[root][0], self.life[t][0])
        self.life[root][1] = max(self.life[root][1], self.life[t][1])
        self.size[root] = max(self.size[root], offset + self.size[t])

    def members(self, root: int) -> int:
        return sum(1 for t in self.parent if self.find(t)[0] == root)


def _alias(g: _Graph, life: dict) -> tuple[_Groups, dict]:
    groups = _Groups(life, g.nbytes)
    counts = {"concatenation": 0, "reshape": 0, "in_place": 0}
    graph_io = {int(t) for t in list(g.graph.inputs) + list(g.graph.outputs)}
    for op in g.ops:  # pieces into whole tensors, reshapes onto their input
        name = g.op_name(op)
        out = int(op.outputs[0]) if len(op.outputs) else -1
        if out not in life or groups.find(out) != (out, 0):
            continue
        if name == "CONCATENATION" and _row_concat(g, op):
            offset = 0
            for t in (int(t) for t in op.inputs):
                step = g.nbytes(t)
                if (
                    t in life
                    and t not in graph_io
                    and groups.find(t) == (t, 0)
                    and groups.members(t) == 1
                    and offset % ALIGNMENT == 0
                ):
                    groups.attach(t, out, offset)
                    counts["concatenation"] += 1
                offset += step
        elif name == "RESHAPE" and out not in graph_io:
            source = int(op.inputs[0])
            if source in life and source not in graph_io and groups.find(source)[1] == 0:
                root = groups.find(source)[0]
                if groups.size[root] >= g.nbytes(out):
                    groups.attach(out, root, 0)
                    counts["reshape"] += 1
    for i in reversed(range(len(g.ops))):  # element-wise ops over an input that dies there
        op = g.ops[i]
        if g.op_name(op) not in IN_PLACE_OPS or len(op.outputs) != 1:
            continue
        out = int(op.outputs[0])
        if out not in life or out in graph_io:
            continue
        target, where = groups.find(out)
        for source in dict.fromkeys(int(t) for t in op.inputs if t >= 0):
            if source not in life or source in graph_io or groups.find(source) != (source, 0):
                continue
            if (
                source != target
                and groups.life[source][1] == i
                and groups.size[source] == g.nbytes(out) == g.nbytes(source)
                and g.shape(source) == g.shape(out)
            ):
                groups.attach(source, target, where)
                counts["in_place"] += 1
                break
    return groups, counts


def _row_concat(g: _Graph, op) -> bool:
    """CONCATENATION whose pieces lie one after the other in memory: every axis before the
    concatenation axis has size 1."""
    axis = int(op.builtinOptions.axis)
    shape = g.shape(int(op.outputs[0]))
    axis = axis + len(shape) if axis < 0 else axis
    if op.builtinOptions.fusedActivationFunction:
        return False
    return all(d == 1 for d in shape[:axis])


def _first_fit(blocks: list, order) -> tuple[dict, int]:
    placed: list[tuple[int, int, int, int]] = []  # (offset, end, first, last)
    offsets = {}
    for root, size, first, last in sorted(blocks, key=order):
        busy = sorted((o, e) for o, e, f, la in placed if f <= last and first <= la)
        offset = 0
        for o, e in busy:
            if offset + size <= o:
                break
            offset = max(offset, _align(e))
        offsets[root] = offset
        placed.append((offset, offset + size, first, last))
    return offsets, max((e for _, e, _, _ in placed), default=0)


# First-fit orders tried (block = (root, bytes, first op, last op)); the smallest head wins.
_ORDERS = (
    lambda b: (-b[1], b[2]),  # largest first (TFLM's greedy order)
    lambda b: (b[2], -b[1]),  # in order of creation
    lambda b: (-(b[3] - b[2]), -b[1]),  # longest-lived first
    lambda b: (-b[1] * (b[3] - b[2] + 1), b[2]),  # largest bytes x lifetime first
)


RANDOM_ORDERS = 16  # seeded shuffles tried after _ORDERS until one reaches the lower bound


def plan(model, index: int = 0, alias: bool = True) -> Plan:
    """The offline plan of subgraph `index` of a ModelT (see the module doc)."""
    g = _Graph(model, index)
    life = lifetimes(g)
    if alias:
        groups, counts = _alias(g, life)
    else:
        groups, counts = _Groups(life, g.nbytes), {}
    roots = [t for t in life if groups.find(t)[0] == t]
    blocks = [(t, _align(groups.size[t]), *groups.life[t]) for t in roots]
    live = np.zeros(max(len(g.ops), 1), dtype=np.int64)
    for _, size, first, last in blocks:
        live[first : last + 1] += size
    lower_bound = int(live.max())
    best = None
    rng = np.random.default_rng(0)  # seeded: the same model always gets the same plan
    shuffles = [
        dict(zip(roots, rng.permutation(len(roots)), strict=True)) for _ in range(RANDOM_ORDERS)
    ]
    orders = list(_ORDERS) + [lambda b, rank=rank: rank[b[0]] for rank in shuffles]
    for order in orders:
        offsets, head = _first_fit(blocks, order)
        if best is None or head < best[1]:
            best = (offsets, head)
        if head <= lower_bound:
            break
    root_offsets, head = best
    offsets = [-1] * len(g.tensors)
    for t in life:
        root, inner = groups.find(t)
        offsets[t] = root_offsets[root] + inner
    return Plan(offsets, int(head), lower_bound, counts)


def offline_plan_model(model_bytes: bytes, alias: bool = True):
    """ModelT of the model with subgraph 0's offline plan in its metadata (an earlier plan is
    replaced); `Plan` of it via `plan(model)`."""
    model = schema_fb.ModelT.InitFromObj(schema_fb.Model.GetRootAsModel(model_bytes, 0))
    add_offline_plan(model, alias)
    return model


def add_offline_plan(model, alias: bool = True) -> Plan:
    """Writes subgraph 0's plan into a ModelT's metadata (replacing an earlier one)."""
    result = plan(model, 0, alias)
    values = np.asarray([1, 0, len(result.offsets), *result.offsets], dtype="<i4")
    buffer = schema_fb.BufferT()
    buffer.data = np.frombuffer(values.tobytes(), dtype=np.uint8)
    kept = [m for m in (model.metadata or []) if m.name != METADATA_NAME]
    for old in (m for m in (model.metadata or []) if m.name == METADATA_NAME):
        model.buffers[old.buffer].data = None
    model.buffers.append(buffer)
    entry = schema_fb.MetadataT()
    entry.name = METADATA_NAME
    entry.buffer = len(model.buffers) - 1
    model.metadata = kept + [entry]
    return result


def with_offline_plan(model_bytes: bytes, alias: bool = True) -> tuple[bytes, Plan]:
    """The .tflite with subgraph 0's offline plan in its metadata, and the plan; written
    compactly, without inner tensor names (`flatbuffer_model.serialize`)."""
    model = schema_fb.ModelT.InitFromObj(schema_fb.Model.GetRootAsModel(model_bytes, 0))
    result = add_offline_plan(model, alias)
    return serialize(model, strip_names=True), result
