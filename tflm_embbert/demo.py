"""The main job: fine-tune the shipped EmbBERT backbone on the shipped Snips intents.

    make demo            (or: python -m tflm_embbert.demo --out runs/demo)

Prints validation (seeded 10% of train) and test metrics and writes the model, tokenizer and
results to --out. Later stages (QAT, int8, TFLM check, Arduino library) extend this command.
"""

from __future__ import annotations

import json
import time

from absl import app, flags

from tflm_embbert import paths
from tflm_embbert.datasets import load_task
from tflm_embbert.finetune import finetune_to_folder
from tflm_embbert.tokenizer import Tokenizer

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/demo", "Output folder.")
flags.DEFINE_string("backbone", str(paths.SHIPPED_BACKBONE_DIR), "Pretrained backbone folder.")
flags.DEFINE_integer("epochs", 6, "Maximum fine-tuning epochs.")
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
        f"[1/1] fine-tuning {FLAGS.backbone} on Snips: {len(task.train)} train, "
        f"{len(task.validation)} validation, {len(task.test)} test",
        flush=True,
    )
    result = finetune_to_folder(
        task,
        tokenizer,
        None,
        FLAGS.out,
        backbone_dir=FLAGS.backbone,
        epochs=FLAGS.epochs,
        seed=FLAGS.seed,
        verbose=FLAGS.verbose,
    )
    summary = {
        "task": "snips",
        "seq_len": result.seq_len,
        "best_epoch": result.best_epoch + 1,
        "validation_accuracy": round(result.validation["accuracy"], 4),
        "test_accuracy": round(result.test["accuracy"], 4),
        "wall_seconds": round(time.time() - started, 1),
        "out": FLAGS.out,
    }
    print(json.dumps(summary, indent=2))


def run():
    app.run(main)


if __name__ == "__main__":
    run()
