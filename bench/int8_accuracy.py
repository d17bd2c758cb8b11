"""Float vs QAT vs int8-under-TFLM vs post-training int8 accuracy, from the shipped backbone.

    python bench/int8_accuracy.py                               # snips, emotion, sst2; seed 0
    python bench/int8_accuracy.py --seeds 0,1,2 --tasks snips,emotion

Per (task, seed) cell, `tflm_embbert.pipeline.run_pipeline`: float fine-tuning (best validation
epoch; validation = seeded 10% of train) -> QAT fine-tuning -> full-integer .tflite -> the whole
test split (GLUE: dev) run under the TFLM runtime; plus post-training int8 of the float model
(no QAT), also under TFLM. Cells are written to <out>/cells/ when they finish and are not
recomputed (resumable); results.json / results.md gather every cell.
"""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench import common  # noqa: E402
from tflm_embbert.common import paths  # noqa: E402
from tflm_embbert.data.datasets import load_task  # noqa: E402
from tflm_embbert.data.tokenizer import Tokenizer  # noqa: E402
from tflm_embbert.pipeline import run_pipeline  # noqa: E402
from tflm_embbert.quantize.settings import QAT_FIT  # noqa: E402
from tflm_embbert.stages import Stages  # noqa: E402
from tflm_embbert.tflm.settings import Int8Settings  # noqa: E402
from tflm_embbert.training.settings import FitSettings  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_list("tasks", ["snips", "emotion", "sst2"], "Tasks.")
flags.DEFINE_list("seeds", ["0"], "Seeds.")
flags.DEFINE_string("backbone", str(paths.SHIPPED_BACKBONE_DIR), "Pretrained backbone folder.")
flags.DEFINE_string("data_dir", None, "Task data (default ../shared/data).")
flags.DEFINE_string("out", "bench/results/int8_accuracy", "Result folder.")
flags.DEFINE_string("models_out", "runs/bench_int8", "Where each cell's models are written.")
flags.DEFINE_integer("epochs", 10, "Max float epochs (reference: up to 10).")
flags.DEFINE_integer("qat_epochs", 2, "Max QAT epochs.")
flags.DEFINE_float("qat_learning_rate", 2e-5, "QAT learning rate.")

STAGES = (
    ("float", "float Keras"),
    ("qat", "QAT Keras"),
    ("int8_tflm", "int8 TFLM (QAT)"),
    ("ptq_int8_tflm", "int8 TFLM (PTQ)"),
)


def run_cell(task_name: str, seed: int, data_dir: Path) -> dict:
    task = load_task(task_name, data_dir, seed=seed)
    tokenizer = Tokenizer.load(FLAGS.backbone)
    results = run_pipeline(
        task,
        tokenizer,
        None,
        Path(FLAGS.models_out) / f"{task_name}_seed{seed}",
        Stages(
            float_fit=FitSettings(epochs=FLAGS.epochs),
            qat_fit=replace(
                QAT_FIT, epochs=FLAGS.qat_epochs, learning_rate=FLAGS.qat_learning_rate
            ),
            int8=Int8Settings(),
            ptq=True,
        ).with_seed(seed),
        backbone_dir=FLAGS.backbone,
        verbose=2,
    )
    return {"seed": seed, **results}


def main(argv):
    del argv
    out = Path(FLAGS.out)
    data = common.data_dir(FLAGS.data_dir)
    for task_name in FLAGS.tasks:
        for seed in map(int, FLAGS.seeds):
            common.cached_cell(
                out / "cells" / f"{task_name}_seed{seed}.json",
                f"{task_name} / seed {seed}",
                lambda t=task_name, s=seed: run_cell(t, s, data),
                wall_key="bench_wall_seconds",
            )
    write_report(out)


def _score(cell: dict, stage: str) -> float:
    return 100 * cell[stage]["test"][cell["metric"]]


INTRO = (
    "# `embbert`: float vs QAT vs full-integer under TFLM\n\n"
    "Accuracy on the test split (GLUE: dev), in percent; every int8 figure is the model run "
    "example by example under the `tflite_micro` runtime. Shipped backbone; float fine-tuning "
    "up to 10 epochs (lr 1e-4), best epoch on a seeded 10% validation slice of train; QAT up "
    "to 2 epochs (lr 2e-5) from the float model, best epoch on validation; PTQ = "
    "post-training int8 of the float model (200 calibration examples from train). Command: "
    "`python bench/int8_accuracy.py --seeds 0,1,2`.\n"
)


CELL_HEADER = (
    ["task", "seed", "L"]
    + [f"{label} %" for _, label in STAGES]
    + [
        "int8 - float pp",
        "int8 (QAT) = float class %",
        "int8 (QAT) = QAT class %",
        "int8 (PTQ) = float class %",
        ".tflite B",
        "arena B",
        "wall s",
    ]
)
SUMMARY_HEADER = (
    ["task", "test split", "seeds"]
    + [f"{label} %" for _, label in STAGES]
    + ["int8 (QAT) - float pp", "int8 (PTQ) - float pp"]
)


def _cell_row(cell: dict) -> list:
    int8 = cell["int8_tflm"]
    return (
        [cell["task"], cell["seed"], cell["seq_len"]]
        + [f"{_score(cell, stage):.2f}" for stage, _ in STAGES]
        + [
            f"{_score(cell, 'int8_tflm') - _score(cell, 'float'):+.2f}",
            f"{100 * int8['agreement']['float']:.2f}",
            f"{100 * int8['agreement']['qat']:.2f}",
            f"{100 * cell['ptq_int8_tflm']['agreement']['float']:.2f}",
            f"{int8['memory']['flash_tflite_bytes']:,}",
            f"{int8['memory']['ram_arena_bytes']:,}",
            cell["bench_wall_seconds"],
        ]
    )


def _summary_row(task: str, group: list[dict]) -> list:
    row = [task, group[0]["test_split"], len(group)]
    row += [common.mean_std([_score(c, stage) for c in group]) for stage, _ in STAGES]
    for stage in ("int8_tflm", "ptq_int8_tflm"):
        gaps = [_score(c, stage) - _score(c, "float") for c in group]
        row.append(f"{sum(gaps) / len(gaps):+.2f}")
    return row


def write_report(out: Path) -> None:
    """results.json + results.md from every cell in <out>/cells."""
    cells = common.read_cells(out / "cells")
    groups: dict[str, list[dict]] = {}
    for cell in cells:
        groups.setdefault(cell["task"], []).append(cell)
    common.write_results(
        out,
        cells,
        INTRO,
        [
            (
                "Mean ± std over seeds",
                SUMMARY_HEADER,
                [_summary_row(t, g) for t, g in groups.items()],
            ),
            ("Every cell", CELL_HEADER, [_cell_row(c) for c in cells]),
        ],
    )


if __name__ == "__main__":
    app.run(main)
