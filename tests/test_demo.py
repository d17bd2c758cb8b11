"""The main job end to end on a small slice (the full run is `make demo`)."""

import json
import subprocess
import sys

import pytest

from tests.conftest import subprocess_env
from tflm_embbert.common import paths


@pytest.mark.skipif(
    not (paths.SHIPPED_BACKBONE_DIR / "backbone.keras").exists(), reason="no shipped backbone"
)
def test_demo_smoke(tmp_path):
    out = tmp_path / "demo"
    done = subprocess.run(
        [sys.executable, "-m", "export.demo", "--out", str(out), "--epochs", "1",
         "--qat_epochs", "1", "--train_limit", "256", "--progress", "0"],
        env=subprocess_env(), capture_output=True, text=True,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    results = json.loads((out / "results.json").read_text())
    assert results["task"] == "snips" and results["float"]["test_examples"] == 700
    for stage in ("float", "qat", "int8_tflm"):
        assert f'"{stage}_test_accuracy"' in done.stdout
    assert "| RAM: smallest arena that runs under TFLM |" in done.stdout
    assert (out / "model_int8.tflite").is_file()
    library = json.loads((out / "arduino" / "export_report.json").read_text())
    assert library["name"] == "SnipsIntents" and len(library["labels"]) == 7
    assert library["budget"]["flash"]["fits"] and library["budget"]["ram"]["fits"]
    assert (out / "arduino" / "SnipsIntents.zip").is_file()
    assert "## Fit on nano33ble" in done.stdout


def test_shipped_backbone_is_committed():
    """The main job needs the pretrained backbone in the repo, with its record beside it."""
    folder = paths.SHIPPED_BACKBONE_DIR
    for name in ("backbone.keras", "backbone_config.json", "vocab.txt", "tokenizer_config.json",
                 "pretrain_summary.json", "pretrain_log.csv"):
        assert (folder / name).is_file(), f"missing {folder / name}"
    summary = json.loads((folder / "pretrain_summary.json").read_text())
    assert summary["steps"] > 0 and summary["tokens_seen"] == (
        summary["steps"] * summary["batch_size"] * summary["seq_len"]
    )
