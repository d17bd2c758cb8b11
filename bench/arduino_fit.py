"""The Arduino library of full-size `embbert` per sequence length, checked against the Nano 33 BLE.

    python bench/arduino_fit.py --model runs/bench_int8/snips_seed0/qat.keras   # L 32/64/128/256

Per length: the classifier converted to int8 (calibrated on Snips training sentences at that
length), the arena measured by the TFLM runtime, then the whole library written by
export.library (with --force, so an over-budget length still gets its numbers): flash = .tflite +
tokenizer tables + code baseline, RAM = arena + margin + buffers + RAM baseline, against the
board's 983,040 / 262,144 B. Writes bench/results/arduino_fit/<name>.json and results.md.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench.common import machine, markdown_table, write_json  # noqa: E402
from export.library import LibraryOptions, LibraryRequest, export_library  # noqa: E402
from tflm_embbert.common import paths  # noqa: E402
from tflm_embbert.data.datasets import load_task  # noqa: E402
from tflm_embbert.data.tokenizer import Tokenizer  # noqa: E402
from tflm_embbert.quantize.convert import to_int8_tflite  # noqa: E402
from tflm_embbert.quantize.prepare import load_for_conversion  # noqa: E402
from tflm_embbert.tflm.check import measure_arena_bytes  # noqa: E402
from tflm_embbert.tflm.int8_eval import calibration_inputs  # noqa: E402
from tflm_embbert.tflm.settings import Int8Settings  # noqa: E402

FLAGS = flags.FLAGS
INT8 = Int8Settings()
flags.DEFINE_string("model", None, "A Snips classifier .keras (float or QAT).")
flags.DEFINE_list("lengths", ["32", "64", "128", "256"], "Sequence lengths.")
flags.DEFINE_string("name", "snips_qat", "Name of this model in the results.")
flags.DEFINE_string("out", "bench/results/arduino_fit", "Result folder.")
flags.mark_flag_as_required("model")


def main(argv):
    del argv
    model = load_for_conversion(FLAGS.model)
    task = load_task("snips", paths.SHIPPED_DATA_DIR, seed=0)
    tokenizer = Tokenizer.load(paths.SHIPPED_TOKENIZER_DIR)
    rows = []
    for seq_len in map(int, FLAGS.lengths):
        print(f"[L={seq_len}] converting and measuring", flush=True)
        calibration = calibration_inputs(tokenizer, task, seq_len, INT8.calibration_examples, 0)
        tflite = to_int8_tflite(model, seq_len, calibration)
        arena = measure_arena_bytes(tflite)
        with tempfile.TemporaryDirectory() as tmp:
            report = export_library(
                LibraryRequest(
                    tflite=tflite,
                    tokenizer=tokenizer,
                    labels=list(task.label_names),
                    seq_len=seq_len,
                    arena_measured_bytes=arena["minimum"],
                    options=LibraryOptions(name="SnipsIntents", force=True),
                    task="snips",
                ),
                Path(tmp) / "lib",
            )
        budget = report["budget"]
        rows.append(
            {
                "seq_len": seq_len,
                "arena": arena,
                "arena_with_margin": report["arena"]["bytes"],
                "flash": budget["flash"],
                "ram": budget["ram"],
                "files": report["files"],
            }
        )
        print(f"  flash {budget['flash']['total_bytes']:,} RAM {budget['ram']['total_bytes']:,}")
    out = Path(FLAGS.out)
    write_json(
        out / f"{FLAGS.name}.json",
        {"machine": machine(), "model": FLAGS.model, "name": FLAGS.name, "lengths": rows},
    )
    table = [
        [
            r["seq_len"],
            f"{r['flash']['model_bytes']:,}",
            f"{r['flash']['tokenizer_bytes']:,}",
            f"{r['flash']['code_baseline_bytes']:,}",
            f"{r['flash']['total_bytes']:,} / {r['flash']['available_bytes']:,}",
            "yes" if r["flash"]["fits"] else "NO",
            f"{r['arena']['minimum']:,}",
            f"{r['arena_with_margin']:,}",
            f"{r['ram']['total_bytes']:,} / {r['ram']['available_bytes']:,}",
            "yes" if r["ram"]["fits"] else "NO",
        ]
        for r in rows
    ]
    header = [
        "L",
        "model B",
        "tokenizer B",
        "code baseline B",
        "flash total / board",
        "flash fits",
        "arena measured B",
        "arena + margin B",
        "RAM total / board",
        "RAM fits",
    ]
    (out / "results.md").write_text(
        f"# Arduino library fit on the Nano 33 BLE: {FLAGS.name}\n\n`{FLAGS.model}`\n\n"
        + markdown_table(header, table)
    )
    print((out / "results.md").read_text())


if __name__ == "__main__":
    app.run(main)
