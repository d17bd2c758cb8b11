"""Where the project keeps what it ships, and where the shared data is looked for.

What the commands need ships as package data and is found with importlib.resources, so an
installed wheel works outside the checkout: the backbone and tokenizer (keras_models/pretrained),
the Snips data of the main job (tflm_embbert/assets) and the Arduino sources and templates (the
checkout's arduino/ folder, installed as the package tflm_embbert_arduino).
"""

from __future__ import annotations

import os
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]  # the checkout (installed: site-packages/..)
ARDUINO_PACKAGE = "tflm_embbert_arduino"  # arduino/ in the wheel (pyproject: package-dir)


def package_dir(package: str, *parts: str) -> Path:
    """A folder of package data as a file-system path (Keras and the tokenizer read paths)."""
    folder = resources.files(package).joinpath(*parts)
    if not isinstance(folder, Path):
        raise RuntimeError(f"{package}: installed as an archive ({folder}); install it unpacked")
    return folder


def in_checkout() -> bool:
    """True when the code runs from a source checkout (pyproject.toml beside the packages)."""
    return (REPO_ROOT / "pyproject.toml").is_file() and (REPO_ROOT / "arduino").is_dir()


def arduino_dir() -> Traversable:
    """The Arduino library sources (src/) and templates (templates/): the checkout's arduino/
    folder, else the installed package data (the same files)."""
    if in_checkout():
        return REPO_ROOT / "arduino"
    return resources.files(ARDUINO_PACKAGE)


PRETRAINED_DIR = package_dir("keras_models", "pretrained")
SHIPPED_BACKBONE_DIR = PRETRAINED_DIR / "embbert"  # backbone.keras, its tokenizer and its log
SHIPPED_TOKENIZER_DIR = SHIPPED_BACKBONE_DIR
SHIPPED_DATA_DIR = package_dir("tflm_embbert", "assets", "data")  # what the main job needs


def shared_data_dir() -> Path:
    """../shared/data beside the checkout, or $EMBBERT_DATA_DIR."""
    return Path(os.environ.get("EMBBERT_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
