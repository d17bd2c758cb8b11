"""Shared fixtures: tiny configs and a tiny tokenizer, so unit tests stay fast on 2 cores."""

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

# The export tests' fixtures (a tiny int8 model and its libraries), shared by several modules.
pytest_plugins = ["tests.export_fixtures"]

WORDS = (
    "the quick brown fox jumps over a lazy dog while seven wizards quietly hex "
    "jolly boxing judges near the riverbank and play music loudly on sunday mornings"
).split()


def tiny_corpus(lines: int = 400, seed: int = 0) -> list[str]:
    import numpy as np

    rng = np.random.default_rng(seed)
    return [" ".join(rng.choice(WORDS, size=int(rng.integers(3, 15)))) for _ in range(lines)]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from tflm_embbert.data.tokenizer import Tokenizer

    return Tokenizer.train(tiny_corpus(), vocab_size=120)


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tiny_tokenizer, tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    tiny_tokenizer.save(folder)
    return folder


def tiny_config(vocabulary_size: int = 120, **overrides):
    from keras_models.presets import BackboneConfig

    values = dict(
        vocabulary_size=vocabulary_size, hidden_dim=16, embedding_dim=8,
        max_sequence_length=32, num_layers=2, kernel_size=4, dropout=0.0,
    )
    values.update(overrides)
    return BackboneConfig(**values)


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["TF_USE_LEGACY_KERAS"] = "1"
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    return env
