"""Fine-tuning: a two-step smoke test, best-epoch restore, regression, and the CLI on files."""

import json
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pytest

from keras_models.models import build_pretrainer, save_backbone
from tests.conftest import WORDS, subprocess_env, tiny_config
from tflm_embbert.data.encoding import auto_seq_len, encode
from tflm_embbert.data.examples import Example, TaskData
from tflm_embbert.pipeline import run_pipeline
from tflm_embbert.quantize.settings import QAT_FIT
from tflm_embbert.stages import Stages
from tflm_embbert.tflm.settings import Int8Settings
from tflm_embbert.training.finetune import FinetuneResult, finetune
from tflm_embbert.training.settings import FitSettings


def _task(n=96, regression=False, seed=0):
    rng = np.random.default_rng(seed)
    examples = []
    for _ in range(n):
        label = int(rng.integers(0, 2))
        words = rng.choice(WORDS[:10] if label else WORDS[10:], size=6)
        value = float(label) * 5.0 if regression else label
        examples.append(Example(" ".join(words), None, value))
    names = None if regression else ["a", "b"]
    metric = "spearman" if regression else "accuracy"
    return TaskData("toy", examples[:64], examples[64:80], examples[80:], names, metric, "test")


def test_two_step_training_smoke(tiny_tokenizer):
    result = finetune(
        _task(), tiny_tokenizer, tiny_config(),
        FitSettings(epochs=2, max_steps_per_epoch=2, batch_size=8), seq_len=16, verbose=0,
    )
    assert result.epochs_run == 2
    assert set(result.test) == {"accuracy"} and 0.0 <= result.test["accuracy"] <= 1.0
    assert result.model.output_shape == (None, 2)
    assert result.step_seconds > 0


def test_learns_a_separable_toy_task(tiny_tokenizer):
    result = finetune(
        _task(), tiny_tokenizer, tiny_config(),
        FitSettings(epochs=8, batch_size=8, learning_rate=3e-3, patience=8), seq_len=16, verbose=0,
    )
    assert result.validation["accuracy"] >= 0.9
    assert result.test["accuracy"] >= 0.8


def test_restores_best_validation_epoch(tiny_tokenizer):
    task = _task()
    result = finetune(task, tiny_tokenizer, tiny_config(),
                      FitSettings(epochs=3, batch_size=8, learning_rate=3e-3), seq_len=16,
                      verbose=0)
    inputs, labels = encode(tiny_tokenizer, task.validation, 16)
    predicted = result.model.predict(inputs, verbose=0).argmax(-1)
    assert np.mean(predicted == labels) == pytest.approx(result.validation["accuracy"])


def test_fit_resumes_after_its_last_checkpointed_epoch(tiny_tokenizer, tmp_path):
    """A second fit with the same backup_dir starts after epoch 2 and still knows that run's best
    epoch: epochs 3-4 use a learning rate that wrecks the model, so the best must come from 1-2."""
    task, backup, log = _task(), tmp_path / "backup", tmp_path / "log.csv"
    common = dict(seq_len=16, verbose=0, backup_dir=backup, log_csv=log)
    fit = FitSettings(batch_size=8, seed=3)
    first = finetune(task, tiny_tokenizer, tiny_config(),
                     replace(fit, epochs=2, learning_rate=3e-3), **common)
    assert first.validation["accuracy"] >= 0.9 and first.resumed_from_epoch == 0
    second = finetune(task, tiny_tokenizer, tiny_config(),
                      replace(fit, epochs=4, learning_rate=30.0, patience=5), **common)
    assert second.resumed_from_epoch == 2 and second.epochs_run == 4
    assert len(log.read_text().strip().splitlines()) == 1 + 4  # header, then epochs 1-4 once
    assert second.best_epoch == first.best_epoch and second.validation == first.validation
    inputs, labels = encode(tiny_tokenizer, task.validation, 16)
    predicted = second.model.predict(inputs, verbose=0).argmax(-1)
    assert np.mean(predicted == labels) == pytest.approx(first.validation["accuracy"])


def test_finetune_result_json_round_trip(tiny_tokenizer):
    result = finetune(_task(), tiny_tokenizer, tiny_config(),
                      FitSettings(epochs=1, max_steps_per_epoch=1, batch_size=8), seq_len=16,
                      verbose=0)
    assert FinetuneResult.from_json(result.model, result.to_json()).to_json() == result.to_json()


def test_pipeline_resume_reuses_finished_stages(tiny_tokenizer, tmp_path):
    """A run stopped at the int8 stage leaves its float and QAT stages; `resume` loads them (same
    scores, no retraining) and finishes; other arguments start again."""
    task, out = _task(), tmp_path / "out"

    class Stop(Exception):
        pass

    def stop_at_int8(line):
        if "int8 conversion" in line:
            raise Stop(line)

    stages = Stages(
        float_fit=FitSettings(epochs=2, batch_size=8),
        qat_fit=replace(QAT_FIT, epochs=1, batch_size=8),
        int8=Int8Settings(calibration_examples=16),
    )
    args = dict(seq_len=16, verbose=0, resume=True)
    with pytest.raises(Stop):
        run_pipeline(task, tiny_tokenizer, tiny_config(), out, stages, progress=stop_at_int8,
                     **args)
    staging = tmp_path / "out.tmp"
    kept = {name: json.loads((staging / f"{name}.json").read_text()) for name in ("float", "qat")}
    lines = []
    results = run_pipeline(task, tiny_tokenizer, tiny_config(), out, stages,
                           progress=lines.append, **args)
    assert "resuming the interrupted run in" in lines[0]
    assert sum("done by an earlier run" in line for line in lines) == 2
    assert results["float"] == kept["float"] and results["qat"] == kept["qat"]
    assert not staging.exists() and (out / "model_int8.tflite").is_file()
    assert {"float.json", "qat.json", "arguments.json"}.isdisjoint(p.name for p in out.iterdir())

    with pytest.raises(Stop):
        run_pipeline(task, tiny_tokenizer, tiny_config(), out, stages, progress=stop_at_int8,
                     **args)
    lines = []
    run_pipeline(task, tiny_tokenizer, tiny_config(), out,
                 replace(stages, qat_fit=None).with_seed(2), progress=lines.append, **args)
    assert "other arguments: starting again" in lines[0]
    assert not any("done by an earlier run" in line for line in lines)


def test_regression_head(tiny_tokenizer):
    result = finetune(_task(regression=True), tiny_tokenizer, tiny_config(),
                      FitSettings(epochs=1, batch_size=8), seq_len=16, verbose=0)
    assert result.model.output_shape == (None, 1)
    assert set(result.test) == {"spearman", "pearson"}


def test_from_pretrained_backbone(tiny_tokenizer, tmp_path):
    config = tiny_config()
    pretrainer = build_pretrainer(config)
    save_backbone(pretrainer, config, tmp_path / "backbone")
    result = finetune(_task(), tiny_tokenizer, config,
                      FitSettings(epochs=1, max_steps_per_epoch=1, batch_size=8),
                      backbone_dir=tmp_path / "backbone", seq_len=16, verbose=0)
    assert result.settings["from_backbone"] == str(tmp_path / "backbone")


def test_vocab_mismatch_is_a_clear_error(tiny_tokenizer):
    with pytest.raises(ValueError, match="tokenizer has 120 tokens but the model expects 99"):
        finetune(_task(), tiny_tokenizer, tiny_config(vocabulary_size=99),
                 FitSettings(epochs=1), seq_len=16, verbose=0)


def test_auto_seq_len(tiny_tokenizer):
    length = auto_seq_len(tiny_tokenizer, _task().train)
    assert length % 16 == 0 and 16 <= length <= 256


def _write_csv_files(task, folder):
    """train.csv (train + validation: the command draws its own validation) and test.csv."""
    for name, rows in (("train.csv", task.train + task.validation), ("test.csv", task.test)):
        lines = ["text,label"] + [f"{e.text_a},{'pos' if e.label else 'neg'}" for e in rows]
        (folder / name).write_text("\n".join(lines) + "\n")


def test_train_command_on_generic_files(tmp_path, tiny_tokenizer_dir):
    task = _task()
    _write_csv_files(task, tmp_path)
    out = tmp_path / "out"
    done = subprocess.run(
        [sys.executable, "-m", "tflm_embbert.train", "--train_file", str(tmp_path / "train.csv"),
         "--test_file", str(tmp_path / "test.csv"), "--from_scratch", "--tokenizer",
         str(tiny_tokenizer_dir), "--epochs", "1", "--seq_len", "16", "--out", str(out),
         "--progress", "0"],
        env=subprocess_env(), capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["float"]["test_examples"] == len(task.test)
    assert {"model.keras", "vocab.txt", "tokenizer_config.json", "train_log.csv",
            "results.json", "run.json", "predictions.csv", "report.md",
            "confusion_matrix.png"} == {p.name for p in out.iterdir()}
    record = json.loads((out / "run.json").read_text())
    # train.csv gives no name: the task is named after its folder
    assert record["task"] == tmp_path.name and record["deployed"] == "model.keras"
    assert "test_per_class" in results and set(results["test_per_class"]) == {"float"}
    assert not (tmp_path / "out.tmp").exists()


def test_train_command_rejects_missing_task_and_file(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tflm_embbert.train", "--out", str(tmp_path / "x")],
        env=subprocess_env(), capture_output=True, text=True,
    )
    assert done.returncode != 0
    assert "give exactly one of --task or --train_file" in done.stderr


def test_train_help_lists_the_data_flags(tmp_path):
    """--help (not only --helpfull) shows the data and stage flags, under `python -m` and
    under a console script (whose sys.argv[0] is the script, not the module)."""
    script = tmp_path / "embbert-train"
    script.write_text("import sys\nfrom tflm_embbert.train import run\nsys.exit(run())\n")
    for command in (["-m", "tflm_embbert.train"], [str(script)]):
        done = subprocess.run(
            [sys.executable, *command, "--help"],
            env=subprocess_env(), capture_output=True, text=True,
        )
        assert "Traceback" not in done.stderr, done.stderr[-2000:]  # (absl's --help exits 1)
        for flag in ("--train_file", "--test_file", "--validation_file", "--[no]header",
                     "--text_column", "--label_column", "--labels", "--task", "--seq_len",
                     "--epochs", "--qat_epochs"):
            assert f"  {flag}: " in done.stdout, (command, flag)


def test_train_command_checks_seq_len_first(tmp_path):
    """A --seq_len outside 4..max positions stops before the data is read (the files do not
    exist) and leaves nothing behind."""
    for seq_len in ("100000", "2", "-1"):
        done = subprocess.run(
            [sys.executable, "-m", "tflm_embbert.train", "--train_file", "nope.csv",
             "--test_file", "nope.csv", "--seq_len", seq_len, "--out", str(tmp_path / "out")],
            env=subprocess_env(), capture_output=True, text=True, cwd=tmp_path,
        )
        assert done.returncode != 0
        assert (
            f"--seq_len {seq_len}: expected 0 (auto: the 99th percentile of the train lengths) "
            "or 4..256 (the model's max_sequence_length is 256)"
        ) in done.stderr, done.stderr[-2000:]
    assert list(tmp_path.iterdir()) == []


def test_train_command_refuses_int8_for_a_float_only_preset(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "tflm_embbert.train", "--out", str(tmp_path / "x"), "--task",
         "snips", "--from_scratch", "--preset", "mamba_2mb", "--qat_epochs", "1", "--int8"],
        env=subprocess_env(), capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode != 0 and not (tmp_path / "x").exists()
    assert "--preset mamba_2mb is float only (no int8 / TFLM path)" in done.stderr


def test_train_command_starts_from_a_float_model(tmp_path, tiny_tokenizer_dir):
    """--float_model skips float training: same float scores, then int8 under TFLM."""
    task = _task(160)
    _write_csv_files(task, tmp_path)
    common = [sys.executable, "-m", "tflm_embbert.train", "--train_file",
              str(tmp_path / "train.csv"), "--test_file", str(tmp_path / "test.csv"),
              "--seq_len", "16", "--progress", "0"]
    first = subprocess.run(
        common + ["--from_scratch", "--tokenizer", str(tiny_tokenizer_dir), "--epochs", "3",
                  "--learning_rate", "3e-3", "--out", str(tmp_path / "float")],
        env=subprocess_env(), capture_output=True, text=True,
    )
    assert first.returncode == 0, first.stderr[-3000:]
    second = subprocess.run(
        common + ["--float_model", str(tmp_path / "float" / "model.keras"), "--int8",
                  "--calibration_examples", "16", "--out", str(tmp_path / "int8")],
        env=subprocess_env(), capture_output=True, text=True,
    )
    assert second.returncode == 0, second.stderr[-3000:]
    assert "(no float training)" in second.stdout
    before = json.loads((tmp_path / "float" / "results.json").read_text())["float"]
    after = json.loads((tmp_path / "int8" / "results.json").read_text())
    assert after["float"]["test"] == pytest.approx(before["test"])
    assert after["float"]["validation"] == pytest.approx(before["validation"])
    assert after["int8_tflm"]["from"] == "post-training"
    missing = subprocess.run(
        common + ["--float_model", str(tmp_path / "nope.keras"), "--int8",
                  "--tokenizer", str(tiny_tokenizer_dir), "--out", str(tmp_path / "x")],
        env=subprocess_env(), capture_output=True, text=True,
    )
    assert missing.returncode != 0
    assert "--float_model: " in missing.stderr and "does not exist" in missing.stderr
