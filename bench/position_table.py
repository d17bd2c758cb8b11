"""Study (not shipped): the folded position table recomputed at run time by a small int8 matmul.

    python bench/position_table.py --model runs/bench_int8/snips_seed0/qat.keras --seq_len 256

The Nano Embedder's positions are E_pos[:L] (L, r_d) @ W_pos (r_d, d), a rank-r_d table; for a
fixed L the converter folds them into one (1, L, d) int8 constant (32 KiB at L=256, d=128; the
Keras model keeps 6 KiB). This study replaces that constant by FULLY_CONNECTED(P, W): P a
(1, L, r) int8 constant (per-tensor, columns balanced to the int8 range), W (d, r) int8 per
output channel, the output in the folded table's quantization. P and W come from a rank-r SVD
of the dequantized table refined by alternating least squares on the int8 grids; r is the
smallest multiple of 4 (up to d/2) whose table is within 1 LSB everywhere.

It measures, against the converter's graph (both given the export's lean rewrite and offline
plan, `--chunk_rows`/`--chunk_scope`): the new table's entries that differ under the
`tflite_micro` runtime, .tflite bytes, the arena, and on the whole test split the largest
int8-logit difference, the share of examples with the same class and both accuracies. The
memory-lean goal asks for the same class on the whole test split and logits within 2 LSB.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402
from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema_fb  # noqa: E402

from bench.common import machine, markdown_table, write_json  # noqa: E402
from tflm_embbert.common import paths  # noqa: E402
from tflm_embbert.data.datasets import load_task  # noqa: E402
from tflm_embbert.data.encoding import encode  # noqa: E402
from tflm_embbert.data.tokenizer import Tokenizer  # noqa: E402
from tflm_embbert.graph.flatbuffer import data_of, load_model, op_code_index, serialize  # noqa: E402
from tflm_embbert.graph.lean_graph import LeanOptions, lean_tflite  # noqa: E402
from tflm_embbert.graph.length_buckets import canonicalize  # noqa: E402
from tflm_embbert.graph.memory_plan import with_offline_plan  # noqa: E402
from tflm_embbert.quantize.convert import to_int8_tflite  # noqa: E402
from tflm_embbert.quantize.qat import load_qat_model  # noqa: E402
from tflm_embbert.tflm.check import measure_arena_bytes, run_tflm  # noqa: E402
from tflm_embbert.tflm.int8_eval import calibration_inputs  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "runs/bench_int8/snips_seed0/qat.keras", "QAT .keras model.")
flags.DEFINE_integer("seq_len", 256, "Sequence length of the conversion.")
flags.DEFINE_integer("chunk_rows", 64, "Lean rewrite: rows per chunk.")
flags.DEFINE_string("chunk_scope", "attention", "Lean rewrite: chunk scope.")
flags.DEFINE_string("data_dir", None, "Task data (default ../shared/data).")
flags.DEFINE_string("out", "bench/results/position_table", "Result folder.")


def main(argv):
    del argv
    data_dir = Path(FLAGS.data_dir) if FLAGS.data_dir else paths.shared_data_dir()
    model_path = Path(FLAGS.model)
    trained = json.loads((model_path.parent / "results.json").read_text())
    task = load_task(trained["task"], data_dir, seed=0)
    tokenizer = Tokenizer.load(model_path.parent)
    model = load_qat_model(model_path, compile=False)
    length = FLAGS.seq_len
    calibration = calibration_inputs(tokenizer, task, length, 200, 0)
    straight = to_int8_tflite(model, length, calibration, per_channel_dense=False)
    factored, info = factor_positions(straight)
    if info is None:
        raise SystemExit(f"--model: no folded position table found at L={length}")
    table, alone = table_models(straight, factored)
    zeros = np.zeros((1, length), np.int32)
    ran = run_tflm(alone, {"token_ids": zeros, "segment_ids": zeros}).raw.reshape(table.shape)
    off = np.abs(ran.astype(np.int32) - table)
    options = LeanOptions(chunk_rows=FLAGS.chunk_rows, chunk_scope=FLAGS.chunk_scope)
    graphs = {
        name: with_offline_plan(lean_tflite(graph, options))[0]
        for name, graph in (("folded table", straight), ("runtime matmul", factored))
    }
    test_x, test_y = encode(tokenizer, task.test, length)
    logits = {name: run_tflm(graph, test_x).raw.astype(np.int32) for name, graph in graphs.items()}
    arenas = {name: measure_arena_bytes(graph) for name, graph in graphs.items()}
    reference = logits["folded table"]
    rows, cells = [], []
    for name, graph in graphs.items():
        cell = {
            "graph": name,
            "tflite_bytes": len(graph),
            "arena": arenas[name],
            "accuracy": float(np.mean(logits[name].argmax(-1) == test_y)),
            "max_lsb_vs_folded": int(np.abs(logits[name] - reference).max()),
            "mean_lsb_vs_folded": float(np.abs(logits[name] - reference).mean()),
            "same_class_vs_folded": float(np.mean(logits[name].argmax(-1) == reference.argmax(-1))),
        }
        cells.append(cell)
        rows.append(
            [
                name,
                f"{cell['tflite_bytes']:,}",
                f"{arenas[name]['minimum']:,}",
                f"{100 * cell['accuracy']:.2f}",
                cell["max_lsb_vs_folded"],
                f"{cell['mean_lsb_vs_folded']:.2f}",
                f"{100 * cell['same_class_vs_folded']:.2f}",
            ]
        )
    results = {
        "model": str(model_path),
        "task": task.name,
        "seq_len": length,
        "lean": {"chunk_rows": FLAGS.chunk_rows, "chunk_scope": FLAGS.chunk_scope},
        "factors": {
            **info,
            "entries_off_tflm": int(np.sum(off > 0)),
            "max_entry_lsb_tflm": int(off.max()),
        },
        "test_examples": len(test_y),
        "graphs": cells,
        "machine": machine(),
    }
    out = Path(FLAGS.out)
    write_json(out / "results.json", results)
    table_md = markdown_table(
        [
            "graph",
            ".tflite B",
            "arena B",
            "accuracy",
            "max LSB vs folded",
            "mean LSB",
            "same class %",
        ],
        rows,
    )
    (out / "results.md").write_text(
        "# Position table: folded constant vs run-time int8 matmul (study, not shipped)\n\n"
        f"Model `{model_path}`, {task.name}, L={length}, per-tensor Dense weights, lean rewrite "
        f"({FLAGS.chunk_rows}-row {FLAGS.chunk_scope} chunks) + offline plan; "
        f"{len(test_y)} test examples under `tflite_micro`. Rank {info['rank']}: "
        f"{info['factor_bytes']:,} B of factors for a {info['table_bytes']:,} B table; "
        f"{results['factors']['entries_off_tflm']:,} of {info['entries']:,} table entries differ "
        f"(at most {results['factors']['max_entry_lsb_tflm']} LSB) under TFLM. Command: "
        f"`python bench/position_table.py --model {model_path} --seq_len {length}`.\n\n"
        + table_md
        + "\n"
    )
    print(table_md)


REFINE_ROUNDS = 8
_INT8 = schema_fb.TensorType.INT8


def factor_positions(model_bytes: bytes, rank: int | None = None) -> tuple[bytes, dict | None]:
    """(the rewritten .tflite, info) or (model_bytes, None) when subgraph 0 has no folded
    position table that a rank-r product reproduces in fewer bytes. rank: force this rank;
    None: choose it (module doc). info: {"rank",
    "table_bytes", "factor_bytes", "entries", "entries_off_emulated"} (entries of the new table
    off by 1 LSB in float arithmetic; `table_models` gives the runtime's own)."""
    if len(load_model(model_bytes).subgraphs) != 1:
        return model_bytes, None
    # The converter keeps an identity STRIDED_SLICE on the table at some lengths: read through it.
    model = canonicalize(load_model(model_bytes))
    graph = model.subgraphs[0]
    found = _position_table(model, graph)
    if found is None:
        return model_bytes, None
    index, consumers = found
    tensor = graph.tensors[index]
    shape = [int(v) for v in tensor.shape]
    length, width = shape[-2], shape[-1]
    table = np.frombuffer(data_of(model.buffers[tensor.buffer]), np.int8).reshape(length, width)
    scale = float(tensor.quantization.scale[0])
    zero = int(tensor.quantization.zeroPoint[0])
    ranks = [rank] if rank else range(4, width // 2 + 1, 4)
    for r in ranks:
        factors = _factor(table, scale, zero, r)
        off = np.abs(_emulate(*factors, scale, zero) - table)
        if rank or off.max() <= 1:
            break
    else:
        return model_bytes, None
    p, w, w_scales, p_scale = factors
    factor_bytes = p.size + w.size + 12 * width  # + per-channel scales (float) and zero points
    if not rank and factor_bytes >= table.size:
        return model_bytes, None
    _replace(model, graph, index, consumers, p, w, w_scales, p_scale)
    info = {
        "rank": int(p.shape[-1]),
        "table_bytes": int(table.size),
        "factor_bytes": int(factor_bytes),
        "entries": int(table.size),
        "entries_off_emulated": int(np.sum(off > 0)),
    }
    return serialize(model), info


def _position_table(model, graph) -> tuple[int, list] | None:
    """(tensor index, consumer ops) of the (1, L, d) int8 constant that only ADDs read, where L
    is the sequence length of the (1, L) inputs; None if there is not exactly one."""
    lengths = {
        int(graph.tensors[i].shape[1]) for i in graph.inputs if len(graph.tensors[i].shape) == 2
    }
    if len(lengths) != 1:
        return None
    length = lengths.pop()
    readers: dict[int, list] = {}
    for op in graph.operators:
        for i in op.inputs:
            readers.setdefault(int(i), []).append(op)
    found = []
    for index, tensor in enumerate(graph.tensors):
        shape = [int(v) for v in (tensor.shape if tensor.shape is not None else [])]
        if (
            tensor.type == _INT8
            and len(shape) == 3
            and shape[:2] == [1, length]
            and data_of(model.buffers[tensor.buffer]) is not None
            and tensor.quantization is not None
            and len(tensor.quantization.scale) == 1
            and readers.get(index)
            and all(_op_name(model, op) == "ADD" for op in readers[index])
        ):
            found.append((index, readers[index]))
    return found[0] if len(found) == 1 else None


def _op_name(model, op) -> str:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    return {v: k for k, v in vars(schema_fb.BuiltinOperator).items()}.get(builtin, "")


def _factor(table: np.ndarray, scale: float, zero: int, rank: int):
    """(P int8 (L, r), W int8 (d, r), W's per-row scales (d,), P's scale) for the table."""
    target = (table.astype(np.float64) - zero) * scale
    u, s, vt = np.linalg.svd(target, full_matrices=False)
    p = u[:, :rank] * np.sqrt(s[:rank])
    w = vt[:rank].T * np.sqrt(s[:rank])
    best = None
    for _ in range(REFINE_ROUNDS):
        p, w = _balance(p, w)
        factors = _quantize(p, w)
        error = np.mean(_emulate(*factors, scale, zero) != table)
        if best is None or error < best[0]:
            best = (error, factors)
        p_q, w_q, w_scales, p_scale = factors
        w = np.linalg.lstsq(p_q * p_scale, target, rcond=None)[0].T
        w_q, w_scales = _per_row(w)
        p = np.linalg.lstsq(w_q * w_scales[:, None], target.T, rcond=None)[0].T
    return best[1]


def _balance(p, w):
    """Scales P's columns to the same range (W's columns take the inverse)."""
    columns = np.maximum(np.abs(p).max(axis=0), 1e-12)
    return p / columns, w * columns


def _per_row(w):
    scales = np.maximum(np.abs(w).max(axis=1), 1e-12) / 127.0
    return np.clip(np.round(w / scales[:, None]), -127, 127), scales


def _quantize(p, w):
    p_scale = max(float(np.abs(p).max()), 1e-12) / 127.0
    p_q = np.clip(np.round(p / p_scale), -127, 127)
    w_q, w_scales = _per_row(w)
    return p_q, w_q, w_scales, p_scale


def _emulate(p_q, w_q, w_scales, p_scale, scale, zero):
    """The FC's int8 output in float arithmetic (close to TFLM's fixed-point requantization)."""
    acc = p_q @ w_q.T
    out = np.round(acc * (p_scale * w_scales[None, :]) / scale) + zero
    return np.clip(out, -128, 127)


def _replace(model, graph, index, consumers, p_q, w_q, w_scales, p_scale) -> int:
    """Adds P, W and the FC whose output replaces tensor `index` for its consumers; the folded
    table's buffer is emptied. Returns the FC output's tensor index."""
    table = graph.tensors[index]
    length, width = int(table.shape[1]), int(table.shape[2])
    p_index = _add_tensor(
        model, graph, "positions/table", [1, length, p_q.shape[1]], p_q, [p_scale], [0]
    )
    w_index = _add_tensor(
        model,
        graph,
        "positions/projection",
        [width, w_q.shape[1]],
        w_q,
        w_scales,
        np.zeros(width, np.int64),
    )
    output = copy.deepcopy(table)
    output.name, output.buffer, output.shapeSignature = b"positions", 0, None
    graph.tensors.append(output)
    out_index = len(graph.tensors) - 1
    options = schema_fb.FullyConnectedOptionsT()
    options.keepNumDims = True
    op = schema_fb.OperatorT()
    op.opcodeIndex = op_code_index(model, schema_fb.BuiltinOperator.FULLY_CONNECTED)
    op.inputs = np.asarray([p_index, w_index, -1], np.int32)
    op.outputs = np.asarray([out_index], np.int32)
    op.builtinOptionsType = schema_fb.BuiltinOptions.FullyConnectedOptions
    op.builtinOptions = options
    first = min(graph.operators.index(c) for c in consumers)
    graph.operators.insert(first, op)
    for consumer in consumers:
        consumer.inputs = np.where(consumer.inputs == index, out_index, consumer.inputs).astype(
            np.int32
        )
    model.buffers[table.buffer].data = None
    return out_index


def _add_tensor(model, graph, name, shape, values, scales, zeros) -> int:
    buffer = schema_fb.BufferT()
    buffer.data = np.frombuffer(np.asarray(values, np.int8).tobytes(), np.uint8).copy()
    model.buffers.append(buffer)
    quantization = schema_fb.QuantizationParametersT()
    quantization.scale = np.asarray(scales, np.float32)
    quantization.zeroPoint = np.asarray(zeros, np.int64)
    quantization.quantizedDimension = 0
    tensor = schema_fb.TensorT()
    tensor.name, tensor.type = name.encode(), _INT8
    tensor.shape = np.asarray(shape, np.int32)
    tensor.buffer = len(model.buffers) - 1
    tensor.quantization = quantization
    graph.tensors.append(tensor)
    return len(graph.tensors) - 1


def table_models(original: bytes, factored: bytes) -> tuple[np.ndarray, bytes]:
    """(the folded (L, d) int8 table of `original`, a model of `factored` cut down to the FC
    that replaces it, with that FC's output as the graph output): running the second under
    TFLM gives the runtime's own table to compare with the first."""
    model = canonicalize(load_model(original))
    index, _ = _position_table(model, model.subgraphs[0])
    tensor = model.subgraphs[0].tensors[index]
    table = np.frombuffer(data_of(model.buffers[tensor.buffer]), np.int8)
    table = table.reshape(int(tensor.shape[1]), int(tensor.shape[2]))
    alone = load_model(factored)
    graph = alone.subgraphs[0]
    output = next(i for i, t in enumerate(graph.tensors) if t.name == b"positions")
    graph.operators = [op for op in graph.operators if output in list(op.outputs)]
    graph.outputs = np.asarray([output], np.int32)
    alone.signatureDefs = None
    alone.metadata = None
    return table, serialize(alone)


if __name__ == "__main__":
    app.run(main)
