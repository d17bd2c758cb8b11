"""Memory report of an int8 .tflite: flash, TFLM arena, tensors alive at the peak, paper's count.

Flash is the .tflite size. RAM is the arena the TFLM runtime measured (`tflm_check.
measure_arena_bytes`: planned head + persistent tail, and the smallest arena that runs). The
tensors alive at the peak come from the graph itself, by the offline plan's rule: a non-constant
tensor lives from the op that writes it (graph inputs: from op 0) to the last op that reads it
(graph outputs: to the end);
the op where the live bytes are largest is the activation peak, a lower bound on the planned head
(TFLM's greedy planner can leave gaps). The paper counts memory analytically as weights + L^2 +
2*L*d activation values (../shared/notes/embbert-reference.md); it is shown beside the measured
figures at the same config and length, at 1 byte per value (int8).
"""

from __future__ import annotations

from dataclasses import replace

from tflm_embbert.graph.flatbuffer import inspect_tflite
from tflm_embbert.graph.memory_plan import arena_lifetimes


def tensor_lifetimes(model_bytes: bytes) -> dict[int, tuple[int, int]]:
    """{tensor index: (first op, last op)} of every arena tensor, by the one rule the offline
    memory plan uses too (`graph.memory_plan.lifetimes`)."""
    return {t: (first, last) for t, (first, last) in arena_lifetimes(model_bytes).items()}


def activation_peak(model_bytes: bytes, top: int = 5, names: list[str] | None = None) -> dict:
    """The op at which the live activation bytes peak, those bytes, and the largest live tensors.

    `names`: every tensor's name by index, for a graph written without them (a compact graph,
    see `graph.flatbuffer.serialize`; `tflm.int8_eval.tensor_names`); names and layers are read
    from them. A tensor still without a name is called after the op that writes it."""
    report = _with_names(inspect_tflite(model_bytes), names)
    lifetimes = tensor_lifetimes(model_bytes)
    best_op, best_bytes = 0, -1
    for op in report.ops:
        live = sum(
            report.tensors[i].nbytes
            for i, (first, last) in lifetimes.items()
            if first <= op.index <= last
        )
        if live > best_bytes:
            best_op, best_bytes = op.index, live
    alive = [
        report.tensors[i] for i, (first, last) in lifetimes.items() if first <= best_op <= last
    ]
    alive.sort(key=lambda t: t.nbytes, reverse=True)
    op = report.ops[best_op]
    return {
        "op_index": best_op,
        "op": op.name,
        "layer": report.layer_of(op),
        "live_bytes": best_bytes,
        "largest_tensors": [
            {
                "name": _tensor_label(report, t.index, lifetimes[t.index][0]),
                "shape": list(t.shape),
                "dtype": t.dtype,
                "bytes": t.nbytes,
            }
            for t in alive[:top]
        ],
    }


def _with_names(report, names: list[str] | None):
    """`report` with its tensors renamed to `names` (one per tensor)."""
    if names is None:
        return report
    if len(names) != len(report.tensors):
        raise ValueError(
            f"memory report: {len(names)} tensor names for {len(report.tensors)} tensors"
        )
    tensors = [replace(t, name=name) for t, name in zip(report.tensors, names, strict=True)]
    return replace(report, tensors=tensors)


def _tensor_label(report, index: int, first_op: int) -> str:
    """The tensor's name up to the converter's first ';', else 'output of op #N OP'."""
    name = report.tensors[index].name.split(";")[0]
    if name and name != "None":
        return name
    writers = [op for op in report.ops if index in op.outputs]
    if writers:
        return f"output of op #{writers[0].index} {writers[0].name}"
    return f"input of op #{first_op}"


def flash_breakdown(model_bytes: bytes) -> dict:
    """Where the .tflite bytes go: constant tensor data (weights, biases, tables), tensor names,
    quantization parameters (float32 scales + int64 zero points, per tensor or per channel), and
    the rest (flatbuffer structure, op options, metadata)."""
    report = inspect_tflite(model_bytes)
    constants = sum(t.nbytes for t in report.tensors if t.constant)
    names = sum(len(t.name.encode()) for t in report.tensors)
    quantization = sum(12 * len(t.scales) for t in report.tensors)
    return {
        "constants": constants,
        "tensor_names": names,
        "quantization_params": quantization,
        "other": len(model_bytes) - constants - names - quantization,
    }


def paper_analytic_bytes(
    parameters: int, seq_len: int, hidden_dim: int, bytes_per_value: int = 1
) -> dict:
    """The paper's count: every parameter plus L^2 + 2*L*d activation values."""
    weights = parameters * bytes_per_value
    activations = (seq_len * seq_len + 2 * seq_len * hidden_dim) * bytes_per_value
    return {"weights": weights, "activations": activations, "total": weights + activations}


def memory_report(
    model_bytes: bytes,
    arena: dict,
    *,
    parameters: int,
    seq_len: int,
    hidden_dim: int,
    names: list[str] | None = None,
) -> dict:
    """JSON-ready memory figures of one int8 model (see the module docstring); `names`: its
    tensors' names when the graph was written without them (`activation_peak`)."""
    return {
        "seq_len": seq_len,
        "flash_tflite_bytes": len(model_bytes),
        "flash_breakdown": flash_breakdown(model_bytes),
        "ram_arena_bytes": arena["minimum"],
        "arena": dict(arena),
        "activation_peak": activation_peak(model_bytes, names=names),
        "parameters": parameters,
        "paper_analytic_int8": paper_analytic_bytes(parameters, seq_len, hidden_dim),
    }


def _kb(value: int) -> str:
    return f"{value:,} B ({value / 1024:.1f} KiB)"


def memory_markdown(memory: dict, title: str = "Memory") -> str:
    """A Markdown section for one `memory_report`."""
    arena, peak, paper = memory["arena"], memory["activation_peak"], memory["paper_analytic_int8"]
    lines = [
        f"### {title} (L={memory['seq_len']})",
        "",
        "| figure | bytes |",
        "|---|---|",
        f"| flash: .tflite | {_kb(memory['flash_tflite_bytes'])} |",
        f"| RAM: smallest arena that runs under TFLM | {_kb(arena['minimum'])} |",
        f"| arena recorded by TFLM (planned + persistent) | {_kb(arena['recorded'])} = "
        f"{arena['planned']:,} + {arena['persistent']:,} |",
        f"| activations alive at the peak (op #{peak['op_index']} {peak['op']}, "
        f"{peak['layer'] or 'input'}) | {_kb(peak['live_bytes'])} |",
        f"| paper's analytic int8 count: {memory['parameters']:,} weights + L^2 + 2Ld "
        f"activations | {_kb(paper['total'])} = {paper['weights']:,} + "
        f"{paper['activations']:,} |",
        "",
        "Largest tensors alive at the peak:",
        "",
        "| tensor | shape | dtype | bytes |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{t['name']}` | {t['shape']} | {t['dtype']} | {t['bytes']:,} |"
        for t in peak["largest_tensors"]
    ]
    return "\n".join(lines) + "\n"
