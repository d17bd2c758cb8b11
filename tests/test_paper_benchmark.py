"""bench/paper_benchmark.py without training: the cell plan, resumability, the report and plots
from fake cells, the sequence-length rule and the flag errors."""

import json
import re
import subprocess
import sys
import time

import pytest

from bench import paper_benchmark as pb
from bench.common import code_version
from bench.paper import cell as paper_cell
from bench.paper import plan as paper_plan
from bench.paper import report as paper_report
from bench.paper import tables as paper_tables
from tests.conftest import REPO, subprocess_env
from tflm_embbert.data.examples import Example, TaskData


def test_plan_runs_seed_zero_of_every_model_first_cheap_tasks_first():
    plan = paper_plan.plan_cells(
        ["imdb", "snips"], ["embbert", "bert_2mb", "embbert_scratch"], [0, 1, 2], [0]
    )
    ids = [cell.id for cell in plan]
    assert ids == [
        "snips__embbert__s0",
        "snips__bert_2mb__s0",
        "imdb__embbert__s0",
        "imdb__bert_2mb__s0",
        "snips__embbert__s1",
        "snips__embbert__s2",
        "imdb__embbert__s1",
        "imdb__embbert__s2",
        "snips__embbert_scratch__s0",
        "imdb__embbert_scratch__s0",
    ]
    assert len(set(ids)) == len(ids)


def _fake_result(cell, metric="accuracy", float_score=0.9, int8_score=0.9):
    return {
        "metric": metric,
        "test_split": "test",
        "init": (
            "shipped pretrained backbone" if paper_plan.MODELS[cell.model].pretrained else "random"
        ),
        "quick": False,
        "seq_len": 32,
        "seq_len_rule": {"percentile": 99.0, "cap": 256},
        "settings": {"epochs": 10, "qat_epochs": 2},
        "float": {"test": {metric: float_score}, "best_epoch": 3, "epochs_run": 6},
        "qat": {"test": {metric: (float_score + int8_score) / 2}},
        "int8_tflm": {"test": {metric: int8_score}, "agreement": {"float": 0.97}},
        "flash_bytes": 400_000 + 1000 * len(cell.model),
        "arena_bytes": 70_000,
        "macs": {"total": 8_000_000, "by_op": {"FULLY_CONNECTED": 8_000_000}},
        "invoke_ms": 5.0,
        # seed 0 as run today; other seeds as cells from before the commit was recorded
        "machine": {"date": "2026-12-02", **({"code": "0123456789ab"} if cell.seed == 0 else {})},
    }


def test_finished_cells_are_not_recomputed_and_failures_are_retried(tmp_path):
    plan = paper_plan.plan_cells(["snips"], ["embbert", "embedder"], [0, 1], [0])
    calls = []

    def compute(cell):
        calls.append(cell.id)
        if cell.id == "snips__embedder__s0" and calls.count(cell.id) == 1:
            raise RuntimeError("conversion failed\nsecond line")
        return _fake_result(cell)

    lines = []
    first = paper_plan.run_cells(plan, tmp_path, compute, progress=lines.append)
    assert first["computed"] == ["snips__embbert__s0", "snips__embbert__s1"]
    assert first["failed"] == ["snips__embedder__s0"]
    error = json.loads((tmp_path / "cells" / "snips__embedder__s0.error.json").read_text())
    assert error["error"] == "RuntimeError: conversion failed second line"
    assert any("FAILED" in line for line in lines)

    second = paper_plan.run_cells(plan, tmp_path, compute, progress=lines.append)
    assert second["cached"] == ["snips__embbert__s0", "snips__embbert__s1"]
    assert second["computed"] == ["snips__embedder__s0"]
    assert not (tmp_path / "cells" / "snips__embedder__s0.error.json").exists()
    assert calls.count("snips__embbert__s0") == 1  # never recomputed

    third = paper_plan.run_cells(plan, tmp_path, compute, progress=lines.append)
    assert len(third["cached"]) == 3 and not third["computed"]
    cell = json.loads((tmp_path / "cells" / "snips__embbert__s1.json").read_text())
    assert (cell["task"], cell["model"], cell["seed"]) == ("snips", "embbert", 1)
    assert cell["wall_seconds"] >= 0


def test_cells_of_an_older_recipe_are_recomputed_only_when_asked(tmp_path):
    from tflm_embbert.training.settings import FitSettings

    fit = FitSettings()
    plan = paper_plan.plan_cells(["snips"], ["embbert"], [0, 1], [0])
    old = {"learning_rate": 1e-4, "batch_size": 32, "weight_decay": 0.05}  # no schedule: constant
    new = {k: getattr(fit, k) for k in paper_plan.RECIPE_KEYS}
    assert paper_plan.recipe_is_stale({"float": old}, fit)
    assert not paper_plan.recipe_is_stale({"float": new}, fit)
    assert not paper_plan.recipe_is_stale({"float": {**old, **new}}, fit)
    assert not paper_plan.recipe_is_stale({"model": "tfidf_lr", "float": {"test": {}}}, fit)

    def compute(cell):
        return {**_fake_result(cell), "float": old if cell.seed == 0 else new}

    paper_plan.run_cells(plan, tmp_path, compute, progress=lambda line: None)
    lines = []
    again = paper_plan.run_cells(
        plan,
        tmp_path,
        lambda cell: {**_fake_result(cell), "float": new},
        progress=lines.append,
        stale=lambda cell: paper_plan.recipe_is_stale(cell, fit),
    )
    assert again["computed"] == ["snips__embbert__s0"] and again["cached"] == ["snips__embbert__s1"]
    assert any("running again (stale recipe)" in line for line in lines)
    cell = json.loads((tmp_path / "cells" / "snips__embbert__s0.json").read_text())
    assert cell["float"]["learning_rate"] == fit.learning_rate


def test_max_cells_stops_a_run_early(tmp_path):
    plan = paper_plan.plan_cells(["snips", "cola"], ["embbert"], [0], [0])
    reports = []
    done = paper_plan.run_cells(
        plan,
        tmp_path,
        _fake_result,
        max_cells=1,
        progress=lambda line: None,
        after_cell=lambda done: reports.append(len(done["computed"])),
    )
    assert done["computed"] == ["snips__embbert__s0"] and done["skipped"] == ["cola__embbert__s0"]
    assert reports == [1]  # after every computed cell, with what is done so far


def test_report_table_and_plots_from_fake_cells(tmp_path):
    plan = paper_plan.plan_cells(["snips", "cola"], ["embbert", "bert_2mb"], [0, 1, 2], [0])
    scores = {0: 0.90, 1: 0.92, 2: 0.94}

    def compute(cell):
        if cell.task == "cola":
            return _fake_result(cell, "mcc", 0.20, 0.10)  # int8 loses 10 pp
        return _fake_result(cell, float_score=scores[cell.seed], int8_score=scores[cell.seed])

    paper_plan.run_cells(plan, tmp_path, compute, progress=lambda line: None)
    text = paper_report.write_report(tmp_path, planned=len(plan))
    assert (tmp_path / "results.md").read_text() == text
    rows = {
        line.split(" | ")[0] + line.split(" | ")[1]: line
        for line in text.splitlines()
        if line.startswith("| snips") or line.startswith("| cola")
    }
    embbert = rows["| snips (acc, test)`embbert`"]
    assert "92.00 ± 2.00" in embbert  # mean ± sample std over 3 seeds
    assert "3 (mean ± std)" in embbert
    assert "97.7 / 97.9" in embbert  # the paper's figures, on the embbert row only
    assert "97.7" not in rows["| snips (acc, test)`bert_2mb`"]
    assert "12.4 / 10.7" in rows["| cola (MCC, test)`embbert`"]
    assert "cola / `embbert`: -10.00 pp" in text  # int8 loses > 0.5 pp: listed
    assert "random initialisation" in text and "99th percentile" in text
    assert "8 cells finished of 8 planned" in text
    # embbert 92.00 (mean of 3 seeds) vs bert_2mb 90.00; embbert's fake .tflite is 1,000 B smaller
    line = "- snips vs `bert_2mb`: +2.00 pp, -1.0 KiB (92.00 vs 90.00): **embbert better with no"
    assert line in text
    tie = "- cola vs `bert_2mb`: +0.00 pp, -1.0 KiB (10.00 vs 10.00): equal metric, embbert smaller"
    assert tie in text
    # The README's per-task table: embbert's stages, the best other model, no scratch cell yet
    per_task = [line for line in text.splitlines() if line.startswith("| snips (acc, test) | 3 |")]
    assert len(per_task) == 1 and "| 92.00 ± 2.00 |" in per_task[0]
    assert "| 90.00 (`bert_2mb`, " in per_task[0] and per_task[0].endswith("| not run yet |")
    every = [line for line in text.splitlines() if line.startswith("| snips | `embbert`")]
    assert every[0].endswith("| 0123456789ab (2026-12-02) |")  # the code that ran seed 0
    assert every[1].endswith("| - (2026-12-02) |")
    summary = json.loads((tmp_path / "results.json").read_text())
    assert summary["cells_finished"] == 8
    assert {r["model"] for r in summary["rows"]} == {"embbert", "bert_2mb"}
    for name in ("accuracy_vs_memory.png", "int8_vs_float.png"):
        assert (tmp_path / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _examples(lengths):
    return [Example(" ".join(["fox"] * n), None, 0) for n in lengths]


def test_seq_len_is_a_percentile_of_the_whole_train_split_capped(tiny_tokenizer):
    # 100 train+validation examples of 1..100 words ("fox" is one token): with [CLS]/[SEP] the
    # lengths are 3..102; the test split (all very long) must not matter.
    lengths = list(range(1, 101))
    task = TaskData(
        name="toy",
        train=_examples(lengths[:90]),
        validation=_examples(lengths[90:]),
        test=_examples([500] * 5),
        label_names=["a", "b"],
        metric="accuracy",
        test_split="test",
    )
    assert paper_cell.choose_seq_len(tiny_tokenizer, task, 50.0, 256) == 64  # p50 = 52.5 -> 64
    assert paper_cell.choose_seq_len(tiny_tokenizer, task, 99.0, 256) == 112  # p99 = 101.01 -> 112
    assert paper_cell.choose_seq_len(tiny_tokenizer, task, 99.0, 96) == 96  # capped


def test_epoch_caps():
    assert pb.parse_epoch_caps(["imdb:5", "sst2:3"]) == {"imdb": 5, "sst2": 3}
    for bad in (["imdb"], ["imdb:0"], ["movies:5"]):
        with pytest.raises(ValueError, match="expected task:epochs"):
            pb.parse_epoch_caps(bad)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tasks", "snips,movies"], "unknown task 'movies'"),
        (["--models", "embbert,bert"], "unknown model 'bert'"),
        (["--embbert_seeds", "0,x"], "expected non-negative integers"),
    ],
)
def test_bad_flags_fail_in_one_line(args, message):
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "paper_benchmark.py"), *args],
        env=subprocess_env(), capture_output=True, text=True, cwd=REPO, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert message in done.stderr
    assert "FATAL Flags parsing error" in done.stderr.splitlines()[0]


def test_invocation_log_is_kept_current_and_appended(tmp_path):
    first = paper_plan.InvocationLog(tmp_path, planned=4, argv=["--quick"])
    first.update({"computed": ["a"]}, finished=False)
    entries = json.loads((tmp_path / "invocations.json").read_text())
    assert len(entries) == 1 and entries[0]["computed"] == 1 and not entries[0]["finished"]
    first.update({"computed": ["a", "b"], "cached": ["c"]}, finished=True)
    second = paper_plan.InvocationLog(tmp_path, planned=4, argv=[])
    second.update({"cached": ["a", "b", "c"]}, finished=False)
    entries = json.loads((tmp_path / "invocations.json").read_text())
    assert [(e["computed"], e["cached"], e["finished"]) for e in entries] == [
        (2, 1, True),
        (0, 3, False),
    ]
    text = paper_report.write_report(tmp_path)
    assert "still running or stopped" in text and "0 cells finished of 4 planned" in text


def test_invocation_log_ticks_inside_a_long_cell(tmp_path):
    """Elapsed time is written while a cell runs, so a run killed mid-cell still counts."""
    log = paper_plan.InvocationLog(tmp_path, planned=1, argv=[], every_seconds=0.05)
    first = json.loads((tmp_path / "invocations.json").read_text())[0]["elapsed_seconds"]
    time.sleep(0.5)
    ticked = json.loads((tmp_path / "invocations.json").read_text())[0]
    assert ticked["elapsed_seconds"] >= first + 0.2 and not ticked["finished"]
    log.update({"computed": ["a"]}, finished=True)
    time.sleep(0.2)
    final = json.loads((tmp_path / "invocations.json").read_text())[0]
    assert final["finished"] and final["computed"] == 1  # no tick after the end


def test_cells_record_the_commit_that_ran_them():
    assert re.fullmatch(r"[0-9a-f]{12}(\+dirty)?", code_version())


def test_per_task_table_gives_what_pretraining_adds():
    def row(model, int8_values, flash):
        stage = {"values": int8_values, "mean": sum(int8_values) / len(int8_values)}
        return {
            "task": "rte",
            "model": model,
            "metric": "accuracy",
            "test_split": "dev",
            "seeds": list(range(len(int8_values))),
            "float": stage,
            "qat": stage,
            "int8_tflm": stage,
            "flash_bytes": flash,
            "arena_bytes": 1024,
        }

    rows = [row("embbert", [56.0, 57.0], 2048), row("embbert_scratch", [50.25], 1024)]
    header, table = paper_tables.embbert_per_task(rows)
    assert len(table) == 1 and len(table[0]) == len(header)
    assert table[0][0] == "rte (acc, dev)" and table[0][4] == "56.50 ± 0.71"
    assert table[0][5] == "50.0 / 49.3"  # the paper's figures
    assert table[0][6] == "3.0"  # (2,048 + 1,024) B in KiB
    assert table[0][7] == "50.25 (`embbert_scratch`, 2.0)"  # the best (only) other model
    assert table[0][8] == "50.25 (+6.25)"  # embbert's mean minus the scratch model


def _report_text(plan, out, compute):
    """The report after computing the plan with `compute`."""
    paper_plan.run_cells(plan, out, compute, progress=lambda line: None)
    return paper_report.write_report(out, planned=len(plan))


def _fake_classical(cell, test_score=0.95, validation_score=0.96):
    return {
        "kind": "classical",
        "init": paper_cell.CLASSICAL_INIT,
        "metric": "accuracy",
        "test_split": "test",
        "float": {"validation": {"accuracy": validation_score}, "test": {"accuracy": test_score}},
        "classical": {"parameter": "C", "chosen": 3.0, "features": 1234},
        "machine": {"date": "2026-12-05", "code": "0123456789ab"},
    }


def test_classical_reference_is_in_every_table_beside_the_neural_models(tmp_path):
    plan = paper_plan.plan_cells(["snips"], ["embbert", "tfidf_lr"], [0, 1], [0])
    assert [c.id for c in plan] == [
        "snips__embbert__s0",
        "snips__tfidf_lr__s0",
        "snips__embbert__s1",
    ]

    def compute(cell):
        if paper_plan.MODELS[cell.model].kind == "classical":
            return _fake_classical(cell)
        return _fake_result(cell, float_score=0.92, int8_score=0.91 + 0.02 * cell.seed)

    text = _report_text(plan, tmp_path, compute)
    lines = text.splitlines()
    main = [x for x in lines if x.startswith("| snips (acc, test) | `tfidf_lr` | classical |")]
    assert len(main) == 1 and "| 95.00 (host float64) | - |" in main[0]
    # embbert int8 mean 92.00 vs the reference's 95.00: the per-task table's last column
    per_task = [x for x in lines if x.startswith("| snips (acc, test) | 2 |")]
    assert len(per_task) == 1 and per_task[0].endswith("| 95.00 (-3.00) |")
    section = [x for x in lines if x.startswith("| snips (acc, test) | 95.00 | 96.00 | C 3 |")]
    assert len(section) == 1 and "| 92.00 (-3.00) |" in section[0]
    assert "- snips vs `tfidf_lr` (classical" in text and "**classical reference better**" in text
    every = [x for x in lines if x.startswith("| snips | `tfidf_lr` | 0 | whole text | 95.00 |")]
    assert len(every) == 1
    assert "3 cells finished of 3 planned" in text
    summary = json.loads((tmp_path / "results.json").read_text())
    assert [r["model"] for r in summary["rows"]] == ["embbert"]
    assert summary["classical_rows"][0]["test"]["mean"] == 95.0
    assert (tmp_path / "accuracy_vs_memory.png").read_bytes()[:4] == b"\x89PNG"


def test_classical_cell_fits_on_train_and_chooses_on_validation(monkeypatch, tmp_path):
    import tflm_embbert.data.datasets as datasets

    pos = ["good fun", "great film", "lovely good", "great fun"]
    neg = ["bad plot", "awful film", "boring bad", "awful plot"]

    def split(n):
        return [Example(pos[i % 4], None, 1) for i in range(n)] + [
            Example(neg[i % 4], None, 0) for i in range(n)
        ]

    task = TaskData("snips", split(8), split(3), split(4), ["n", "p"], "accuracy", "test")
    monkeypatch.setattr(datasets, "load_task", lambda name, data_dir, seed: task)
    settings = paper_cell.Settings(
        tmp_path, tmp_path, tmp_path, tmp_path, 1, {}, 0, 0.0, 99.0, 64, 1, False
    )
    result = paper_cell.compute_cell(paper_plan.Cell("snips", "tfidf_lr", 0), settings)
    assert result["kind"] == "classical" and result["float"]["test"]["accuracy"] == 1.0
    assert result["examples"] == [16, 6, 8]
    assert result["classical"]["parameter"] == "C"


def _fake_float_only(cell, float_score=0.85):
    return {
        "metric": "accuracy",
        "test_split": "test",
        "init": "random init, no pretraining",
        "quick": False,
        "seq_len": 48,
        "seq_len_rule": {"percentile": 99.0, "cap": 256},
        "settings": {"epochs": 10},
        "float": {"test": {"accuracy": float_score}, "best_epoch": 4, "epochs_run": 7,
                  "train_seconds": 700.0},
        "float_only": True,
        "params": 220_487,
        "float_weight_bytes": 881_948,
        "machine": {"date": "2026-12-06", "code": "0123456789ab"},
    }  # fmt: skip


def test_float_only_model_is_in_the_tables_with_no_int8_figures(tmp_path):
    mamba = paper_plan.MODELS["mamba"]
    assert mamba.float_only and mamba.preset == "mamba_2mb"
    plan = paper_plan.plan_cells(["snips"], ["embbert", "mamba"], [0], [0])

    def compute(cell):
        if paper_plan.MODELS[cell.model].float_only:
            return _fake_float_only(cell)
        return _fake_result(cell, float_score=0.93, int8_score=0.92)

    text = _report_text(plan, tmp_path, compute)
    lines = text.splitlines()
    main = [x for x in lines if x.startswith("| snips (acc, test) | `mamba` | scratch | 1 | 48 |")]
    assert len(main) == 1 and "| 85.00 | - | float only, no TFLM path | - |" in main[0]
    # The float-only section: its size and epoch time, embbert's int8 and float against it.
    section = [x for x in lines if x.startswith("| snips (acc, test) | `mamba` | 1 | 48 | 85.00 |")]
    assert len(section) == 1
    assert "| 220,487 | 881,948 | 100 | 92.00 (+7.00) | 93.00 (+8.00) |" in section[0]
    every = [x for x in lines if x.startswith("| snips | `mamba` | 0 | 48 | 85.00 | - |")]
    assert len(every) == 1 and "| 4/7 |" in every[0]
    assert "2 cells finished of 2 planned" in text and "- 2 cells, " in text
    summary = json.loads((tmp_path / "results.json").read_text())
    assert [r["model"] for r in summary["rows"]] == ["embbert"]  # int8 rows and plots only
    assert summary["float_only_rows"][0]["float"]["mean"] == 85.0


def test_mamba_cell_runs_float_only_on_a_tiny_slice(monkeypatch, tmp_path, tiny_tokenizer_dir):
    import keras_models.presets as presets
    import tflm_embbert.data.datasets as datasets
    from keras_models.models import build_classifier
    from tests.conftest import tiny_config

    def split(n):
        words = ["fox jumps over the dog", "wizards play music loudly", "the lazy judges box"]
        return [Example(words[i % 3], None, int(i % 3 == 0)) for i in range(n)]

    task = TaskData("snips", split(24), split(6), split(6), ["n", "p"], "accuracy", "test")
    tiny = tiny_config(
        arch="mamba", hidden_dim=8, embedding_dim=None, num_layers=1, state_dim=2, pooling="rms"
    )
    monkeypatch.setattr(datasets, "load_task", lambda name, data_dir, seed: task)
    monkeypatch.setattr(presets, "get_config", lambda preset: tiny)
    monkeypatch.setattr(paper_cell, "tokenizer_dir_for", lambda settings, size: tiny_tokenizer_dir)
    settings = paper_cell.Settings(
        tmp_path, tmp_path, tmp_path, tmp_path / "models", 1, {}, 2, 1e-5, 99.0, 32, 2, False
    )
    cell = paper_plan.Cell("snips", "mamba", 0)
    result = paper_cell.compute_cell(cell, settings)
    assert result["float_only"] and "qat" not in result and "int8_tflm" not in result
    assert 0.0 <= result["float"]["test"]["accuracy"] <= 1.0
    assert result["params"] == build_classifier(tiny, 2).count_params()
    assert result["float_weight_bytes"] == 4 * result["params"]
    assert result["settings"] == {"epochs": 1}
    folder = tmp_path / "models" / cell.id
    assert (folder / "model.keras").is_file() and not (folder / "model_int8.tflite").exists()
