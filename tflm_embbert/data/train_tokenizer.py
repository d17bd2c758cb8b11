"""Trains the WordPiece vocabulary and writes vocab.txt + tokenizer_config.json.

python -m tflm_embbert.data.train_tokenizer --out keras_models/pretrained/embbert
"""

from __future__ import annotations

from pathlib import Path

from absl import flags

from tflm_embbert.common import cli, paths
from tflm_embbert.data.corpus import DEFAULT_TASK_TEXTS, corpus_texts
from tflm_embbert.data.tokenizer import Tokenizer

FLAGS = flags.FLAGS
flags.DEFINE_string("out", str(paths.SHIPPED_TOKENIZER_DIR), "Output folder.")
flags.DEFINE_integer("vocab_size", 8192, "Vocabulary size, special tokens included.")
flags.DEFINE_integer("min_frequency", 2, "Minimum pair frequency for a merge.")
flags.DEFINE_string("corpus", None, "Corpus file or folder (default: shared pretrain_corpus).")
flags.DEFINE_list("task_texts", DEFAULT_TASK_TEXTS, "Tasks whose train-split text is added.")
flags.DEFINE_string("data_dir", None, "Task data folder (default: ../shared/data).")


def main(argv):
    del argv
    data_dir = Path(FLAGS.data_dir) if FLAGS.data_dir else paths.shared_data_dir()
    corpus_path = Path(FLAGS.corpus) if FLAGS.corpus else data_dir / "pretrain_corpus"
    texts = corpus_texts(corpus_path, FLAGS.task_texts, data_dir)
    tokenizer = Tokenizer.train(texts, FLAGS.vocab_size, min_frequency=FLAGS.min_frequency)
    tokenizer.save(FLAGS.out)
    print(f"wrote {tokenizer.vocab_size} tokens to {FLAGS.out}")


def run():
    cli.run(main)


if __name__ == "__main__":
    run()
