"""Pretrains a backbone with MLM + NSP; resumable, checkpointed, optionally distributed.

    python -m tflm_embbert.training.pretrain --out runs/pretrain --total_steps 30000

Each "epoch" of the Keras progress output is one checkpoint interval (--steps_per_checkpoint).
A run killed at any point restarts from its last checkpoint at the same global step, with the same
data (batches are a function of the step). --max_minutes stops cleanly after a checkpoint once the
time budget is spent, so long runs can be planned across sessions.

--strategy: "default" (one device), "mirrored" (tf.distribute.MirroredStrategy over the local
devices), "multi_worker" (MultiWorkerMirroredStrategy; every worker runs this same command with its
own TF_CONFIG, e.g. TF_CONFIG='{"cluster": {"worker": ["host1:12345", "host2:12345"]},
"task": {"type": "worker", "index": 0}}'; --batch_size is the global batch).
"""

from __future__ import annotations

from absl import flags

from keras_models.presets import PRESETS
from tflm_embbert.common import cli, paths
from tflm_embbert.data import corpus
from tflm_embbert.data.tokenizer import Tokenizer
from tflm_embbert.training.settings import DECAYS

FLAGS = flags.FLAGS
flags.DEFINE_string("out", "runs/pretrain", "Run folder: checkpoints, logs, token-stream cache.")
flags.DEFINE_enum("preset", "embbert", list(PRESETS), "Backbone preset.")
flags.DEFINE_string("config_overrides", None, "JSON of BackboneConfig fields to override.")
flags.DEFINE_string("tokenizer", str(paths.SHIPPED_TOKENIZER_DIR), "Tokenizer folder.")
flags.DEFINE_string("corpus", None, "Corpus file or folder (default: shared pretrain_corpus).")
flags.DEFINE_list(
    "task_texts",
    corpus.DEFAULT_TASK_TEXTS,
    "Tasks whose unlabeled TRAIN-split text is added to the corpus (empty: none).",
)
flags.DEFINE_string("data_dir", None, "Task data folder (default: ../shared/data).")
flags.DEFINE_integer("seq_len", 128, "Pretraining sequence length.")
flags.DEFINE_integer("batch_size", 32, "Global batch size.")
flags.DEFINE_integer("total_steps", 30_000, "Train until this global step.")
flags.DEFINE_integer("steps_per_checkpoint", 500, "Checkpoint (and progress line) interval.")
flags.DEFINE_integer("validation_steps", 20, "Held-out batches scored at every checkpoint.")
flags.DEFINE_float("learning_rate", 5e-4, "Peak learning rate (AdamW).")
flags.DEFINE_integer("warmup_steps", 1000, "Linear warm-up steps.")
flags.DEFINE_float("weight_decay", 0.01, "AdamW weight decay.")
flags.DEFINE_enum(
    "decay",
    "constant",
    list(DECAYS),
    "Learning rate after warm-up: constant, or decayed to 0 at --total_steps (linear / cosine).",
)
flags.DEFINE_string(
    "init_backbone",
    None,
    "Start a new run (e.g. a phase at another --seq_len) from this backbone folder, or from an "
    "earlier pretraining run folder (its last checkpoint: backbone and MLM/NSP heads); ignored "
    "when the run folder already has a checkpoint.",
)
flags.DEFINE_integer("seed", 0, "Data and init seed.")
flags.DEFINE_float("max_minutes", 0, "Stop after the first checkpoint past this budget (0: none).")
flags.DEFINE_enum("strategy", "default", ["default", "mirrored", "multi_worker"], "tf.distribute.")
flags.DEFINE_string("export_to", None, "Write the backbone, tokenizer and log here when done.")
flags.DEFINE_integer("held_out_block", 2048, "Held-out text: blocks of this many tokens ...")
flags.DEFINE_integer("held_out_every", 100, "... every this-many-th block (1% by default).")
flags.DEFINE_integer("cpu_devices", 0, "Split the CPU into N logical devices (to try 'mirrored').")
flags.DEFINE_integer("progress", 1, "Keras progress: 1 = bar, 2 = one line per checkpoint.")


def main(argv):
    del argv
    tokenizer = Tokenizer.load(FLAGS.tokenizer)  # a bad folder: one line, before TensorFlow
    from tflm_embbert.training.pretrain_run import pretrain  # TensorFlow: after the flags

    pretrain(FLAGS, tokenizer)


def run():
    cli.run(main)


if __name__ == "__main__":
    run()
