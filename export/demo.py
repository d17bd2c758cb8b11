"""The main job: fine-tune the shipped EmbBERT backbone on the shipped Snips intents, down to an
Arduino library for the Nano 33 BLE.

    make demo            (or: python -m export.demo --out runs/demo)

Stages: float fine-tuning (best epoch on a seeded 10% validation slice of train) -> quantization-
aware fine-tuning -> full-integer .tflite -> every test example run under the TFLM runtime ->
memory report -> length buckets (export.buckets: one model per length sharing the weights, each
checked bit for bit against the full graph on the test split) -> the Arduino library
(export.library: op and board checks, model array, op resolver, C++ tokenizer, sketch, zip) in
<out>/arduino. Prints float / QAT / int8-TFLM test accuracy, the memory figures, the buckets' mean
MACs and the library's fit on the board.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from absl import app, flags

from export import buckets
from export.library import LibraryRequest, export_library
from tflm_embbert import paths
from tflm_embbert.datasets import load_task
from tflm_embbert.finetune import DEFAULT_RECIPE
from tflm_embbert.pipeline import run_pipeline, summary
from tflm_embbert.tokenizer import Tokenizer

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/demo", "Output folder.")
flags.DEFINE_string("backbone", str(paths.SHIPPED_BACKBONE_DIR), "Pretrained backbone folder.")
flags.DEFINE_integer("epochs", DEFAULT_RECIPE.epochs, "Maximum fine-tuning epochs.")
flags.DEFINE_integer("qat_epochs", 2, "Quantization-aware epochs after the float ones.")
flags.DEFINE_integer("train_limit", None, "Use at most this many training examples (smoke runs).")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_integer("verbose", 2, "Keras progress: 0 silent, 1 bar, 2 one line per epoch.")
flags.DEFINE_string("name", "SnipsIntents", "Name of the Arduino library and its C++ class.")
flags.DEFINE_list("length_buckets", ["auto"], buckets.FLAG_HELP)


def main(argv):
    del argv
    started = time.time()
    try:  # the lengths' form now; against L once fine-tuning has chosen it
        buckets.parse_lengths(FLAGS.length_buckets, 1 << 30)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    task = load_task(
        "snips", paths.SHIPPED_DATA_DIR, seed=FLAGS.seed, train_limit=FLAGS.train_limit
    )
    tokenizer = Tokenizer.load(FLAGS.backbone)
    print(
        f"Snips from {FLAGS.backbone}: {len(task.train)} train, {len(task.validation)} "
        f"validation, {len(task.test)} test",
        flush=True,
    )
    results = run_pipeline(
        task,
        tokenizer,
        None,
        FLAGS.out,
        backbone_dir=FLAGS.backbone,
        epochs=FLAGS.epochs,
        qat_epochs=FLAGS.qat_epochs,
        int8=True,
        seed=FLAGS.seed,
        verbose=FLAGS.verbose,
    )
    out = Path(FLAGS.out)
    print((out / "memory.md").read_text())
    single = (out / "model_int8.tflite").read_bytes()
    try:
        bucketed, extra = _buckets(task, tokenizer, results, out, single)
    except buckets.BucketError as error:  # an explicit --length_buckets that is not exact
        sys.exit(f"demo: {error}")
    print(f"Arduino library {FLAGS.name} -> {out / 'arduino'}", flush=True)
    library = export_library(
        LibraryRequest(
            name=FLAGS.name,
            tflite=bucketed.data if bucketed else single,
            tokenizer=tokenizer,
            labels=list(task.label_names),
            seq_len=results["seq_len"],
            arena_measured_bytes=(
                bucketed.arena_measured_bytes
                if bucketed
                else results["int8_tflm"]["memory"]["ram_arena_bytes"]
            ),
            task=task.name,
            source=str(out / "model_int8.tflite"),
            extra_report={"tflm_test": results["int8_tflm"]["test"], **extra},
            buckets=bucketed,
        ),
        out / "arduino",
    )
    print((out / "arduino" / "export_report.md").read_text())
    line = summary(results)
    line["arduino_library"] = str(out / "arduino" / f"{FLAGS.name}.zip")
    if bucketed:
        line["length_buckets"] = bucketed.lengths
        line["bucket_mean_macs_ratio"] = round(bucketed.report["mean_macs_ratio"], 4)
    line["board_flash_bytes"] = library["budget"]["flash"]["total_bytes"]
    line["board_ram_bytes"] = library["budget"]["ram"]["total_bytes"]
    line["wall_seconds"] = round(time.time() - started, 1)
    line["out"] = FLAGS.out
    print(json.dumps(line, indent=2))


def _buckets(task, tokenizer, results, out: Path, single: bytes):
    """The length buckets of the exported int8 graph (None and the reason when off). With the
    default 'auto' a model whose buckets are not exact falls back to one model; an explicit
    --length_buckets list stops the job."""
    seq_len = results["seq_len"]
    try:
        lengths = buckets.parse_lengths(FLAGS.length_buckets, seq_len)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    if not lengths:
        return None, {"length_buckets": buckets.off_note(FLAGS.length_buckets, seq_len)}
    from tflm_embbert.qat import load_qat_model

    deployed = out / ("qat.keras" if (out / "qat.keras").is_file() else "model.keras")
    bucketed, note = buckets.build_or_fall_back(
        lambda: buckets.build_buckets(
            load_qat_model(deployed, compile=False),
            task,
            tokenizer,
            seq_len,
            lengths,
            single,
            results["int8_tflm"].get("lean"),
            seed=FLAGS.seed,
        ),
        explicit=FLAGS["length_buckets"].present > 0,
        seq_len=seq_len,
        say=lambda line: print(line, flush=True),
    )
    return bucketed, ({"length_buckets": note} if note else {})


def run():
    app.run(main)


if __name__ == "__main__":
    run()
