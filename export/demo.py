"""The main job: fine-tune the shipped EmbBERT backbone on the shipped Snips intents, down to an
Arduino library for the Nano 33 BLE.

    make demo            (or: python -m export.demo --out runs/demo)

Stages: float fine-tuning (best epoch on a seeded 10% validation slice of train) -> quantization-
aware fine-tuning -> full-integer .tflite -> every test example run under the TFLM runtime ->
memory report -> length buckets (export.buckets: one model per length sharing the weights, each
checked bit for bit against the full graph on the test split) -> the Arduino library
(export.library: op and board checks, model array, op resolver, C++ tokenizer, sketch, zip) in
<out>/arduino. Prints float / QAT / int8-TFLM test accuracy, the memory figures, the buckets' mean
MACs, the library's fit on the board and its Cortex-M4 latency estimate per bucket.
"""

from __future__ import annotations

import json
import time
from dataclasses import replace
from pathlib import Path

from absl import app, flags

from export import bucket_lengths
from export.library import LibraryOptions
from tflm_embbert import stage_flags
from tflm_embbert.common import cli, paths
from tflm_embbert.common.errors import UserInputError

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/demo", "Output folder.")
flags.DEFINE_string("backbone", str(paths.SHIPPED_BACKBONE_DIR), "Pretrained backbone folder.")
stage_flags.define_fit_flags()
stage_flags.define_qat_flags(qat_epochs=2)
flags.DEFINE_integer("train_limit", None, "Use at most this many training examples (smoke runs).")
flags.DEFINE_integer("seed", 0, "Seed for the validation slice, init, shuffling and sampling.")
flags.DEFINE_integer("progress", 2, "Keras progress: 0 silent, 1 bar, 2 one line per epoch.")
flags.DEFINE_string("name", "SnipsIntents", "Name of the Arduino library and its C++ class.")
flags.DEFINE_list("length_buckets", ["auto"], bucket_lengths.FLAG_HELP)


def main(argv):
    del argv
    started = time.time()
    try:  # the lengths' form now; against L once fine-tuning has chosen it
        bucket_lengths.parse_lengths(FLAGS.length_buckets, 1 << 30)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    from export import latency_report
    from export.exporter import ExportSettings, export_model
    from tflm_embbert.data.datasets import load_task
    from tflm_embbert.data.tokenizer import Tokenizer
    from tflm_embbert.pipeline import run_pipeline, summary
    from tflm_embbert.quantize.qat import load_qat_model
    from tflm_embbert.tflm.int8_eval import Int8Result
    from tflm_embbert.tflm.settings import Int8Settings

    task = load_task(
        "snips", paths.SHIPPED_DATA_DIR, seed=FLAGS.seed, train_limit=FLAGS.train_limit
    )
    tokenizer = Tokenizer.load(FLAGS.backbone)
    print(
        f"Snips from {FLAGS.backbone}: {len(task.train)} train, {len(task.validation)} "
        f"validation, {len(task.test)} test",
        flush=True,
    )
    stages = replace(stage_flags.stages(FLAGS, int8=False), int8=Int8Settings(seed=FLAGS.seed))
    out = Path(FLAGS.out)
    results = run_pipeline(
        task,
        tokenizer,
        None,
        out,
        stages,
        backbone_dir=FLAGS.backbone,
        verbose=FLAGS.progress,
        data_source={  # the data flags that load the same task (export_tflite --run)
            "task": "snips",
            "data_dir": str(paths.SHIPPED_DATA_DIR.resolve()),
            "seed": FLAGS.seed,
            "train_limit": FLAGS.train_limit,
        },
        tokenizer_source=str(Path(FLAGS.backbone).resolve()),
    )
    print((out / "memory.md").read_text())
    print(f"Arduino library {FLAGS.name} -> {out / 'arduino'}", flush=True)
    deployed = out / ("qat.keras" if (out / "qat.keras").is_file() else "model.keras")
    settings = ExportSettings(
        library=LibraryOptions(name=FLAGS.name),
        int8=stages.int8,
        length_buckets=tuple(FLAGS.length_buckets),
        buckets_asked=FLAGS["length_buckets"].present > 0,
    )
    try:
        exported = export_model(
            load_qat_model(deployed, compile=False),
            task,
            tokenizer,
            results["seq_len"],
            out / "arduino",
            settings,
            int8=Int8Result.from_json(
                (out / "model_int8.tflite").read_bytes(), results["int8_tflm"]
            ),
            source=str(out / "model_int8.tflite"),
        )
    except ValueError as error:  # explicit --length_buckets that are not exact, a failed check
        raise UserInputError(str(error)) from None
    print((out / "arduino" / "export_report.md").read_text())
    line = summary(results)
    line["arduino_library"] = str(out / "arduino" / f"{FLAGS.name}.zip")
    if exported.buckets:
        line["length_buckets"] = exported.buckets.lengths
        line["bucket_mean_macs_ratio"] = round(exported.buckets.report["mean_macs_ratio"], 4)
    line["m4_latency_estimate"] = latency_report.library_ms(exported.report["latency"])
    line["board_flash_bytes"] = exported.report["budget"]["flash"]["total_bytes"]
    line["board_ram_bytes"] = exported.report["budget"]["ram"]["total_bytes"]
    line["wall_seconds"] = round(time.time() - started, 1)
    line["out"] = FLAGS.out
    print(json.dumps(line, indent=2))


def run():
    cli.run(main)


if __name__ == "__main__":
    run()
