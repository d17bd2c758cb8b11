"""Training step time of a preset's classifier at batch 32, for several sequence lengths.

    python bench/train_step_time.py                 # embbert, L = 128 and 256
    python bench/train_step_time.py --preset bert_2mb --seq_lens 64,128,256

Times `--steps` AdamW steps of one compiled tf.function after `--warmup` steps (tracing excluded),
on full-length random inputs, with whatever else the machine is doing: run it on an idle machine.
Writes <out>/results.json and results.md.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from absl import app, flags  # noqa: E402

from bench.common import machine, markdown_table, write_json  # noqa: E402
from keras_models.backend import keras, tf  # noqa: E402
from keras_models.models import build_classifier  # noqa: E402
from keras_models.presets import PRESETS, get_config  # noqa: E402
from tflm_embbert.training.schedules import adamw  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_enum("preset", "embbert", list(PRESETS), "Preset.")
flags.DEFINE_list("seq_lens", ["128", "256"], "Sequence lengths.")
flags.DEFINE_integer("batch_size", 32, "Batch size.")
flags.DEFINE_integer("steps", 40, "Timed steps.")
flags.DEFINE_integer("warmup", 5, "Untimed steps first.")
flags.DEFINE_string("out", "bench/results/train_step_time", "Result folder.")


def time_steps(seq_len: int) -> dict:
    config = get_config(FLAGS.preset)
    model = build_classifier(config, 7)
    model.compile(
        optimizer=adamw(1e-4, 0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    rng = np.random.default_rng(0)
    ids = rng.integers(5, config.vocabulary_size, (FLAGS.batch_size, seq_len)).astype("int32")
    x = {"token_ids": tf.constant(ids), "segment_ids": tf.ones_like(ids)}
    y = tf.constant(rng.integers(0, 7, FLAGS.batch_size).astype("int32"))
    for _ in range(FLAGS.warmup):
        model.train_on_batch(x, y)
    times = []
    for _ in range(FLAGS.steps):
        start = time.perf_counter()
        model.train_on_batch(x, y)
        times.append(time.perf_counter() - start)
    times = np.array(times) * 1000
    return {
        "preset": FLAGS.preset,
        "seq_len": seq_len,
        "batch_size": FLAGS.batch_size,
        "steps": FLAGS.steps,
        "ms_per_step_median": round(float(np.median(times)), 1),
        "ms_per_step_mean": round(float(times.mean()), 1),
        "tokens_per_second": round(FLAGS.batch_size * seq_len / np.median(times) * 1000),
    }


def main(argv):
    del argv
    rows = [time_steps(int(n)) for n in FLAGS.seq_lens]
    out = Path(FLAGS.out)
    write_json(out / "results.json", {"machine": machine(), "rows": rows})
    table = markdown_table(
        ["preset", "L", "batch", "median ms/step", "mean ms/step", "tokens/s"],
        [
            [
                r["preset"],
                r["seq_len"],
                r["batch_size"],
                r["ms_per_step_median"],
                r["ms_per_step_mean"],
                r["tokens_per_second"],
            ]
            for r in rows
        ],
    )
    (out / "results.md").write_text(
        f"# Training step time ({machine()['cpu_count']} CPU cores)\n\n"
        "Classifier train step (forward, backward, AdamW), full-length inputs. Command: "
        "`python bench/train_step_time.py`.\n\n" + table
    )
    print(table)


if __name__ == "__main__":
    app.run(main)
