"""The main job: fine-tune the shipped EmbBERT backbone on the shipped Snips intents.

    make demo            (or: python -m tflm_embbert.demo --out runs/demo)

Stages: float fine-tuning (best epoch on a seeded 10% validation slice of train) -> quantization-
aware fine-tuning -> full-integer .tflite -> every test example run under the TFLM runtime ->
memory report (flash = .tflite bytes, RAM = the arena TFLM needs). Prints float / QAT / int8-TFLM
test accuracy and the memory figures; writes everything to --out (see tflm_embbert.pipeline).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from absl import app, flags

from tflm_embbert import paths
from tflm_embbert.datasets import load_task
from tflm_embbert.pipeline import run_pipeline, summary
from tflm_embbert.tokenizer import Tokenizer

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/demo", "Output folder.")
flags.DEFINE_string("backbone", str(paths.SHIPPED_BACKBONE_DIR), "Pretrained backbone folder.")
flags.DEFINE_integer("epochs", 6, "Maximum fine-tuning epochs.")
flags.DEFINE_integer("qat_epochs", 2, "Quantization-aware epochs after the float ones.")
flags.DEFINE_integer("train_limit", None, "Use at most this many training examples (smoke runs).")
flags.DEFINE_integer("seed", 0, "Seed.")
flags.DEFINE_integer("verbose", 2, "Keras progress: 0 silent, 1 bar, 2 one line per epoch.")


def main(argv):
    del argv
    started = time.time()
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
    print((Path(FLAGS.out) / "memory.md").read_text())
    line = summary(results)
    line["wall_seconds"] = round(time.time() - started, 1)
    line["out"] = FLAGS.out
    print(json.dumps(line, indent=2))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
