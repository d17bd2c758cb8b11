"""Memory-lean int8 graph (tflm_embbert.graph.lean_graph) per variant and length, under TFLM.

    python bench/lean_graph.py --model runs/bench_int8/snips_seed0/qat.keras --lengths 64,128,256

For each length: converts the model once per weight layout (per-channel Dense weights, the
converter's default; per-tensor Dense weights, QAT's own grid), rewrites each conversion with
every variant (lean_graph options, with or without the offline memory plan of memory_plan),
and measures with the TFLM runtime: arena (planned + persistent, and the
smallest arena that runs), .tflite bytes, MACs, host invoke time, and the int8 logits against
the straightforward graph of the same conversion on the first --examples test examples
(max LSB difference and predicted-class agreement; the rewrite is meant to be exact: 0 LSB).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from bench.common import machine, markdown_table, write_json  # noqa: E402
from tflm_embbert.common import paths  # noqa: E402
from tflm_embbert.data.datasets import load_task  # noqa: E402
from tflm_embbert.data.encoding import encode  # noqa: E402
from tflm_embbert.data.tokenizer import Tokenizer  # noqa: E402
from tflm_embbert.graph.flatbuffer import inspect_tflite  # noqa: E402
from tflm_embbert.graph.lean_graph import LeanOptions, lean_tflite  # noqa: E402
from tflm_embbert.graph.macs import count_macs  # noqa: E402
from tflm_embbert.graph.memory_plan import with_offline_plan  # noqa: E402
from tflm_embbert.quantize.convert import to_int8_tflite  # noqa: E402
from tflm_embbert.quantize.prepare import load_for_conversion  # noqa: E402
from tflm_embbert.tflm.check import invoke_ms, measure_arena_bytes, run_tflm  # noqa: E402
from tflm_embbert.tflm.int8_eval import calibration_inputs  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("model", "runs/bench_int8/snips_seed0/qat.keras", "Float or QAT .keras.")
flags.DEFINE_string("task", "snips", "Task for calibration and the equality check.")
flags.DEFINE_list("lengths", ["64", "128", "256"], "Sequence lengths.")
flags.DEFINE_integer(
    "examples", 0, "Test examples compared with the straightforward graph (0: the whole split)."
)
flags.DEFINE_string("data_dir", None, "Task data (default ../shared/data).")
flags.DEFINE_string("out", "bench/results/lean_graph", "Result folder.")

# name: (lean options or None for the converter's graph, offline memory plan)
VARIANTS = {
    "straightforward": (None, False),
    "straightforward + plan": (None, True),
    "pretranspose + [CLS]-only + plan": (LeanOptions(chunk_rows=0, mask_bias=False), True),
    "+ 64-row chunks per layer + plan": (LeanOptions(chunk_rows=64, mask_bias=False), True),
    "+ 64-row attention chunks + plan": (
        LeanOptions(chunk_rows=64, chunk_scope="attention", mask_bias=False),
        True,
    ),
    "+ 32-row attention chunks + plan": (
        LeanOptions(chunk_rows=32, chunk_scope="attention", mask_bias=False),
        True,
    ),
    "pretranspose + [CLS]-only + mask bias + plan": (LeanOptions(chunk_rows=0), True),
    "+ 64-row chunks per layer + mask bias + plan": (LeanOptions(chunk_rows=64), True),
    "+ 64-row attention chunks + mask bias + plan": (
        LeanOptions(chunk_rows=64, chunk_scope="attention"),
        True,
    ),
    "+ 32-row attention chunks + mask bias + plan": (
        LeanOptions(chunk_rows=32, chunk_scope="attention"),
        True,
    ),
}

flags.DEFINE_list("variants", list(VARIANTS), "Variants to measure (names as in VARIANTS).")
flags.register_validator(
    "variants",
    lambda names: all(name in VARIANTS for name in names),
    message=f"--variants: expected names from: {'; '.join(VARIANTS)}",
)


def measure(model_bytes: bytes, theirs: np.ndarray, inputs: dict) -> dict:
    """theirs: the straightforward graph's int8 logits on `inputs`."""
    arena = measure_arena_bytes(model_bytes)
    mine = run_tflm(model_bytes, inputs).raw.astype(np.int32)
    return {
        "tflite_bytes": len(model_bytes),
        "arena": arena,
        "macs": count_macs(model_bytes)["total"],
        "ops": len(inspect_tflite(model_bytes).ops),
        "invoke_ms": round(invoke_ms(model_bytes, inputs), 2),
        "max_lsb_vs_straightforward": int(np.abs(mine - theirs).max()),
        "class_agreement": float(np.mean(mine.argmax(-1) == theirs.argmax(-1))),
    }


def main(argv):
    del argv
    data_dir = Path(FLAGS.data_dir) if FLAGS.data_dir else paths.shared_data_dir()
    model_path = Path(FLAGS.model)
    model = load_for_conversion(model_path)
    tokenizer = Tokenizer.load(model_path.parent)
    task = load_task(FLAGS.task, data_dir, seed=0)
    rows = []
    cells = []
    for length in map(int, FLAGS.lengths):
        calibration = calibration_inputs(tokenizer, task, length, 200, 0)
        test_x, _ = encode(tokenizer, task.test[: FLAGS.examples or None], length)
        for per_channel in (True, False):
            started = time.time()
            straight = to_int8_tflite(model, length, calibration, per_channel_dense=per_channel)
            print(f"[L={length}] converted in {time.time() - started:.0f} s", flush=True)
            theirs = run_tflm(straight, test_x).raw.astype(np.int32)
            for variant in FLAGS.variants:
                options, offline_plan = VARIANTS[variant]
                graph = straight if options is None else lean_tflite(straight, options)
                if offline_plan:
                    graph = with_offline_plan(graph)[0]
                cell = {
                    "length": length,
                    "dense_weights": "per-channel" if per_channel else "per-tensor",
                    "variant": variant,
                    **measure(graph, theirs, test_x),
                }
                cells.append(cell)
                arena = cell["arena"]
                print(f"  {cell['dense_weights']} {variant}: arena {arena['minimum']:,}")
                rows.append(
                    [
                        length,
                        cell["dense_weights"],
                        variant,
                        f"{arena['minimum']:,}",
                        f"{arena['planned']:,} + {arena['persistent']:,}",
                        f"{cell['tflite_bytes']:,}",
                        f"{cell['macs'] / 1e6:.2f} M",
                        cell["ops"],
                        cell["invoke_ms"],
                        cell["max_lsb_vs_straightforward"],
                        f"{100 * cell['class_agreement']:.1f}",
                    ]
                )
    out = Path(FLAGS.out)
    write_json(
        out / "results.json",
        {"machine": machine(), "model": str(model_path), "task": FLAGS.task, "cells": cells},
    )
    header = [
        "L",
        "Dense weights",
        "variant",
        "arena B (min that runs)",
        "planned + persistent",
        ".tflite B",
        "MACs",
        "ops",
        "host invoke ms",
        "max LSB vs straightforward",
        "same class %",
    ]
    scope = (
        f"the first {FLAGS.examples} test examples" if FLAGS.examples else "the whole test split"
    )
    (out / "results.md").write_text(
        "# Memory-lean int8 graph under TFLM\n\n"
        f"Model `{model_path}`, {FLAGS.task}; arena from the `tflite_micro` runtime (x86 host, "
        "reference kernels; 64-bit structs make persistent larger than on a Cortex-M). "
        f"Equality on {scope} against the straightforward "
        "graph of the same conversion. Command: `python bench/lean_graph.py "
        f"--model {model_path} --lengths {','.join(FLAGS.lengths)} "
        f"--examples {FLAGS.examples}`.\n\n" + markdown_table(header, rows)
    )
    print((out / "results.md").read_text())


if __name__ == "__main__":
    app.run(main)
