"""Per-channel vs per-tensor int8 Dense weights of trained QAT models, under TFLM.

    python bench/dense_layout.py --models runs/bench_int8/snips_seed0/qat.keras,...

QAT trains every Dense kernel on one per-tensor int8 grid (tflm_embbert/quantize/qat.py); the
converter by default re-quantizes those kernels per output channel. For each model (the task and
L come from the results.json beside it) both conversions run the whole test split under the
`tflite_micro` runtime: the task metric, the share of test examples whose int8 class equals
the QAT Keras model's, and, with the export's lean graph, .tflite bytes and the smallest arena
at that L and (--arena_lengths) at longer ones.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench.common import machine, markdown_table, write_json  # noqa: E402
from tflm_embbert.common import paths  # noqa: E402
from tflm_embbert.data.datasets import load_task  # noqa: E402
from tflm_embbert.data.tokenizer import Tokenizer  # noqa: E402
from tflm_embbert.quantize.convert import to_int8_tflite  # noqa: E402
from tflm_embbert.quantize.qat import load_qat_model  # noqa: E402
from tflm_embbert.tflm.int8_eval import (  # noqa: E402
    calibration_inputs,
    int8_under_tflm,
    smallest_lean,
)
from tflm_embbert.tflm.settings import Int8Settings  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("models", ["runs/bench_int8/snips_seed0/qat.keras"], "QAT .keras models.")
flags.DEFINE_list("arena_lengths", ["256"], "Longer L at which the arena is also measured.")
flags.DEFINE_string("data_dir", None, "Task data (default ../shared/data).")
flags.DEFINE_string("out", "bench/results/dense_layout", "Result folder.")

LAYOUTS = {"per-channel": True, "per-tensor": False}


def main(argv):
    del argv
    data_dir = Path(FLAGS.data_dir) if FLAGS.data_dir else paths.shared_data_dir()
    cells, rows = [], []
    for model_path in map(Path, FLAGS.models):
        trained = json.loads((model_path.parent / "results.json").read_text())
        seq_len, seed = int(trained["seq_len"]), int(trained["float"].get("seed", 0))
        task = load_task(trained["task"], data_dir, seed=seed)
        tokenizer = Tokenizer.load(model_path.parent)
        model = load_qat_model(model_path, compile=False)
        for layout, per_channel in LAYOUTS.items():
            print(f"[{model_path}] {layout}", flush=True)
            result = int8_under_tflm(
                model,
                task,
                tokenizer,
                seq_len,
                Int8Settings(per_channel_dense=per_channel, seed=seed),
                references={"qat": model},
            )
            arenas = {seq_len: result.memory["ram_arena_bytes"]}
            for length in map(int, FLAGS.arena_lengths):
                calibration = calibration_inputs(
                    tokenizer, task, length, Int8Settings().calibration_examples, seed
                )
                straight = to_int8_tflite(model, length, calibration, per_channel_dense=per_channel)
                _, _, arena = smallest_lean(straight, Int8Settings().chunk_rows, True, print)
                arenas[length] = arena["minimum"]
            metric = trained["metric"]
            cell = {
                "model": str(model_path),
                "task": task.name,
                "seq_len": seq_len,
                "layout": layout,
                "metric": metric,
                "qat_keras": trained["qat"]["test"][metric],
                "int8_tflm": result.test[metric],
                "same_class_as_qat": result.agreement.get("qat"),
                "tflite_bytes": len(result.tflite),
                "arena_bytes": {str(k): v for k, v in arenas.items()},
            }
            cells.append(cell)
            rows.append(
                [
                    f"{task.name} (`{model_path.parent.name}`)",
                    seq_len,
                    layout,
                    f"{100 * cell['qat_keras']:.2f}",
                    f"{100 * cell['int8_tflm']:.2f}",
                    f"{100 * cell['same_class_as_qat']:.2f}",
                    f"{cell['tflite_bytes']:,}",
                    " / ".join(f"{v:,}" for v in arenas.values()),
                ]
            )
    out = Path(FLAGS.out)
    write_json(out / "results.json", {"machine": machine(), "cells": cells})
    lengths = ", ".join(["task L"] + FLAGS.arena_lengths)
    header = [
        "task (model)",
        "L",
        "Dense weights",
        "QAT Keras",
        "int8 TFLM",
        "int8 class = QAT %",
        ".tflite B (task L)",
        f"arena B ({lengths})",
    ]
    (out / "results.md").write_text(
        "# Int8 Dense weight layout: per-channel vs per-tensor\n\n"
        "Whole test split under the `tflite_micro` runtime; the export's lean graph (smallest "
        "measured arena of its variants). Command: `python bench/dense_layout.py --models "
        f"{','.join(FLAGS.models)} --arena_lengths {','.join(FLAGS.arena_lengths)}`.\n\n"
        + markdown_table(header, rows)
    )
    print((out / "results.md").read_text())


if __name__ == "__main__":
    app.run(main)
