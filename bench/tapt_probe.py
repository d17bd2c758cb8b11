"""Task-adaptive pretraining (TAPT) probe: does more MLM on a task's own train text help?

    nice -n 5 python bench/tapt_probe.py --tasks snips,emotion,sst2 --steps 1500

Per task: the texts of the task's TRAIN part only (the seeded validation slice every fit is
scored on is left out, and the test split is never read) become the corpus of a short MLM + NSP
run (`tflm_embbert.training.pretrain`) that starts from the shipped backbone at the task's
fine-tuning length L; the backbone it exports is then fine-tuned with the recipe `train` ships
(`bench/finetune_sweep.py --phases R`, same validation halves and train limits as the sweep).
Compare its `score` with the shipped backbone's phase-B/R row in bench/results/finetune_sweep.
Writes <out>/results.json + results.md; every step is resumable (pretraining checkpoints, one
JSON per fine-tuning run).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench import common  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("tasks", ["snips", "emotion", "sst2"], "Tasks to probe.")
flags.DEFINE_integer("steps", 1500, "TAPT steps per task (batch 32 at the task's L).")
flags.DEFINE_float("learning_rate", 2e-4, "TAPT peak learning rate (cosine decay to 0).")
flags.DEFINE_string("data_dir", None, "Task data (default ../shared/data).")
flags.DEFINE_string("out", "bench/results/tapt_probe", "Result folder (runs/ stays local).")
flags.DEFINE_string("work", "runs/tapt_probe", "Pretraining runs and backbones (not committed).")


def task_corpus(task_name: str, path: Path) -> tuple[int, int]:
    """Writes the task's train-part texts (validation slice excluded) one per line; returns
    (texts, L the fine-tuning will use)."""
    from tflm_embbert.common import paths
    from tflm_embbert.data.datasets import load_task
    from tflm_embbert.data.encoding import auto_seq_len
    from tflm_embbert.data.tokenizer import Tokenizer

    task = load_task(task_name, common.data_dir(FLAGS.data_dir), seed=0)
    texts = [t for e in task.train for t in (e.text_a, e.text_b) if t]
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_suffix(".tmp")
        tmp.write_text("\n".join(t.replace("\n", " ") for t in texts) + "\n")
        tmp.rename(path)
    tokenizer = Tokenizer.load(paths.SHIPPED_TOKENIZER_DIR)
    return len(texts), auto_seq_len(tokenizer, task.train, cap=256)


def run(argv: list[str]) -> None:
    print("$", " ".join(argv), flush=True)
    subprocess.run(argv, check=True)


def main(argv):
    del argv
    from tflm_embbert.common import paths

    work, out = Path(FLAGS.work), Path(FLAGS.out)
    facts = {}
    for task in FLAGS.tasks:
        texts, seq_len = task_corpus(task, work / task / "corpus.txt")
        backbone = work / task / "backbone"
        if not backbone.is_dir():
            run([
                sys.executable, "-m", "tflm_embbert.training.pretrain",
                "--out", str(work / task / "pretrain"),
                "--corpus", str(work / task / "corpus.txt"), "--task_texts", "",
                "--init_backbone", str(paths.SHIPPED_BACKBONE_DIR),
                "--seq_len", str(max(seq_len, 16)), "--total_steps", str(FLAGS.steps),
                "--steps_per_checkpoint", str(min(500, FLAGS.steps)),
                "--learning_rate", str(FLAGS.learning_rate), "--decay", "cosine",
                "--warmup_steps", str(FLAGS.steps // 10), "--held_out_block", "512",
                "--progress", "2", "--export_to", str(backbone),
            ])  # fmt: skip
        run([
            sys.executable, str(Path(__file__).parent / "finetune_sweep.py"), "--phases", "R",
            "--tasks", task, "--backbone", str(backbone), "--out", str(out),
        ])  # fmt: skip
        summary = json.loads((work / task / "pretrain" / "summary.json").read_text())
        facts[task] = {"train_texts": texts, "seq_len": max(seq_len, 16), **summary["final_log"]}
    common.write_json(out / "tapt.json", facts)


if __name__ == "__main__":
    app.run(main)
