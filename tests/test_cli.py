"""The commands' front door (tflm_embbert.common.cli, .quiet): every known bad input ends in
exactly one line on stderr, `<command>: <what was expected>`, exit code 2, and leaves nothing
behind; an internal error is one line and exit code 1 (its traceback with --verbose); the
TensorFlow start-up lines are filtered unless --verbose; --help loads no TensorFlow."""

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.conftest import subprocess_env
from tflm_embbert.common.quiet import is_noise

TRAIN = "text,label\nplay some jazz,music\nwill it rain today,weather\nput on a song,music\n"
INPUTS = {
    "train.csv": TRAIN.encode(),
    "test.csv": b"text,label\nany rain tomorrow,weather\nplay rock,music\n",
    "latin1.csv": "text,label\nplay jazz,music\ncaf\u00e9 music,music\n".encode("latin-1"),
    "ragged.csv": b"text,label\nplay jazz,music\nrain,weather,extra\n",
    "unknown.csv": b"text,label\nplay jazz,music\nbook a table,restaurant\nbook,taxi\n",
    "text.keras": b"not a zip",
}
TRAIN_CMD = ["-m", "tflm_embbert.train", "--out", "out"]
EXPORT_CMD = ["-m", "export.export_tflite", "--out", "out", "--model", "model.keras"]
FILES = ["--train_file", "train.csv", "--test_file", "test.csv"]
MAX = "(the model's max_sequence_length is 32)"


def _train(train_file: str, test_file: str = "test.csv") -> list[str]:
    return TRAIN_CMD + ["--train_file", train_file, "--test_file", test_file]


# name: (command line, the start of the one line after "<command>: ")
CASES = {
    "not UTF-8": (
        _train("latin1.csv"),
        "latin1.csv:3: expected UTF-8 text, got byte e9 at byte offset 30 (re-save the file as "
        "UTF-8)",
    ),
    "ragged row": (
        _train("ragged.csv"),
        "ragged.csv:3: expected 2 comma-separated columns (as in the header), got 3 columns",
    ),
    "unknown test label": (
        _train("train.csv", "unknown.csv"),
        "unknown.csv:3: expected only labels of the train file ('music', 'weather'), got 2 other "
        "labels on 2 rows: 'restaurant' (line 3), 'taxi' (line 4)",
    ),
    "missing file": (
        _train("nothere.csv"),
        "--train_file: no such file nothere.csv",
    ),
    "train --seq_len 100000": (
        TRAIN_CMD + FILES + ["--seq_len", "100000"],
        "--seq_len 100000: expected 0 (auto: the 99th percentile of the train lengths) or 4..256",
    ),
    "train --seq_len -1": (TRAIN_CMD + FILES + ["--seq_len", "-1"], "--seq_len -1: expected 0"),
    "bad flag value": (TRAIN_CMD + FILES + ["--epochs", "many"], "flag --epochs=many: invalid"),
    "unknown flag": (TRAIN_CMD + FILES + ["--epoch", "3"], "Unknown command line flag 'epoch'"),
    "no data flags": (TRAIN_CMD, "give exactly one of --task or --train_file"),
    "export --seq_len 100000": (
        EXPORT_CMD + FILES + ["--seq_len", "100000"],
        "--seq_len 100000: expected 0 (auto: the 99th percentile of the train lengths) or "
        f"4..32 {MAX}",
    ),
    "export --seq_len 2": (EXPORT_CMD + FILES + ["--seq_len", "2"], "--seq_len 2: expected 0"),
    "export: model not a .keras archive": (
        ["-m", "export.export_tflite", "--out", "out", "--model", "text.keras"] + FILES,
        "--model: text.keras: expected a Keras .keras archive",
    ),
    "export: missing model": (
        ["-m", "export.export_tflite", "--out", "out", "--model", "none.keras"] + FILES,
        "--model: expected an existing .keras file, got none.keras",
    ),
    "export: missing run folder": (
        ["-m", "export.export_tflite", "--run", "no_run"],
        "--run: no_run: ",
    ),
    "export: bad --name": (
        EXPORT_CMD + FILES + ["--name", "9lives"],
        "--name: expected a C++ identifier that starts with a letter",
    ),
    "export: bad --board": (EXPORT_CMD + FILES + ["--board", "uno"], "flag --board=uno: value"),
    "demo: bad --length_buckets": (
        ["-m", "export.demo", "--out", "out", "--length_buckets", "8,x"],
        "--length_buckets: ",
    ),
    "train_tokenizer: missing corpus": (
        ["-m", "tflm_embbert.data.train_tokenizer", "--out", "out", "--corpus", "nothere"],
        "nothere: corpus file or folder not found",
    ),
    "pretrain: missing tokenizer": (
        ["-m", "tflm_embbert.training.pretrain", "--out", "out", "--tokenizer", "nothere"],
        "nothere/vocab.txt: tokenizer file not found",
    ),
    "export: --tflm_tree not a folder": (
        EXPORT_CMD + FILES + ["--tflm", "tflm_tree", "--tflm_tree", "nothere"],
        "--tflm_tree: nothere is not a folder",
    ),
    "pretrain: bad --decay": (
        ["-m", "tflm_embbert.training.pretrain", "--out", "out", "--decay", "fast"],
        "flag --decay=fast: value should be one of",
    ),
}


def _fake_model(path: Path) -> None:
    """A .keras archive whose config names max_sequence_length 32 (read without TensorFlow)."""
    config = {
        "class_name": "Functional",
        "config": {"layers": [{"config": {"max_sequence_length": 32}}]},
    }
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", json.dumps(config))


def _command(folder: Path, args: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, *args], cwd=folder, env=subprocess_env(), capture_output=True, text=True
    )


@pytest.mark.parametrize("name", list(CASES))
def test_a_bad_input_is_one_line_exit_2_and_leaves_nothing(name, tmp_path):
    args, message = CASES[name]
    for file, data in INPUTS.items():
        (tmp_path / file).write_bytes(data)
    _fake_model(tmp_path / "model.keras")
    before = sorted(p.name for p in tmp_path.iterdir())
    done = _command(tmp_path, args)
    lines = done.stderr.splitlines()
    command = args[1].rsplit(".", 1)[-1]
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith(f"{command}: {message}"), lines[0]
    assert done.returncode == 2, done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before  # no out, no out.tmp


_FAKE_COMMAND = """
import os, sys
sys.argv[0] = "fake"
from tflm_embbert.common import cli

NOISE = (
    b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR\\n"
    b"I0000 00:00:1796506563.706925   14029 port.cc:153] oneDNN custom operations are on.\\n"
    b"E0000 00:00:1796506565.220296   14029 cuda_platform.cc:52] failed call to cuInit: x\\n"
    b"fully_quantize: 0, inference_type: 6, input_inference_type: FLOAT32\\n"
    b"W1205 21:36:13.441768 140075247651712 save.py:290] Found untraced functions\\n"
    b"E0000 00:00:1796506565.220296   14029 kernel.cc:12] a real error\\n"
    b"kept line\\n"
)


def main(argv):
    os.write(2, NOISE)
    if "crash" in argv:
        raise RuntimeError("deep\\ninside")

cli.run(main)
"""


def test_the_start_up_noise_is_dropped_unless_verbose(tmp_path):
    quiet = _command(tmp_path, ["-c", _FAKE_COMMAND])
    assert quiet.returncode == 0
    assert quiet.stderr.splitlines() == [
        "E0000 00:00:1796506565.220296   14029 kernel.cc:12] a real error",
        "kept line",
    ]
    verbose = _command(tmp_path, ["-c", _FAKE_COMMAND, "--verbose"])
    assert verbose.returncode == 0 and len(verbose.stderr.splitlines()) == 7


def test_an_internal_error_is_one_line_exit_1_and_its_traceback_with_verbose(tmp_path):
    done = _command(tmp_path, ["-c", _FAKE_COMMAND, "crash"])
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1] == (
        "fake: internal error: RuntimeError: deep inside (run again with --verbose for the "
        "traceback)"
    )
    assert len(done.stderr.splitlines()) == 3  # the two kept lines of the fake noise, then it
    verbose = _command(tmp_path, ["-c", _FAKE_COMMAND, "crash", "--verbose"])
    assert verbose.returncode == 1 and "Traceback (most recent call last)" in verbose.stderr
    assert verbose.stderr.splitlines()[-1] == "fake: internal error: RuntimeError: deep inside"


def test_noise_patterns():
    assert is_noise(b"I0000 00:00:1796506563.707734   14029 cudart_stub.cc:31] Could not find")
    assert is_noise(b"W1205 21:36:13.441768 140075247651712 signature_serialization.py:156] x")
    assert is_noise(b"fully_quantize: 0, inference_type: 6, input_inference_type: INT8")
    assert not is_noise(b"E1205 21:36:13.441768 140075 interpreter.cc:10] Invoke failed")
    assert not is_noise(b"Traceback (most recent call last):")
    assert not is_noise(b"train: --seq_len 0: expected")


TF_PACKAGES = ("tensorflow", "tf_keras", "tensorflow_model_optimization", "keras")


@pytest.mark.parametrize(
    "module",
    [
        "tflm_embbert.train",
        "tflm_embbert.data.train_tokenizer",
        "tflm_embbert.training.pretrain",
        "export.demo",
        "export.export_tflite",
    ],
)
def test_a_command_loads_no_tensorflow_before_its_flags_are_parsed(module, tmp_path):
    """So --help and a bad flag answer in well under 2 s (bench/cli_help_time.py)."""
    code = (
        f"import sys; import {module}; "
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {TF_PACKAGES}))"
    )
    done = _command(tmp_path, ["-c", code])
    assert done.returncode == 0 and done.stdout.strip() == "[]", (done.stdout, done.stderr[-2000:])
