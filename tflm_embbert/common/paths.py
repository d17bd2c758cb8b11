"""Where the repository keeps what it ships, and where the shared data is looked for."""

from __future__ import annotations

import os
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PRETRAINED_DIR = REPO_ROOT / "keras_models" / "pretrained"
SHIPPED_BACKBONE_DIR = PRETRAINED_DIR / "embbert"  # backbone.keras, its tokenizer and its log
SHIPPED_TOKENIZER_DIR = SHIPPED_BACKBONE_DIR
SHIPPED_DATA_DIR = REPO_ROOT / "tflm_embbert" / "assets" / "data"  # what the main job needs


def shared_data_dir() -> Path:
    """../shared/data beside the checkout, or $EMBBERT_DATA_DIR."""
    return Path(os.environ.get("EMBBERT_DATA_DIR", REPO_ROOT.parent / "shared" / "data"))
