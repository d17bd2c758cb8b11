"""Cortex-M4 latency estimate of an int8 graph under TFLM: executed instructions per Invoke, and
milliseconds on the Nano 33 BLE (64 MHz) at 1.0 and 1.5 cycles per instruction.

Each op's instructions = its kernel's unit cost x its work, from the op list and shapes of the
.tflite (read with the schema-only flatbuffer toolkit, never TensorFlow):

- TFLM with CMSIS-NN (the plain library): the unit costs in `TFLM_CMSIS_NN_COSTS`, measured on
  real TFLM + CMSIS-NN under QEMU's Cortex-M4 (one table; each row names its source);
- the library's own kernels (the ops the generated op resolver registers its own kernel for):
  linear fits of instructions per call measured by bench/m4_kernels.py, which cross-compiles
  their C++ cores and runs them under QEMU (`OWN_KERNEL_COSTS_FILE`, written by that script).

QEMU counts instructions, not cycles: CPI 1.0-1.5 brackets the M4's pipeline and flash wait
states. The estimate is per Invoke; a bucket switch (interpreter rebuilt, AllocateTensors) and
the tokenizer come on top.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tflm_embbert.common.paths import REPO_ROOT
from tflm_embbert.graph.flatbuffer import TFLiteReport, inspect_tflite
from tflm_embbert.graph.macs import op_macs

CLOCK_HZ = 64_000_000  # nRF52840
CPIS = (1.0, 1.5)
OWN_KERNEL_COSTS_FILE = REPO_ROOT / "tflm_embbert" / "assets" / "m4_kernel_costs.json"

_NOTES = "TFLM 90b983c2 + CMSIS-NN 4ab83cc3 on QEMU mps2-an386, profiles of the demo graphs"
_ESTIMATE = "estimate, not measured (ops outside the measured list: 0.3-0.6% of the totals)"

# op -> {work unit: (instructions per unit, source)}. Units: "mac" (op_macs), "element" (output
# elements; "broadcast" when an input is broadcast), "input_element".
TFLM_CMSIS_NN_COSTS: dict[str, dict[str, tuple[float, str]]] = {
    "FULLY_CONNECTED": {"mac": (1.75, _NOTES)},
    "BATCH_MATMUL": {"mac": (2.3, _NOTES)},
    "DEPTHWISE_CONV_2D": {"mac": (9.0, _NOTES + " (k=32, no CMSIS-NN fast path)")},
    "SOFTMAX": {"element": (520.0, _NOTES)},
    "LOGISTIC": {"element": (363.0, _NOTES + " (reference kernel)")},
    "MEAN": {"input_element": (123.0, _NOTES + " (reference kernel)")},
    "SUB": {"element": (102.0, _NOTES + " (reference kernel)")},
    "ADD": {"element": (79.0, _NOTES), "broadcast": (120.0, _NOTES)},
    "MUL": {"element": (35.0, _NOTES), "broadcast": (51.0, _NOTES)},
    "CONV_2D": {"mac": (1.75, "assumed as FULLY_CONNECTED (CMSIS-NN 1x1 path); not measured")},
    "RSQRT": {"element": (300.0, _ESTIMATE)},
    "SQUARED_DIFFERENCE": {"element": (100.0, _ESTIMATE)},
    "TRANSPOSE": {"element": (8.0, _ESTIMATE)},
    "PAD": {"element": (3.0, _ESTIMATE)},
    "SELECT_V2": {"element": (12.0, _ESTIMATE)},
    "NOT_EQUAL": {"element": (10.0, _ESTIMATE)},
    "MINIMUM": {"element": (10.0, _ESTIMATE)},
    "MAXIMUM": {"element": (10.0, _ESTIMATE)},
    "STRIDED_SLICE": {"element": (8.0, _ESTIMATE)},
    "GATHER": {"element": (1.0, _ESTIMATE)},
    "CONCATENATION": {"element": (1.0, _ESTIMATE)},
    "RESHAPE": {"element": (0.5, _ESTIMATE)},
    "QUANTIZE": {"element": (20.0, _ESTIMATE)},
    "DEQUANTIZE": {"element": (20.0, _ESTIMATE)},
}
UNKNOWN_OP_COST = (10.0, "unknown op: 10 per output element, " + _ESTIMATE)


def _size(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape else 1


# ---- the own kernels' work features (shared with bench/m4_kernels.py) -------------------------


def broadcast_walk(shape1: tuple, shape2: tuple) -> tuple[int, int, str]:
    """(rows, inner, kind) of a binary op as the own kernel walks it (embbert::MakeBroadcast4:
    rank-4 NumPy broadcast, adjacent dimensions walked as one merged): `inner` elements per
    innermost loop, `rows` loops; kind "vector" (both inputs advance in the inner loop),
    "scalar" (one input is fixed along it) or "fill" (both fixed)."""
    if len(shape1) > 4 or len(shape2) > 4:
        raise ValueError(f"binary op: rank <= 4 expected, got {shape1} and {shape2}")
    d1 = (1,) * (4 - len(shape1)) + tuple(shape1)
    d2 = (1,) * (4 - len(shape2)) + tuple(shape2)
    dims = [max(a, b) for a, b in zip(d1, d2, strict=True)]
    strides = []
    acc1 = acc2 = 1
    for i in range(3, -1, -1):
        strides.append((0 if d1[i] == 1 else acc1, 0 if d2[i] == 1 else acc2))
        acc1, acc2 = acc1 * d1[i], acc2 * d2[i]
    strides.reverse()
    merged: list[list[int]] = []  # [dim, stride1, stride2], outer to inner
    for dim, (s1, s2) in zip(dims, strides, strict=True):
        if dim == 1:
            continue
        if merged and merged[-1][1] == s1 * dim and merged[-1][2] == s2 * dim:
            merged[-1] = [merged[-1][0] * dim, s1, s2]
        else:
            merged.append([dim, s1, s2])
    if not merged:  # one element each: both inputs fixed
        return 1, 1, "fill"
    inner, s1, s2 = merged[-1]
    rows = _size([m[0] for m in merged[:-1]])
    kind = "vector" if s1 and s2 else ("fill" if not s1 and not s2 else "scalar")
    return rows, inner, kind


# embbert_int8_ops.h kBinaryTableMinElements: ADD / SUB from this many outputs build per call a
# 256-entry table of each input's rescaled values (a 2 KiB scratch).
BINARY_TABLE_MIN_ELEMENTS = 1024


def own_kernel_work(name: str, input_shapes: list, output_shape: tuple) -> tuple[str, dict]:
    """(cost family, {feature: count}) of an op run by the library's own kernel. The families
    and features are what bench/m4_kernels.py measures and fits (instructions = sum of
    coefficient x feature)."""
    elements = _size(output_shape)
    if name == "LOGISTIC":
        return "LOGISTIC", {"calls": 1, "elements": elements}
    if name in ("ADD", "SUB", "MUL"):
        rows, inner, kind = broadcast_walk(tuple(input_shapes[0]), tuple(input_shapes[1]))
        kind = "scalar" if kind == "fill" else kind
        if name != "MUL" and rows * inner >= BINARY_TABLE_MIN_ELEMENTS:
            kind += "/tables"  # each input's rescaling read from a table built per call
        return f"{name}/{kind}", {"calls": 1, "rows": rows, "elements": rows * inner}
    if name in ("MEAN", "SOFTMAX"):
        shape = tuple(input_shapes[0])
        depth = int(shape[-1]) if shape else 1
        return name, {"calls": 1, "rows": _size(shape) // max(depth, 1), "elements": _size(shape)}
    if name == "DEPTHWISE_CONV_2D":
        walk = causal_conv_walk(tuple(input_shapes[0]), tuple(input_shapes[1]), tuple(output_shape))
        return name, {"calls": 1, **walk}
    if name == "FULLY_CONNECTED":
        return name, {"calls": 1, **fully_connected_walk(tuple(input_shapes[1]), output_shape)}
    if name == "BATCH_MATMUL":
        return name, {"calls": 1, **batch_matmul_walk(tuple(input_shapes[0]), output_shape)}
    raise ValueError(f"{name}: the library has no own kernel for this op")


def causal_conv_walk(input_shape: tuple, filter_shape: tuple, output_shape: tuple) -> dict:
    """The own depthwise kernel's work on the graphs' causal conv: a (1, 1, W, C) input (or
    (1, W, 1, C)), VALID, stride 1, batch 1, depth multiplier 1. The input's first W - out_W
    rows (at most k - 1) are the causal padding, which PAD writes as the zero point: the kernel
    scans them once ("scanned" values), then skips every tap that only reads such rows, so
    output position t walks k - max(0, lead - t) taps ("macs" = taps x channels), and
    requantizes each output ("outputs")."""
    _, in_h, in_w, channels = input_shape
    _, k_h, k_w, _ = filter_shape
    _, out_h, out_w, out_c = output_shape
    if in_h == 1 and k_h == 1 and out_h == 1:
        length, k, out_len = in_w, k_w, out_w
    else:
        length, k, out_len = in_h, k_h, out_h
    lead = min(length - out_len, k - 1)
    walked = sum(k - max(0, lead - t) for t in range(out_len))
    return {
        "scanned": lead * channels,
        "outputs": out_len * out_c,
        "macs": walked * out_c,
    }


def fully_connected_walk(filter_shape: tuple, output_shape: tuple) -> dict:
    """The own FULLY_CONNECTED kernel's work: rows in groups of four ("groups": each widened
    once into the scratch; "dots": one SMLAD pass over a weight row per group and channel,
    "macs4" their MACs), the leftover rows % 4 in 2 x 2 blocks in C ("tail_blocks",
    "tail_macs"; also the depths % 8 of the groups, which Dot4 leaves to C), and one
    requantization per output ("outputs")."""
    channels = int(output_shape[-1]) if output_shape else 1
    depth = int(filter_shape[-1])
    rows = _size(output_shape) // max(channels, 1)
    groups, tail = divmod(rows, 4)
    return {
        "groups": groups,
        "dots": groups * channels,
        "macs4": 4 * groups * (depth // 8 * 8) * channels,
        "tail_blocks": -(-tail // 2) * -(-channels // 2),
        "tail_macs": (tail * depth + 4 * groups * (depth % 8)) * channels,
        "outputs": rows * channels,
    }


def batch_matmul_walk(lhs_shape: tuple, output_shape: tuple) -> dict:
    """The own BATCH_MATMUL kernel's work (adj_x false, rhs as (cols, depth)): per batch the
    FULLY_CONNECTED core's work (fully_connected_walk) and the sums of the rhs rows and of the
    lhs rows (the zero-point terms, "sums" values read)."""
    rows, depth = int(lhs_shape[-2]), int(lhs_shape[-1])
    cols = int(output_shape[-1])
    batches = _size(output_shape[:-2])
    walk = fully_connected_walk((cols, depth), (rows, cols))
    return {
        "batches": batches,
        "sums": batches * (cols + rows) * depth,
        **{k: batches * v for k, v in walk.items()},
    }


# ---- the estimate ------------------------------------------------------------------------------


@dataclass
class OpCost:
    index: int
    op: str
    instructions: float
    kernel: str  # "tflm" (TFLM + CMSIS-NN) or "own"
    basis: str  # e.g. "1.75/mac x 262,144"


@dataclass
class GraphEstimate:
    instructions: float
    ops: list = field(default_factory=list)  # OpCost in execution order

    @property
    def by_op(self) -> dict:
        out: dict[str, float] = {}
        for cost in self.ops:
            out[cost.op] = out.get(cost.op, 0.0) + cost.instructions
        return dict(sorted(out.items(), key=lambda kv: -kv[1]))

    def ms(self, cpi: float) -> float:
        return self.instructions * cpi / CLOCK_HZ * 1000.0

    def to_json(self) -> dict:
        return {
            "instructions": round(self.instructions),
            "ms": {f"cpi_{cpi}": round(self.ms(cpi), 1) for cpi in CPIS},
            "by_op": {op: round(v) for op, v in self.by_op.items()},
        }


def load_own_kernel_costs(path: str | Path | None = None) -> dict:
    """The fitted own-kernel cost models {family: {"coefficients": {feature: instructions}}}
    that bench/m4_kernels.py wrote."""
    path = Path(path) if path is not None else OWN_KERNEL_COSTS_FILE
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{path}: own-kernel costs not found (bench/m4_kernels.py writes them)"
        ) from None
    if "models" not in data:
        raise ValueError(f"{path}: expected a 'models' entry (bench/m4_kernels.py output)")
    return data["models"]


def own_kernel_ops(own_costs: dict | None = None) -> frozenset:
    """The ops the own-kernel cost models cover (the generated library registers an own kernel
    for each; tests/test_latency.py checks both lists agree)."""
    models = load_own_kernel_costs() if own_costs is None else own_costs
    return frozenset(family.split("/")[0] for family in models)


def tflm_op_cost(name: str, input_shapes: list, output_shape: tuple, options=None):
    """(instructions, basis) of an op under TFLM + CMSIS-NN from `TFLM_CMSIS_NN_COSTS`."""
    table = TFLM_CMSIS_NN_COSTS.get(name)
    if table is None:
        per, _ = UNKNOWN_OP_COST
        count = _size(output_shape)
        return per * count, f"{per:g}/element (unknown op) x {count:,}"
    if "mac" in table:
        per, _ = table["mac"]
        count = op_macs(name, input_shapes, output_shape, options)
        return per * count, f"{per:g}/MAC x {count:,}"
    if "input_element" in table:
        per, _ = table["input_element"]
        count = _size(input_shapes[0])
        return per * count, f"{per:g}/input element x {count:,}"
    count = _size(output_shape)
    broadcast = "broadcast" in table and any(
        tuple(s) != tuple(output_shape) for s in input_shapes[:2]
    )
    per, _ = table["broadcast" if broadcast else "element"]
    kind = "broadcast element" if broadcast else "element"
    return per * count, f"{per:g}/{kind} x {count:,}"


def own_op_cost(name: str, input_shapes: list, output_shape: tuple, models: dict):
    family, work = own_kernel_work(name, input_shapes, output_shape)
    model = models.get(family)
    if model is None:
        return None
    coefficients = model["coefficients"]
    total = sum(coefficients.get(feature, 0.0) * count for feature, count in work.items())
    basis = " + ".join(f"{coefficients.get(f, 0.0):.3g}x{n:,} {f}" for f, n in work.items())
    return max(total, 0.0), f"own {family}: {basis}"


def estimate_report(
    report: TFLiteReport, own_ops=frozenset(), own_costs: dict | None = None
) -> GraphEstimate:
    """Instructions of one Invoke of the graph in `report`; ops named in `own_ops` are costed
    with the own kernels' fits (`own_costs`, default `load_own_kernel_costs()`)."""
    if own_ops and own_costs is None:
        own_costs = load_own_kernel_costs()
    costs = []
    for op in report.ops:
        shapes = [report.tensors[i].shape if i >= 0 else () for i in op.inputs]
        out = report.tensors[op.outputs[0]].shape if op.outputs else ()
        own = own_op_cost(op.name, shapes, out, own_costs) if op.name in own_ops else None
        if own is not None:
            costs.append(OpCost(op.index, op.name, own[0], "own", own[1]))
            continue
        instructions, basis = tflm_op_cost(op.name, shapes, out, op.options)
        costs.append(OpCost(op.index, op.name, instructions, "tflm", basis))
    return GraphEstimate(sum(c.instructions for c in costs), costs)


def estimate_tflite(
    model_bytes: bytes, own_ops=frozenset(), own_costs: dict | None = None, subgraph=None
) -> GraphEstimate:
    return estimate_report(inspect_tflite(model_bytes, subgraph), own_ops, own_costs)


def estimate_buckets(
    model_array: bytes,
    lengths: list[int],
    offsets: list[int],
    own_ops=frozenset(),
    own_costs: dict | None = None,
) -> dict[int, GraphEstimate]:
    """{bucket length: estimate} for a bucket model array (one flatbuffer root per bucket at its
    offset, export.buckets)."""
    return {
        length: estimate_tflite(model_array[offset:], own_ops, own_costs)
        for length, offset in zip(lengths, offsets, strict=True)
    }


def latency_rows(estimates: dict[int, GraphEstimate], label: str) -> list[list]:
    """Markdown table rows: bucket, kernels, instructions (M), ms at each CPI, top ops."""
    rows = []
    for length, estimate in estimates.items():
        top = ", ".join(
            f"{op} {100 * v / estimate.instructions:.0f}%"
            for op, v in list(estimate.by_op.items())[:3]
        )
        rows.append(
            [
                length,
                label,
                f"{estimate.instructions / 1e6:.2f} M",
                " / ".join(f"{estimate.ms(cpi):,.0f}" for cpi in CPIS),
                top,
            ]
        )
    return rows


LATENCY_HEADER = [
    "bucket L",
    "kernels",
    "instructions per Invoke",
    "ms at 64 MHz, CPI " + " / ".join(f"{c:g}" for c in CPIS),
    "largest ops",
]
