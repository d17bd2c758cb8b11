"""The `export_tflite` command: .keras model -> int8 .tflite -> TFLM check -> Arduino library.

    export_tflite --run runs/snips          (a `train` output folder: every setting from run.json)
    export_tflite --model runs/snips/qat.keras --task snips --name SnipsIntents --out runs/snips_lib
    export_tflite --model my/model.keras --train_file train.csv --test_file test.csv \\
        --name MyClassifier --seq_len 64 --tflm tflm_tree --tflm_tree /tmp/tflm_tree --out lib

The model may be float (post-training int8) or QAT (its trained ranges are kept). Its tokenizer is
the one saved beside it (vocab.txt), else --tokenizer, else the shipped one. The task's data
calibrates the int8 ranges (training examples) and scores the int8 model under the TFLM runtime
(the test split); the labels become the library's labels. The work is export.exporter.export_model
(conversion and TFLM check as in training, length buckets, the library); this module reads the
flags. Writes --out (see export.library), staged and renamed when complete. With --run, the flags
not given come from the run folder (export.run_folder).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from absl import app, flags

from export import boards, bucket_lengths, cpp_sources, run_folder, tflm_profiles
from export.library import LibraryOptions
from keras_models.presets import saved_max_sequence_length
from tflm_embbert import stage_flags
from tflm_embbert.common import cli, paths
from tflm_embbert.common.errors import UserInputError
from tflm_embbert.data import flags as data_flags
from tflm_embbert.data.encoding import check_seq_len
from tflm_embbert.data.flags import load_data

FLAGS = flags.FLAGS
OPTIONS = LibraryOptions()
flags.DEFINE_string(
    "run",
    None,
    "A `train` output folder: model, tokenizer, L, data, labels and int8 settings from its "
    "run.json (flags given here win).",
)
flags.DEFINE_string(
    "model", None, "Trained classifier: a float or QAT .keras file (default: the --run's)."
)
flags.DEFINE_string("tokenizer", None, "Tokenizer folder (default: beside --model, else shipped).")
flags.DEFINE_string(
    "name", OPTIONS.name, "Library and C++ class name (an identifier; --run: from the task)."
)
flags.DEFINE_string(
    "out",
    None,
    "Output folder (model.tflite, report, library folder and zip; --run: <run>/arduino).",
)
flags.DEFINE_integer(
    "seq_len",
    0,
    "Sequence length L; 0 = the one in results.json beside --model, else the 99th "
    "percentile of the training lengths.",
)
flags.DEFINE_enum("board", "nano33ble", ["nano33ble", "custom"], "Board to check the fit against.")
flags.DEFINE_integer("flash_bytes", 0, "--board=custom: flash a sketch may use.")
flags.DEFINE_integer("ram_bytes", 0, "--board=custom: RAM.")
flags.DEFINE_integer("code_flash_bytes", 0, "--board=custom: flash of core + TFLM before a model.")
flags.DEFINE_integer("code_ram_bytes", 0, "--board=custom: RAM of core + TFLM before the arena.")
flags.DEFINE_enum(
    "tflm",
    OPTIONS.tflm,
    list(tflm_profiles.PROFILES),
    "TFLM distribution the library builds on; its op list is checked against the model's.",
)
flags.DEFINE_string(
    "tflm_tree",
    None,
    "A TFLM tree made by tflite-micro's create_tflm_tree.py, vendored into "
    "the library's src/ (with --tflm=tflm_tree).",
)
flags.DEFINE_float("arena_margin", OPTIONS.arena_margin, "Arena margin over the measured size.")
stage_flags.define_int8_flags()
flags.DEFINE_list("length_buckets", ["auto"], bucket_lengths.FLAG_HELP)
flags.DEFINE_bool("force", OPTIONS.force, "Write the library even when it does not fit the board.")
flags.DEFINE_string("url", OPTIONS.url, "library.properties url.")
flags.DEFINE_string("maintainer", OPTIONS.maintainer, "library.properties maintainer.")
flags.adopt_module_key_flags(data_flags)  # --help lists --task, --train_file, ... too
flags.adopt_module_key_flags(stage_flags)


def _say(line: str) -> None:
    print(line, flush=True)


def _board(f=FLAGS) -> boards.Board:
    if f.board == "custom":
        return boards.custom_board(f.flash_bytes, f.ram_bytes, f.code_flash_bytes, f.code_ram_bytes)
    return boards.BOARDS[f.board]


def _seq_len(model_path: Path, tokenizer, task) -> int:
    if FLAGS.seq_len:
        return FLAGS.seq_len
    results = model_path.parent / "results.json"
    if results.is_file():
        return int(json.loads(results.read_text())["seq_len"])
    from tflm_embbert.data.encoding import auto_seq_len

    return auto_seq_len(tokenizer, task.train)


def settings_from_flags(f=FLAGS):
    """The ExportSettings the flags ask for; app.UsageError (one line) for a bad value."""
    try:
        cpp_sources.check_name(f.name)
        int8 = stage_flags.int8_settings(f)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    if f.tflm_tree and not Path(f.tflm_tree).is_dir():
        raise app.UsageError(f"--tflm_tree: {f.tflm_tree} is not a folder")
    from export.exporter import ExportSettings  # TensorFlow: once the flags are checked

    library = LibraryOptions(
        name=f.name,
        board=_board(f),
        tflm=f.tflm,
        tflm_tree=Path(f.tflm_tree) if f.tflm_tree else None,
        arena_margin=f.arena_margin,
        force=f.force,
        url=f.url,
        maintainer=f.maintainer,
    )
    return ExportSettings(
        library=library,
        int8=int8,
        length_buckets=tuple(f.length_buckets),
        buckets_asked=f["length_buckets"].present > 0,
    )


def main(argv):
    del argv
    f = FLAGS
    started = time.time()
    record = None
    if f.run:
        try:
            record = run_folder.apply_run(f)
        except ValueError as error:
            raise app.UsageError(str(error)) from None
    if not f.model or not f.out:
        raise app.UsageError("give --run, or --model and --out")
    model_path = Path(f.model)
    if model_path.suffix != ".keras" or not model_path.is_file():
        raise app.UsageError(f"--model: expected an existing .keras file, got {f.model}")
    try:  # before any work: L within the model's position-embedding rows
        max_positions = saved_max_sequence_length(model_path)
    except ValueError as error:
        raise app.UsageError(f"--model: {error}") from None
    try:
        check_seq_len(f.seq_len, max_positions or 1 << 30, "--seq_len")
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    settings = settings_from_flags(f)
    task = load_data(f)
    if task.is_regression:
        raise app.UsageError(f"--task: {task.name} is a regression task; the library classifies")
    if record is not None:
        try:
            run_folder.check_labels(record, task.label_names)
        except ValueError as error:
            raise app.UsageError(str(error)) from None
    from tflm_embbert.data.tokenizer import Tokenizer

    tokenizer_dir = f.tokenizer or (
        model_path.parent
        if (model_path.parent / "vocab.txt").is_file()
        else paths.SHIPPED_TOKENIZER_DIR
    )
    tokenizer = Tokenizer.load(tokenizer_dir)
    seq_len = _seq_len(model_path, tokenizer, task)
    try:
        bucket_lengths.parse_lengths(f.length_buckets, seq_len)
    except ValueError as error:
        raise app.UsageError(str(error)) from None

    # TensorFlow loads only once the flags are valid
    from export.exporter import export_model
    from tflm_embbert.quantize.qat import load_qat_model

    _say(f"{model_path}: {task.name}, L={seq_len}")
    model = load_qat_model(model_path, compile=False)
    if model.output_shape[-1] != task.num_labels:
        raise app.UsageError(
            f"--model: {model_path} has {model.output_shape[-1]} outputs, {task.name} has "
            f"{task.num_labels} labels"
        )
    reused = record and run_folder.run_int8(f.run, record, model_path, seq_len, settings.int8)
    try:
        export_model(
            model,
            task,
            tokenizer,
            seq_len,
            f.out,
            settings,
            int8=reused or None,
            source=str(model_path),
            progress=_say,
        )
    except ValueError as error:  # conversion, int8 / lean / op / board checks, buckets: one line
        raise UserInputError(str(error)) from None
    print((Path(f.out) / "export_report.md").read_text())
    _say(f"wrote {f.out} in {time.time() - started:.0f} s ({f.name}.zip: {f.name}/ zipped)")


def run():
    cli.run(main)


if __name__ == "__main__":
    run()
