"""Report of a pretraining run from its own records (summary.json + log.csv).

    python bench/pretrain_report.py                       # the shipped embbert backbone
    python bench/pretrain_report.py --run runs/pretrain   # any pretraining run folder

The figures (steps, tokens seen, wall time, tokens/s, held-out MLM accuracy) are the ones the
pretraining command measured and logged while it ran; this script only gathers them.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from absl import app, flags  # noqa: E402

from bench.common import markdown_table, write_json  # noqa: E402
from tflm_embbert.common import paths  # noqa: E402

FLAGS = flags.FLAGS
flags.DEFINE_string("run", str(paths.SHIPPED_BACKBONE_DIR), "Run or exported backbone folder.")
flags.DEFINE_string("out", "bench/results/pretrain", "Result folder.")


def _find(folder: Path, *names: str) -> Path:
    for name in names:
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"{folder}: expected one of {', '.join(names)}")


def main(argv):
    del argv
    folder = Path(FLAGS.run)
    summary = json.loads(_find(folder, "pretrain_summary.json", "summary.json").read_text())
    with open(_find(folder, "pretrain_log.csv", "log.csv")) as handle:
        log = list(csv.DictReader(handle))
    curve = [
        {
            k: float(row[k])
            for k in (
                "step",
                "tokens_seen",
                "train_seconds",
                "mlm_accuracy",
                "val_mlm_accuracy",
                "val_nsp_accuracy",
            )
        }
        for row in log
    ]
    last = curve[-1]
    report = {
        "preset": summary["preset"],
        "seq_len": summary["seq_len"],
        "batch_size": summary["batch_size"],
        "steps": summary["steps"],
        "tokens_seen": summary["tokens_seen"],
        "train_hours": round(summary["train_seconds"] / 3600, 2),
        "tokens_per_second": summary["tokens_per_second"],
        "corpus_tokens": summary["stream_tokens"],
        "epochs_over_corpus": round(summary["tokens_seen"] / summary["stream_tokens"], 2),
        "held_out_mlm_accuracy": last["val_mlm_accuracy"],
        "held_out_nsp_accuracy": last["val_nsp_accuracy"],
        "curve": curve,
    }
    out = Path(FLAGS.out)
    write_json(out / "results.json", report)
    every = max(1, len(curve) // 10)
    rows = [
        [
            int(c["step"]),
            f"{c['tokens_seen'] / 1e6:.1f}",
            f"{c['train_seconds'] / 60:.1f}",
            f"{100 * c['mlm_accuracy']:.1f}",
            f"{100 * c['val_mlm_accuracy']:.1f}",
            f"{100 * c['val_nsp_accuracy']:.1f}",
        ]
        for c in curve[::every] + [curve[-1]]
    ]
    text = (
        f"# Pretraining: `{report['preset']}` (MLM + NSP)\n\n"
        f"L {report['seq_len']}, batch {report['batch_size']}, {report['steps']:,} steps, "
        f"{report['tokens_seen'] / 1e6:.1f} M token slots seen "
        f"({report['epochs_over_corpus']} passes over {report['corpus_tokens'] / 1e6:.1f} M "
        f"tokens), {report['train_hours']} h of training at {report['tokens_per_second']:,.0f} "
        f"tokens/s (2 CPU cores, shared with other jobs part of the time). Held-out MLM accuracy "
        f"{100 * report['held_out_mlm_accuracy']:.1f}%, NSP "
        f"{100 * report['held_out_nsp_accuracy']:.1f}%.\n\n"
        + markdown_table(
            [
                "step",
                "M tokens",
                "train min",
                "MLM acc % (train)",
                "MLM acc % (held-out)",
                "NSP acc % (held-out)",
            ],
            rows,
        )
    )
    (out / "results.md").write_text(text)
    print(text)


if __name__ == "__main__":
    app.run(main)
