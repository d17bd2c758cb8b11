"""Shared fixtures of the export tests (registered in tests/conftest.py): a tiny int8 classifier,
its single-model library and a two-bucket (8/16) library, each built once per session."""

import shutil

import numpy as np
import pytest

from export.library import LibraryOptions, LibraryRequest, export_library
from keras_models.backend import keras
from keras_models.models import build_classifier
from tests.conftest import WORDS, tiny_config
from tflm_embbert.data.encoding import encode
from tflm_embbert.data.examples import Example
from tflm_embbert.quantize.convert import to_int8_tflite
from tflm_embbert.tflm.check import measure_arena_bytes

SEQ_LEN = 16
LABELS = ["weather", "music", "naïve \"quoted\" label"]
GXX = shutil.which("g++")


def examples(n, seed, words=(3, 11)):
    """`n` examples of `words` (lowest, highest) random words, labels cycling 0, 1, 2."""
    rng = np.random.default_rng(seed)
    low, high = words
    return [
        Example(" ".join(rng.choice(WORDS, size=int(rng.integers(low, high + 1)))), None, i % 3)
        for i in range(n)
    ]


@pytest.fixture(scope="session")
def tiny_int8(tiny_tokenizer):
    """A tiny embbert classifier (3 labels), post-training int8, and its measured arena."""
    keras.utils.set_random_seed(0)
    model = build_classifier(tiny_config(), len(LABELS))
    inputs, _ = encode(tiny_tokenizer, examples(64, 0), SEQ_LEN)
    tflite = to_int8_tflite(model, SEQ_LEN, inputs)
    return {"tflite": tflite, "arena": measure_arena_bytes(tflite)["minimum"], "inputs": inputs}


OPTION_NAMES = {"name", "board", "tflm", "tflm_tree", "arena_margin", "force", "url", "maintainer"}


def make_request(tiny_int8, tokenizer, **overrides):
    options = {"name": "TinyIntents"}
    options.update({k: overrides.pop(k) for k in list(overrides) if k in OPTION_NAMES})
    values = dict(
        options=LibraryOptions(**options),
        tflite=tiny_int8["tflite"],
        tokenizer=tokenizer,
        labels=LABELS,
        seq_len=SEQ_LEN,
        arena_measured_bytes=tiny_int8["arena"],
        task="toy",
    )
    values.update(overrides)
    return LibraryRequest(**values)


@pytest.fixture(scope="session")
def library(tiny_int8, tiny_tokenizer, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "lib"
    report = export_library(make_request(tiny_int8, tiny_tokenizer), out)
    return {"out": out, "report": report, "folder": out / "TinyIntents"}


BUCKETS = [8, SEQ_LEN]


def varied(n, seed):
    """Examples of 1 to 12 words: some fit bucket 8, some fill L=16, some are cut."""
    return examples(n, seed, words=(1, 12))


@pytest.fixture(scope="session")
def bucketed(tiny_tokenizer, tmp_path_factory):
    """A tiny classifier through int8_under_tflm and export.buckets (8/16), written as a
    library."""
    from export import buckets
    from tflm_embbert.data.examples import TaskData
    from tflm_embbert.tflm.int8_eval import int8_under_tflm

    keras.utils.set_random_seed(0)
    model = build_classifier(tiny_config(), len(LABELS))
    task = TaskData(name="toy", train=examples(64, 0), validation=[], test=varied(40, 3),
                    label_names=LABELS, metric="accuracy", test_split="test")
    converted = int8_under_tflm(model, task, tiny_tokenizer, SEQ_LEN, progress=lambda line: None)
    built = buckets.build_buckets(model, task, tiny_tokenizer, SEQ_LEN, BUCKETS, converted.tflite,
                                  converted.lean, progress=lambda line: None)
    out = tmp_path_factory.mktemp("bucketed") / "lib"
    request = make_request({"tflite": built.data, "arena": built.arena_measured_bytes},
                       tiny_tokenizer, buckets=built)
    report = export_library(request, out)
    return {"task": task, "single": converted.tflite, "buckets": built, "out": out,
            "report": report, "folder": out / "TinyIntents"}
