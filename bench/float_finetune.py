"""Float accuracy of a preset fine-tuned from the shipped backbone and from scratch.

    python bench/float_finetune.py                      # snips, emotion, sst2; both inits; seed 0
    python bench/float_finetune.py --tasks snips --inits scratch --seeds 0,1,2

Each (task, init, seed) cell is written to <out>/cells/*.json as soon as it finishes and is not
recomputed, so a run can be interrupted and resumed. results.json and results.md gather all cells.
Test figures are scored once per cell on the best-validation epoch (validation = seeded 10% of
train); GLUE tasks report their dev split.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench import common  # noqa: E402
from keras_models.presets import PRESETS, get_config  # noqa: E402
from tflm_embbert.common import paths  # noqa: E402
from tflm_embbert.data.datasets import load_task  # noqa: E402
from tflm_embbert.data.tokenizer import Tokenizer  # noqa: E402
from tflm_embbert.training.finetune import finetune  # noqa: E402
from tflm_embbert.training.settings import FitSettings  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("tasks", ["snips", "emotion", "sst2"], "Tasks.")
flags.DEFINE_list("inits", ["backbone", "scratch"], "backbone (shipped) and/or scratch.")
flags.DEFINE_list("seeds", ["0"], "Seeds.")
flags.DEFINE_enum("preset", "embbert", list(PRESETS), "Preset for scratch runs.")
flags.DEFINE_string("backbone", str(paths.SHIPPED_BACKBONE_DIR), "Pretrained backbone folder.")
flags.DEFINE_string("data_dir", None, "Task data (default ../shared/data).")
flags.DEFINE_string("out", "bench/results/float_finetune", "Result folder.")
flags.DEFINE_integer("epochs", 10, "Max epochs (reference: up to 10).")
flags.DEFINE_integer("patience", 3, "Early-stopping patience.")
flags.DEFINE_float("learning_rate", 1e-4, "Learning rate (reference: 1e-4 constant).")

# The paper's float results (../shared/notes/embbert-reference.md), in percent.
PAPER_FLOAT = {
    "snips": 97.7,
    "emotion": 89.6,
    "sst2": 79.3,
    "cola": 12.4,
    "mrpc": 69.2,
    "stsb": 49.3,
    "rte": 50.0,
    "ag_news": 90.5,
    "imdb": 84.1,
}


def run_cell(task_name: str, init: str, seed: int, data_dir: Path) -> dict:
    task = load_task(task_name, data_dir, seed=seed)
    tokenizer = Tokenizer.load(paths.SHIPPED_TOKENIZER_DIR)
    backbone = FLAGS.backbone if init == "backbone" else None
    config = None if backbone else get_config(FLAGS.preset, vocabulary_size=tokenizer.vocab_size)
    result = finetune(
        task,
        tokenizer,
        config,
        FitSettings(
            epochs=FLAGS.epochs,
            patience=FLAGS.patience,
            learning_rate=FLAGS.learning_rate,
            seed=seed,
        ),
        backbone_dir=backbone,
        verbose=2,
    )
    return {"task": task_name, "init": init, "seed": seed, **result.to_json()}


def main(argv):
    del argv
    out = Path(FLAGS.out)
    data = common.data_dir(FLAGS.data_dir)
    for task_name in FLAGS.tasks:
        for init in FLAGS.inits:
            for seed in map(int, FLAGS.seeds):
                common.cached_cell(
                    out / "cells" / f"{task_name}_{init}_seed{seed}.json",
                    f"{task_name} / {init} / seed {seed}",
                    lambda t=task_name, i=init, s=seed: run_cell(t, i, s, data),
                )
    write_report(out)


CELL_HEADER = [
    "task",
    "test split",
    "init",
    "seed",
    "L",
    "val %",
    "test %",
    "paper float %",
    "best epoch",
    "epochs",
    "ms/step (b32)",
    "wall s",
]


def _cell_row(cell: dict) -> list:
    metric = cell["metric"]
    return [
        cell["task"],
        cell["test_split"],
        cell["init"],
        cell["seed"],
        cell["seq_len"],
        f"{100 * cell['validation'][metric]:.2f}",
        f"{100 * cell['test'][metric]:.2f}",
        PAPER_FLOAT.get(cell["task"], "-"),
        cell["best_epoch"],
        cell["epochs_run"],
        f"{1000 * cell['step_seconds']:.1f}",
        cell["wall_seconds"],
    ]


def write_report(out: Path) -> None:
    """results.json + results.md from every cell in <out>/cells (also ones from earlier runs)."""
    cells = common.read_cells(out / "cells")
    groups: dict[tuple[str, str], list[float]] = {}
    for cell in cells:
        groups.setdefault((cell["task"], cell["init"]), []).append(
            100 * cell["test"][cell["metric"]]
        )
    summary = [
        [task, init, len(v), common.mean_std(v), PAPER_FLOAT.get(task, "-")]
        for (task, init), v in sorted(groups.items())
    ]
    common.write_results(
        out,
        cells,
        "# Float fine-tuning: `embbert`, shipped backbone vs from scratch\n\n"
        "Primary metric of each task (accuracy for these), in percent. Validation = seeded 10% "
        "of train; test = official test split (GLUE: dev). Command: "
        "`python bench/float_finetune.py`.\n",
        [
            (
                "Test, mean ± std over seeds",
                ["task", "init", "seeds", "test %", "paper float %"],
                summary,
            ),
            ("Every cell", CELL_HEADER, [_cell_row(c) for c in cells]),
        ],
    )


if __name__ == "__main__":
    app.run(main)
