"""Presets: plain data. `BackboneConfig` holds everything that decides a backbone's graph."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path

#: The file beside backbone.keras that holds its BackboneConfig.
BACKBONE_CONFIG_FILE = "backbone_config.json"

ARCHS = ("embbert", "bert", "embedder", "mamba")


@dataclass(frozen=True)
class BackboneConfig:
    """Architecture of a backbone.

    arch: "embbert" (RMSNorm + EmbBERT blocks), "bert" (post-LN Transformer layers),
    "embedder" (embeddings only, optionally a causal depthwise conv) or "mamba" (pre-norm residual
    Mamba blocks, keras_models/mamba.py; float only).
    """

    arch: str = "embbert"
    vocabulary_size: int = 8192
    hidden_dim: int = 128
    embedding_dim: int | None = 16  # r_d of the Nano Embedder; None = plain (unfactorised) tables
    max_sequence_length: int = 256
    num_layers: int = 4
    kernel_size: int = 32  # embbert: conv branch kernel; embedder: 0 = no conv; mamba: d_conv
    expansion: int = 1  # embbert: conv-branch channels = hidden_dim * expansion; mamba: expand
    num_heads: int = 1  # bert only
    intermediate_dim: int = 0  # bert only: feed-forward width
    dropout: float = 0.1
    pooling: str = "first"  # classifier input: "first" ([CLS]) or "rms" (RMS pooling)
    state_dim: int = 0  # mamba only: d_state, the SSM state size per channel

    def __post_init__(self):
        if self.arch not in ARCHS:
            raise ValueError(f"arch: expected one of {', '.join(ARCHS)}, got {self.arch!r}")
        if self.pooling not in ("first", "rms"):
            raise ValueError(f"pooling: expected first or rms, got {self.pooling!r}")
        if self.arch == "bert" and self.hidden_dim % self.num_heads:
            raise ValueError(
                f"hidden_dim {self.hidden_dim} is not divisible by num_heads {self.num_heads}"
            )
        if self.arch == "mamba" and (self.state_dim < 1 or self.kernel_size < 1):
            raise ValueError(
                f"mamba: expected state_dim >= 1 and kernel_size (d_conv) >= 1, got "
                f"{self.state_dim} and {self.kernel_size}"
            )

    def to_dict(self) -> dict:
        values = dataclasses.asdict(self)
        if self.arch != "mamba":
            # Other archs ignore state_dim: their records stay as they were before it existed.
            del values["state_dim"]
        return values

    @classmethod
    def from_dict(cls, values: dict) -> BackboneConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(
                f"backbone config: unknown keys {unknown}; expected some of {sorted(known)}"
            )
        return cls(**values)

    def replace(self, **changes) -> BackboneConfig:
        return dataclasses.replace(self, **changes)


_BERT = BackboneConfig(arch="bert", num_layers=2, num_heads=2, intermediate_dim=160, kernel_size=0)
_EMBEDDER = BackboneConfig(
    arch="embedder", hidden_dim=320, embedding_dim=32, num_layers=0, kernel_size=0, pooling="rms"
)

# Parameter counts are the backbone's (no task head), from the reference configs
# (../shared/notes/embbert-reference.md); tests check each build against them.
PRESETS: dict[str, dict] = {
    "embbert": {
        "description": "EmbBERT (paper): Nano Embedder r_d 16, d 128, 4 blocks, conv k 32, L 256.",
        "params": 357_248,
        "config": BackboneConfig(),
    },
    "bert_2mb": {
        "description": "BERT baseline under 2 MB: d 80, 2 post-LN layers, 2 heads, FF 160, ReLU.",
        "params": 288_720,
        # No LayerNorm after the embeddings: the reference's 288,720 counts none.
        "config": _BERT.replace(vocabulary_size=2048, hidden_dim=80, embedding_dim=None),
    },
    "nanobert": {
        "description": "NanoBERT: Nano Embedder r_d 16, d 90, 2 post-LN layers, 2 heads, FF 180.",
        "params": 269_898,
        "config": _BERT.replace(hidden_dim=90, embedding_dim=16, intermediate_dim=180),
    },
    "embedder": {
        "description": "Nano Embedder only (d 320, r_d 32) with an RMS-pooling head.",
        "params": 291_776,
        "config": _EMBEDDER,
    },
    "embedder_conv": {
        "description": "Nano Embedder (d 320, r_d 32) + causal depthwise conv k 16, RMS pooling.",
        "params": 297_216,
        "config": _EMBEDDER.replace(kernel_size=16),
    },
    # The reference's MAMBA (models_config.py of its code): plain token/position/segment tables
    # (d wide, as BERT's), 5 blocks x + Mamba(RMSNorm(x)), then a final RMSNorm (as in the Mamba
    # paper) and RMS pooling. 147,648 embeddings + 5 x 14,464 blocks + 64 final norm.
    "mamba_2mb": {
        "description": "MAMBA baseline under 2 MB: d 64, 5 Mamba blocks (expand 1, d_state 6, "
        "d_conv 4, dt_rank 4), RMS pooling; float only (no int8 / TFLM path).",
        "params": 220_032,
        "float_only": True,
        "config": BackboneConfig(
            arch="mamba",
            vocabulary_size=2048,
            hidden_dim=64,
            embedding_dim=None,
            num_layers=5,
            kernel_size=4,
            expansion=1,
            state_dim=6,
            dropout=0.0,  # the Mamba block has no dropout
            pooling="rms",
        ),
    },
}


def is_float_only(preset: str) -> bool:
    """True for presets with no QAT / int8 / TFLM path (their layers have no int8 form)."""
    return PRESETS[preset].get("float_only", False)


def get_config(preset: str, **overrides) -> BackboneConfig:
    """The preset's BackboneConfig, with optional field overrides (e.g. tiny test configs)."""
    if preset not in PRESETS:
        raise ValueError(f"preset: expected one of {sorted(PRESETS)}, got {preset!r}")
    return PRESETS[preset]["config"].replace(**overrides)


def read_backbone_config(directory: str | os.PathLike) -> BackboneConfig:
    """The BackboneConfig saved in a backbone folder (read without TensorFlow)."""
    path = Path(directory) / BACKBONE_CONFIG_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path}: backbone file not found")
    return BackboneConfig.from_dict(json.loads(path.read_text()))


def saved_max_sequence_length(model_path: str | os.PathLike) -> int | None:
    """The smallest `max_sequence_length` among the layers of a saved .keras model (its
    position-embedding rows), read from the archive's config.json without TensorFlow; None when
    no layer has one. ValueError (one line) when the file is not a .keras archive."""
    import zipfile

    try:
        with zipfile.ZipFile(model_path) as archive:
            config = json.loads(archive.read("config.json"))
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as error:
        raise ValueError(f"{model_path}: expected a Keras .keras archive ({error})") from None
    found = []

    def walk(node):
        if isinstance(node, dict):
            value = node.get("max_sequence_length")
            if isinstance(value, int):
                found.append(value)
            for child in node.values():
                walk(child)
        elif isinstance(node, list):
            for child in node:
                walk(child)

    walk(config)
    return min(found) if found else None
