"""The `export_tflite` command: .keras model -> int8 .tflite -> TFLM check -> Arduino library.

    export_tflite --model runs/snips/qat.keras --task snips --name SnipsIntents --out runs/snips_lib
    export_tflite --model my/model.keras --train_file train.csv --test_file test.csv \\
        --name MyClassifier --seq_len 64 --tflm tflm_tree --tflm_tree /tmp/tflm_tree --out lib

The model may be float (post-training int8) or QAT (its trained ranges are kept). Its tokenizer is
the one saved beside it (vocab.txt), else --tokenizer, else the shipped one. The task's data
calibrates the int8 ranges (training examples) and scores the int8 model under the TFLM runtime
(the test split); the labels become the library's labels. Conversion, the int8 check and the TFLM
run are those of the training pipeline (tflm_embbert.tflm.int8_eval); the length buckets (on by
default: powers of two from 16 below L, then L) are export.buckets', checked bit for bit against
the full graph on the test split; the library and its checks are export.library's. Writes --out (see
export.library), staged and renamed when complete.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from absl import app, flags

from export import boards, buckets, cpp_sources, tflm_profiles
from export.library import DEFAULT_ARENA_MARGIN, DEFAULT_URL, LibraryRequest, export_library
from tflm_embbert.common import paths
from tflm_embbert.data.encoding import auto_seq_len
from tflm_embbert.data.flags import load_data
from tflm_embbert.data.tokenizer import Tokenizer
from tflm_embbert.tflm.int8_eval import DEFAULT_CHUNK_ROWS, int8_under_tflm

FLAGS = flags.FLAGS
flags.DEFINE_string("model", None, "Trained classifier: a float or QAT .keras file.")
flags.DEFINE_string("tokenizer", None, "Tokenizer folder (default: beside --model, else shipped).")
flags.DEFINE_string("name", "EmbBERTClassifier", "Library and C++ class name (an identifier).")
flags.DEFINE_string("out", None, "Output folder (model.tflite, report, library folder and zip).")
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
    "tflm_tree",
    list(tflm_profiles.PROFILES),
    "TFLM distribution the library builds on; its op list is checked against the model's.",
)
flags.DEFINE_string(
    "tflm_tree",
    None,
    "A TFLM tree made by tflite-micro's create_tflm_tree.py, vendored into "
    "the library's src/ (with --tflm=tflm_tree).",
)
flags.DEFINE_float("arena_margin", DEFAULT_ARENA_MARGIN, "Arena margin over the measured size.")
flags.DEFINE_integer("calibration_examples", 200, "Training examples calibrating int8 ranges.")
flags.DEFINE_bool(
    "lean",
    True,
    "Memory-lean graph (exact: same int8 outputs, checked on the test split): pre-transposed "
    "attention values, [CLS]-only last layer, optional row chunks, a per-key mask bias "
    "(tflm_embbert/graph/lean_graph.py).",
)
flags.DEFINE_bool(
    "mask_bias",
    True,
    "With --lean: mask padded keys with one per-key bias instead of the converter's per-row "
    "floor (one (rows, L) tensor and three ops fewer per chunk; exact through the softmax, "
    "checked against the converter's graph, and dropped by itself if a difference shows).",
)
flags.DEFINE_list(
    "chunk_rows",
    [str(rows) for rows in DEFAULT_CHUNK_ROWS],
    "Row-chunk sizes to try with --lean (0 = no chunks); the smallest measured arena wins "
    "(the converter's own graph is always a candidate).",
)
flags.DEFINE_bool(
    "per_channel_dense",
    False,
    "Per-channel int8 Dense weights (the converter's default re-quantization). The default keeps "
    "QAT's per-tensor grid: the same or closer agreement with the QAT model, a smaller .tflite "
    "and arena (bench/results/dense_layout).",
)
flags.DEFINE_list("length_buckets", ["auto"], buckets.FLAG_HELP)
flags.DEFINE_bool("force", False, "Write the library even when it does not fit the board.")
flags.DEFINE_string("url", DEFAULT_URL, "library.properties url.")
flags.DEFINE_string("maintainer", "tflm_embbert user", "library.properties maintainer.")


def _say(line: str) -> None:
    print(line, flush=True)


def _board(f=FLAGS) -> boards.Board:
    if f.board == "custom":
        return boards.custom_board(f.flash_bytes, f.ram_bytes, f.code_flash_bytes, f.code_ram_bytes)
    return boards.BOARDS[f.board]


def _seq_len(model_path: Path, tokenizer: Tokenizer, task) -> int:
    if FLAGS.seq_len:
        return FLAGS.seq_len
    results = model_path.parent / "results.json"
    if results.is_file():
        return int(json.loads(results.read_text())["seq_len"])
    return auto_seq_len(tokenizer, task.train)


def main(argv):
    del argv
    f = FLAGS
    started = time.time()
    model_path = Path(f.model)
    if model_path.suffix != ".keras" or not model_path.is_file():
        raise app.UsageError(f"--model: expected an existing .keras file, got {f.model}")
    try:
        cpp_sources.check_name(f.name)
    except ValueError as error:
        raise app.UsageError(str(error)) from None
    if f.tflm_tree and not Path(f.tflm_tree).is_dir():
        raise app.UsageError(f"--tflm_tree: {f.tflm_tree} is not a folder")
    if not all(rows.isdigit() for rows in f.chunk_rows) or not f.chunk_rows:
        raise app.UsageError(f"--chunk_rows: expected integers >= 0, got {','.join(f.chunk_rows)}")
    task = load_data(f)
    if task.is_regression:
        raise app.UsageError(f"--task: {task.name} is a regression task; the library classifies")
    board = _board(f)
    tokenizer_dir = f.tokenizer or (
        model_path.parent
        if (model_path.parent / "vocab.txt").is_file()
        else paths.SHIPPED_TOKENIZER_DIR
    )
    tokenizer = Tokenizer.load(tokenizer_dir)
    seq_len = _seq_len(model_path, tokenizer, task)
    try:
        lengths = buckets.parse_lengths(f.length_buckets, seq_len)
    except ValueError as error:
        raise app.UsageError(str(error)) from None

    from tflm_embbert.quantize.qat import load_qat_model  # TF import only once the flags are valid

    _say(f"[1/3] {model_path}: int8 conversion (L={seq_len}) + {task.name} test split under TFLM")
    model = load_qat_model(model_path, compile=False)
    if model.output_shape[-1] != task.num_labels:
        raise app.UsageError(
            f"--model: {model_path} has {model.output_shape[-1]} outputs, {task.name} has "
            f"{task.num_labels} labels"
        )
    try:
        converted = int8_under_tflm(
            model,
            task,
            tokenizer,
            seq_len,
            references={"keras": model},
            calibration_examples=f.calibration_examples,
            seed=f.seed,
            lean=f.lean,
            chunk_candidates=tuple(int(rows) for rows in f.chunk_rows),
            per_channel_dense=f.per_channel_dense,
            mask_bias=f.mask_bias,
            progress=_say,
        )
    except ValueError as error:  # the conversion, the int8 check or the lean check: one line
        print(f"export_tflite: {error}", file=sys.stderr)
        sys.exit(2)
    _say(f"[2/3] length buckets ({'/'.join(map(str, lengths)) or 'none'})")
    bucketed, bucket_note = None, buckets.off_note(f.length_buckets, seq_len)
    if lengths:
        try:
            bucketed, bucket_note = buckets.build_or_fall_back(
                lambda: buckets.build_buckets(
                    model,
                    task,
                    tokenizer,
                    seq_len,
                    lengths,
                    converted.tflite,
                    converted.lean,
                    calibration_examples=f.calibration_examples,
                    seed=f.seed,
                    per_channel_dense=f.per_channel_dense,
                    lean=f.lean,
                    chunk_candidates=tuple(int(rows) for rows in f.chunk_rows),
                    progress=_say,
                ),
                explicit=f["length_buckets"].present > 0,
                seq_len=seq_len,
                say=_say,
            )
        except buckets.BucketError as error:  # asked for: refuse, nothing written
            print(f"export_tflite: {error}", file=sys.stderr)
            sys.exit(2)
    _say(f"[3/3] Arduino library {f.name} for {board.name} (TFLM: {f.tflm})")
    request = LibraryRequest(
        name=f.name,
        tflite=bucketed.data if bucketed else converted.tflite,
        tokenizer=tokenizer,
        labels=list(task.label_names),
        seq_len=seq_len,
        arena_measured_bytes=(
            bucketed.arena_measured_bytes if bucketed else converted.memory["ram_arena_bytes"]
        ),
        task=task.name,
        source=str(model_path),
        board=board,
        tflm=f.tflm,
        tflm_tree=Path(f.tflm_tree) if f.tflm_tree else None,
        arena_margin=f.arena_margin,
        force=f.force,
        url=f.url,
        maintainer=f.maintainer,
        extra_report={
            "tflm_test": converted.test,
            "tflm_agreement": converted.agreement,
            "test_split": task.test_split,
            "lean_graph": converted.lean,
            **({"length_buckets": bucket_note} if bucket_note else {}),
        },
        buckets=bucketed,
    )
    try:
        export_library(request, f.out)
    except ValueError as error:  # ExportError and the int8 check: one line each
        print(f"export_tflite: {error}", file=sys.stderr)
        sys.exit(2)
    print((Path(f.out) / "export_report.md").read_text())
    _say(f"wrote {f.out} in {time.time() - started:.0f} s ({f.name}.zip: {f.name}/ zipped)")


def run():
    flags.mark_flag_as_required("model")
    flags.mark_flag_as_required("out")
    app.run(main)


if __name__ == "__main__":
    run()
