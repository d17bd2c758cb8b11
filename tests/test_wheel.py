"""The wheel: built from the checkout, installed (not editable) into a fresh venv and run from a
folder outside the checkout, it exports a tiny model to an Arduino library. The venv reuses this
interpreter's installed dependencies (a .pth line naming its site-packages) and never sees the
checkout (no PYTHONPATH, another cwd), so everything the export reads must be package data."""

import json
import os
import subprocess
import sys
import sysconfig
import tomllib
import zipfile
from pathlib import Path

import pytest

from tests.conftest import REPO, tiny_config

SEQ_LEN = 16
LABELS = ["music", "weather"]


def test_the_package_list_names_every_package_of_the_checkout():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    found = {
        ".".join(init.parent.relative_to(REPO).parts)
        for top in ("keras_models", "tflm_embbert", "export")
        for init in (REPO / top).rglob("__init__.py")
    }
    assert set(setuptools["packages"]) == found | {"tflm_embbert_arduino"}
    assert setuptools["package-dir"] == {"tflm_embbert_arduino": "arduino"}


def _run(args, **kwargs) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, text=True, **kwargs)
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-3000:])
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)])
    (path,) = out.glob("tflm_embbert-*.whl")
    return path


def test_the_wheel_holds_the_export_sources_and_the_shipped_files(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for folder in ("src", "templates"):
        shipped = {
            f"tflm_embbert_arduino/{folder}/{p.name}" for p in (REPO / "arduino" / folder).iterdir()
        }
        assert shipped and shipped <= names
    for path in (REPO / "keras_models" / "pretrained").rglob("*"):
        assert not path.is_file() or str(path.relative_to(REPO)) in names, path
    assert "tflm_embbert/assets/data/snips/train/seq.in" in names
    assert not any(name.startswith(("tests/", "bench/", "arduino/")) for name in names)


def _venv(root: Path, wheel: Path) -> Path:
    """A fresh venv with the wheel installed (not editable); its dependencies are this
    interpreter's (a .pth line), installed nowhere new."""
    venv = root / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    python = venv / "bin" / "python"
    site = Path(
        _run(
            [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]
        ).stdout.strip()
    )
    deps = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_reused_dependencies.pth").write_text("\n".join(sorted(deps)) + "\n")
    _run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "-q",
            "--no-deps",
            "--no-index",
            "--ignore-installed",
            str(wheel),
        ]
    )
    return venv


def test_the_installed_wheel_exports_a_tiny_model(
    wheel, tiny_tokenizer, tiny_tokenizer_dir, tmp_path
):
    from keras_models.backend import keras
    from keras_models.models import build_classifier
    from tests.conftest import tiny_corpus

    venv = _venv(tmp_path, wheel)
    work = tmp_path / "work"  # the cwd: nothing of the checkout is importable from here
    work.mkdir()
    keras.utils.set_random_seed(0)
    build_classifier(tiny_config(), len(LABELS)).save(work / "model.keras")
    texts = tiny_corpus(120, seed=3)
    for name, rows in (("train.csv", texts[:90]), ("test.csv", texts[90:])):
        lines = ["text,label"] + [f"{t},{LABELS[i % 2]}" for i, t in enumerate(rows)]
        (work / name).write_text("\n".join(lines) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["TF_USE_LEGACY_KERAS"] = "1"

    where = _run(
        [
            str(venv / "bin" / "python"),
            "-c",
            "import export.cpp_sources as c, keras_models, tflm_embbert.common.paths as p; "
            "print(c.__file__); print(keras_models.__file__); print(c.TEMPLATES_DIR); "
            "print(p.SHIPPED_BACKBONE_DIR)",
        ],
        cwd=work,
        env=env,
    ).stdout.split()
    for path in where:  # the wheel's files, not the checkout's
        assert Path(path).resolve().is_relative_to(venv.resolve()), where
    assert (Path(where[3]) / "backbone.keras").is_file()

    out = work / "lib"
    done = _run(
        [
            str(venv / "bin" / "export_tflite"),
            "--model",
            "model.keras",
            "--tokenizer",
            str(tiny_tokenizer_dir),
            "--train_file",
            "train.csv",
            "--test_file",
            "test.csv",
            "--seq_len",
            str(SEQ_LEN),
            "--length_buckets",
            "none",
            "--name",
            "WheelModel",
            "--out",
            str(out),
        ],
        cwd=work,
        env=env,
    )
    report = json.loads((out / "export_report.json").read_text())
    assert report["labels"] == LABELS and report["seq_len"] == SEQ_LEN
    library = out / "WheelModel"
    for name in ("WheelModel.h", "WheelModel.cpp", "embbert_tokenizer.cpp", "embbert_tokenizer.h"):
        assert (library / "src" / name).is_file(), name
    assert (library / "src" / "embbert_tokenizer.cpp").read_bytes() == (
        REPO / "arduino" / "src" / "embbert_tokenizer.cpp"
    ).read_bytes()
    assert (library / "library.properties").read_text().startswith("name=WheelModel")
    assert "WARNING: All log messages" not in done.stderr and "fully_quantize" not in done.stderr
