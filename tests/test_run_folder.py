"""A run folder describes itself: run.json, predictions.csv, per-class figures, pictures linked
from report.md, tensor names in memory.md; `export_tflite --run DIR` needs no other flag."""

import csv
import json
import re
import subprocess
import sys

import numpy as np
import pytest
from absl import flags

from tests.conftest import subprocess_env
from tests.test_train import _task, _write_csv_files
from tflm_embbert.data.examples import Example, TaskData
from tflm_embbert.data.metrics import per_class_metrics
from tflm_embbert.data.user_files import task_name_of
from tflm_embbert.report.run_report import predictions_csv, write_run_report
from tflm_embbert.run_record import RunFolderError, read_run


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory, tiny_tokenizer_dir):
    """The train command: float -> QAT -> int8 -> TFLM on the whole test split, plus
    post-training int8, on files named intents_train.csv / intents_test.csv."""
    folder = tmp_path_factory.mktemp("int8_run")
    task = _task(160)
    _write_csv_files(task, folder)
    (folder / "train.csv").rename(folder / "intents_train.csv")
    (folder / "test.csv").rename(folder / "intents_test.csv")
    out = folder / "out"
    done = subprocess.run(
        [sys.executable, "-m", "tflm_embbert.train", "--train_file",
         str(folder / "intents_train.csv"), "--test_file", str(folder / "intents_test.csv"),
         "--from_scratch", "--tokenizer", str(tiny_tokenizer_dir), "--epochs", "6",
         "--learning_rate", "3e-3", "--seq_len", "16", "--qat_epochs", "1",
         "--qat_learning_rate", "1e-3", "--int8", "--ptq", "--calibration_examples", "32",
         "--out", str(out), "--progress", "0", "--preset", "embbert", "--seed", "0"],
        env=subprocess_env(), capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return {"task": task, "folder": folder, "out": out, "done": done}


def test_train_command_qat_int8_tflm(int8_run):
    done, out = int8_run["done"], int8_run["out"]
    assert "[3/5] QAT int8 conversion + TFLM check" in done.stdout
    names = {p.name for p in out.iterdir()}
    assert {"model.keras", "qat.keras", "model_int8.tflite", "model_ptq.tflite", "memory.json",
            "memory.md", "qat_log.csv", "results.json"} <= names
    results = json.loads((out / "results.json").read_text())
    int8 = results["int8_tflm"]
    assert int8["from"] == "QAT"
    assert set(int8["agreement"]) == {"float", "qat"}
    assert int8["test"]["accuracy"] >= 0.5  # scored on the test split, under TFLM
    assert results["ptq_int8_tflm"]["agreement"]["float"] >= 0.0
    memory = json.loads((out / "memory.json").read_text())
    assert memory["flash_tflite_bytes"] == (out / "model_int8.tflite").stat().st_size
    assert memory["ram_arena_bytes"] >= memory["arena"]["recorded"] > 0
    summary = json.loads(done.stdout[done.stdout.rindex("\n{\n"):done.stdout.rindex("}") + 1])
    assert summary["int8_tflm_test_accuracy"] == round(int8["test"]["accuracy"], 4)
    assert not (int8_run["folder"] / "out.tmp").exists()


def test_run_json_describes_the_run(int8_run, tiny_tokenizer_dir):
    out, folder = int8_run["out"], int8_run["folder"]
    record = read_run(out)
    assert record["task"] == "intents"  # intents_train.csv, not "custom"
    assert record["labels"] == ["neg", "pos"] and record["seq_len"] == 16
    assert record["deployed"] == "qat.keras"
    assert record["models"] == {"float": "model.keras", "qat": "qat.keras",
                                "int8": "model_int8.tflite", "ptq": "model_ptq.tflite"}
    assert record["tokenizer"]["source"] == str(tiny_tokenizer_dir.resolve())
    assert all((out / name).is_file() for name in record["tokenizer"]["files"])
    assert record["data"]["train_file"] == str(folder / "intents_train.csv")
    assert record["data"]["test_file"] == str(folder / "intents_test.csv")
    assert record["data"]["seed"] == 0 and record["data"]["task"] is None
    settings = record["settings"]
    assert settings["float_fit"]["epochs"] == 6 and settings["qat_fit"]["epochs"] == 1
    assert settings["int8"]["calibration_examples"] == 32 and settings["ptq"] is True
    task = int8_run["task"]
    assert record["examples"]["test"] == len(task.test)
    assert record["examples"]["train"] + record["examples"]["validation"] == (
        len(task.train) + len(task.validation)
    )


def test_predictions_and_per_class_figures(int8_run):
    out, task = int8_run["out"], int8_run["task"]
    with open(out / "predictions.csv", newline="") as file:
        rows = list(csv.DictReader(file))
    assert len(rows) == len(task.test)
    stages = ("float", "qat", "int8", "ptq")
    assert list(rows[0]) == ["row", "text", "true_label"] + [
        f"{s}_{c}" for s in stages for c in ("label", "score")
    ]
    labels = ["neg", "pos"]
    for index, (row, example) in enumerate(zip(rows, task.test, strict=True)):
        assert int(row["row"]) == index and row["text"] == example.text_a
        assert row["true_label"] == labels[example.label]
        for stage in stages:
            assert row[f"{stage}_label"] in labels
            assert 0.5 <= float(row[f"{stage}_score"]) <= 1.0  # the larger of two probabilities
    results = json.loads((out / "results.json").read_text())
    truth = [labels.index(r["true_label"]) for r in rows]
    for stage, key in (("float", "float"), ("int8", "int8_tflm"), ("ptq", "ptq_int8_tflm")):
        predicted = [labels.index(r[f"{stage}_label"]) for r in rows]
        expected = per_class_metrics(truth, predicted, labels)
        assert results["test_per_class"][stage] == expected
        assert results[key]["test"]["accuracy"] == pytest.approx(expected["accuracy"])
    agreement = np.mean([r["int8_label"] == r["qat_label"] for r in rows])
    assert results["int8_tflm"]["agreement"]["qat"] == pytest.approx(agreement)


def test_report_links_its_pictures_and_memory_names_tensors(int8_run):
    out = int8_run["out"]
    report = (out / "report.md").read_text()
    pictures = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", report)
    assert set(pictures) == {
        "confusion_matrix.png", "int8_vs_float.png", "memory.png", "latency.png"
    }
    for name in pictures:
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name
    links = set(re.findall(r"\]\(([^)]+)\)", report))
    assert {p.name for p in out.iterdir() if p.is_file()} <= links  # every file is listed
    results = json.loads((out / "results.json").read_text())
    macro = results["test_per_class"]["int8"]["macro_f1"]
    assert f"| int8 under TFLM | {results['int8_tflm']['test']['accuracy']:.4f} | " \
           f"{macro:.4f} |" in report
    memory = (out / "memory.md").read_text()
    tensors = re.findall(r"^\| `([^`]*)` \|", memory, flags=re.M)
    assert len(tensors) == 5 and "None" not in tensors
    assert all(t.startswith("embbert_classifier/") for t in tensors), tensors


def test_export_tflite_run_needs_no_other_flag(int8_run):
    out = int8_run["out"]
    done = subprocess.run(
        [sys.executable, "-m", "export.export_tflite", "--run", str(out)],
        env=subprocess_env(), capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"{out / 'qat.keras'}: intents, L=16" in done.stdout
    assert "converted and checked under TFLM already" in done.stdout  # the run's int8 graph
    library = out / "arduino"
    report = json.loads((library / "export_report.json").read_text())
    assert report["labels"] == ["neg", "pos"] and report["task"] == "intents"
    assert report["seq_len"] == 16
    assert (library / "model.tflite").read_bytes() == (out / "model_int8.tflite").read_bytes()
    assert (library / "IntentsClassifier.zip").is_file()
    assert not (out / "arduino.tmp").exists()


def _export_flags(argv):
    """A fresh set of export_tflite's flags that apply_run fills, parsed from `argv`."""
    values = flags.FlagValues()
    for name in ("run", "model", "tokenizer", "out", "task", "train_file", "test_file",
                 "task_name", "text_column", "label_column"):
        flags.DEFINE_string(name, None, "", flag_values=values)
    flags.DEFINE_string("name", "EmbBERTClassifier", "", flag_values=values)
    flags.DEFINE_integer("seq_len", 0, "", flag_values=values)
    flags.DEFINE_integer("seed", 0, "", flag_values=values)
    flags.DEFINE_integer("calibration_examples", 200, "", flag_values=values)
    for name in ("lean", "mask_bias", "per_channel_dense"):
        flags.DEFINE_bool(name, True, "", flag_values=values)
    flags.DEFINE_list("chunk_rows", ["0"], "", flag_values=values)
    values(["export_tflite", *argv])
    return values


def test_run_fills_only_the_flags_not_given(int8_run, tmp_path):
    from export.run_folder import apply_run, check_labels

    out = int8_run["out"]
    given = _export_flags(["--run", str(out), "--seq_len", "12", "--out", str(tmp_path / "lib"),
                           "--calibration_examples", "8", "--nolean"])
    record = apply_run(given)
    assert given.model == str(out / "qat.keras") and given.tokenizer == str(out)
    assert given.name == "IntentsClassifier"
    assert given.train_file == record["data"]["train_file"]
    assert given.chunk_rows == ["0", "64", "32"]
    assert (given.seq_len, given.out, given.calibration_examples, given.lean) == (
        12, str(tmp_path / "lib"), 8, False)  # the flags given win
    other_data = _export_flags(["--run", str(out), "--task", "snips"])
    apply_run(other_data)
    assert other_data.task == "snips" and other_data.train_file is None
    with pytest.raises(RunFolderError, match="labels \\['a', 'b'\\] are not the run's"):
        check_labels(record, ["a", "b"])


def test_a_folder_that_is_not_a_run_is_one_line(tmp_path):
    with pytest.raises(RunFolderError, match=f"--run: {tmp_path / 'nope'}: no folder"):
        read_run(tmp_path / "nope")
    with pytest.raises(RunFolderError, match="no run.json"):
        read_run(tmp_path)
    (tmp_path / "run.json").write_text('{"format": 1, "task": "t", "labels": null, '
                                       '"seq_len": 8, "tokenizer": {"files": []}, '
                                       '"deployed": "qat.keras"}')
    with pytest.raises(RunFolderError, match="names qat.keras, which is not in"):
        read_run(tmp_path)
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(RunFolderError, match="expected JSON"):
        read_run(tmp_path)


def test_task_names_come_from_the_train_file():
    assert task_name_of("data/intents_train.csv.gz") == "intents"
    assert task_name_of("reviews-training.jsonl") == "reviews"
    assert task_name_of("my_data/train.tsv") == "my_data"
    assert task_name_of("strain.csv") == "strain"


def test_regression_predictions_and_report_without_int8(tmp_path):
    """A regression run: predicted scores in predictions.csv, no per-class figures or pictures."""
    test = [Example(f"text {i}", None, float(i)) for i in range(3)]
    task = TaskData("scores", test, [], test, None, "spearman", "test")
    text = predictions_csv(task, {"float": np.array([[0.5], [1.25], [2.0]])})
    assert text.splitlines() == ["row,text,true_score,float_score", "0,text 0,0,0.5",
                                 "1,text 1,1,1.25", "2,text 2,2,2"]
    results = {"seq_len": 8, "float": {"test": {"spearman": 1.0, "pearson": 0.99}}}
    written = write_run_report(tmp_path, task, results, {"float": np.array([[0.5], [1.2], [2]])})
    assert written == ["predictions.csv", "report.md"]
    report = (tmp_path / "report.md").read_text()
    assert "| float Keras | 1.0000 | 0.9900 |" in report and "![" not in report
