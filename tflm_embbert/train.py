"""Fine-tunes a classifier or regressor: the `train` command.

    python -m tflm_embbert.train --task snips --out runs/snips
    python -m tflm_embbert.train --task sst2 --from_scratch --preset embbert --out runs/sst2_scratch
    python -m tflm_embbert.train --train_file my.csv --test_file my_test.csv \\
        --text_column text --label_column label --out runs/custom
    python -m tflm_embbert.train --train_file my.tsv --validation_file my_val.tsv \\
        --test_file my_test.tsv --noheader --text_column 1 --label_column 0 --labels neg,pos \\
        --out runs/custom

    python -m tflm_embbert.train --task emotion --qat_epochs 2 --int8 --out runs/emotion_int8
    python -m tflm_embbert.train --task emotion --float_model runs/emotion/model.keras \
        --qat_epochs 2 --int8 --out runs/emotion_qat

Writes <out>/model.keras (best validation epoch), the tokenizer files, results.json (validation and
test metrics, per class too), run.json (task, labels, L, tokenizer, data, settings: what
`export_tflite --run <out>` reads), predictions.csv, report.md with its pictures, and
train_log.csv. The test split is scored once per stage, after the choice of epoch.
--qat_epochs N adds quantization-aware fine-tuning from the float model (qat.keras); --int8 converts
the QAT model (or, without QAT, the float model) to a full-integer model_int8.tflite, runs the whole
test split under the TFLM runtime and writes memory.json/.md (see tflm_embbert.pipeline).
"""

from __future__ import annotations

import json
from pathlib import Path

from absl import app, flags

from keras_models.presets import PRESETS, get_config, is_float_only, read_backbone_config
from tflm_embbert import run_record, stage_flags
from tflm_embbert.common import cli, paths
from tflm_embbert.data import flags as data_flags
from tflm_embbert.data.encoding import check_seq_len
from tflm_embbert.data.flags import load_data
from tflm_embbert.data.tokenizer import Tokenizer

FLAGS = flags.FLAGS
flags.DEFINE_string("out", None, "Output folder.")
flags.DEFINE_string("backbone", str(paths.SHIPPED_BACKBONE_DIR), "Pretrained backbone folder.")
flags.DEFINE_bool("from_scratch", False, "Ignore --backbone and start from random weights.")
flags.DEFINE_enum("preset", "embbert", list(PRESETS), "Architecture when --from_scratch.")
flags.DEFINE_string("tokenizer", None, "Tokenizer folder (default: the backbone's / shipped).")
flags.DEFINE_integer(
    "seq_len",
    0,
    "Sequence length L, at most the model's max_sequence_length (256 for the presets and the "
    "shipped backbone); 0 = the 99th percentile of the train lengths.",
)
stage_flags.define_fit_flags()
flags.DEFINE_string(
    "float_model",
    None,
    "Start from this trained float model.keras (skip the "
    "float fine-tuning; use with --qat_epochs and/or --int8).",
)
stage_flags.define_qat_flags()
flags.DEFINE_bool("int8", False, "Convert to full-integer .tflite and check it under TFLM.")
flags.DEFINE_bool("ptq", False, "Also score post-training int8 of the float model (no QAT).")
stage_flags.define_int8_flags()
flags.DEFINE_integer("progress", 1, "Keras progress: 0 silent, 1 bar, 2 one line per epoch.")
flags.mark_flag_as_required("out")
flags.adopt_module_key_flags(data_flags)  # --help lists --task, --train_file, ... too
flags.adopt_module_key_flags(stage_flags)


def _max_positions(f) -> int:
    """The model's max_sequence_length: the backbone's, or the preset's with --from_scratch."""
    if f.from_scratch:
        return get_config(f.preset).max_sequence_length
    try:
        return read_backbone_config(f.backbone).max_sequence_length
    except (FileNotFoundError, ValueError) as error:
        raise app.UsageError(f"--backbone: {error}") from None


def main(argv):
    del argv
    f = FLAGS
    try:  # before any work
        check_seq_len(f.seq_len, _max_positions(f), "--seq_len")
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    if f.from_scratch and is_float_only(f.preset) and (f.qat_epochs > 0 or f.int8 or f.ptq):
        raise app.UsageError(
            f"--preset {f.preset} is float only (no int8 / TFLM path): drop --qat_epochs, "
            "--int8 and --ptq"
        )
    task = load_data(f)
    backbone = None if f.from_scratch else f.backbone
    if f.float_model and not Path(f.float_model).is_file():
        raise app.UsageError(f"--float_model: {f.float_model} does not exist (expected a .keras)")
    tokenizer_dir = f.tokenizer or backbone or paths.SHIPPED_TOKENIZER_DIR
    if f.float_model and not f.tokenizer and (Path(f.float_model).parent / "vocab.txt").exists():
        tokenizer_dir = Path(f.float_model).parent  # the tokenizer saved beside the model
    tokenizer = Tokenizer.load(tokenizer_dir)
    config = get_config(f.preset, vocabulary_size=tokenizer.vocab_size)
    print(
        f"{task.name}: {len(task.train)} train / {len(task.validation)} validation / "
        f"{len(task.test)} {task.test_split}; metric {task.metric}; "
        f"{'from ' + backbone if backbone else 'from scratch (' + f.preset + ')'}",
        flush=True,
    )
    try:
        stages = stage_flags.stages(f, int8=f.int8, ptq=f.ptq)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    from tflm_embbert.pipeline import run_pipeline, summary  # TensorFlow: after the flags

    results = run_pipeline(
        task,
        tokenizer,
        config,
        f.out,
        stages,
        backbone_dir=backbone,
        float_model=f.float_model,
        seq_len=f.seq_len,
        verbose=f.progress,
        data_source=run_record.data_source(f),
        tokenizer_source=str(Path(tokenizer_dir).resolve()),
    )
    print(json.dumps(summary(results), indent=2))
    print(f"wrote {f.out}")


def run():
    cli.run(main)


if __name__ == "__main__":
    run()
