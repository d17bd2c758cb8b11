"""Labelled examples and the one split policy every task follows.

A task is a :class:`TaskData` with three splits: ``train`` and ``validation`` (a fixed, seeded
slice of the official train split, or a validation file the user gives: everything that is
chosen is chosen on it) and ``test`` (the
labelled held-out split, never used for choices; GLUE: the dev set). :class:`DataFormatError` is
the one-line error every reader raises: ``<file>:<line>: expected X, got Y``.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import numpy as np

from tflm_embbert.common.errors import UserInputError

#: Primary metrics a task can have (see ``tflm_embbert.data.metrics.compute_metrics``).
METRICS = ("accuracy", "mcc", "f1", "spearman")

PathLike = str | os.PathLike
T = TypeVar("T")


# --------------------------------------------------------------------------- public types
class DataFormatError(UserInputError):
    """A data file is not in the expected format.

    ``str(err)`` is one line: ``"<file>:<line>: expected <what>, got <what>"``. The parts are
    also available as ``path``, ``line`` (1-based), ``expected`` and ``got``.
    """

    def __init__(self, path: PathLike, line: int, expected: str, got: str):
        self.path = os.fspath(path)
        self.line = line
        self.expected = expected
        self.got = got
        message = f"{self.path}:{line}: expected {expected}, got {got}"
        super().__init__(" ".join(message.splitlines()))


@dataclass(frozen=True)
class Example:
    """One labelled example: a text or a text pair."""

    text_a: str
    text_b: str | None
    label: int | float  # class index, or a float score for regression (STS-B)


@dataclass
class TaskData:
    """The three splits of a task plus what is needed to train and score on it."""

    name: str
    train: list[Example]
    validation: list[Example]  # fixed seeded slice of the official train split, or given
    test: list[Example]  # labelled held-out split (GLUE dev, or official test); never tuned on
    label_names: list[str] | None  # None for regression
    metric: str  # primary metric: "accuracy" | "mcc" | "f1" | "spearman"
    test_split: str  # which official split `test` is: "dev" for GLUE, "test" otherwise

    def __post_init__(self) -> None:
        if self.metric not in METRICS:
            raise ValueError(f"metric must be one of {METRICS}, got {self.metric!r}")

    @property
    def num_labels(self) -> int:
        """Number of classes; 1 for regression (one output score)."""
        return 1 if self.label_names is None else len(self.label_names)

    @property
    def is_regression(self) -> bool:
        return self.label_names is None


@dataclass(frozen=True)
class Splits:
    """What a task loader returns: the full official train split, the test split, labels, and
    a validation split when the data comes with one (else it is carved from train)."""

    train: list[Example]
    test: list[Example]
    label_names: list[str] | None
    validation: list[Example] | None = None


@dataclass(frozen=True)
class TaskSpec:
    """Registry entry: where a task lives and how it is scored."""

    name: str
    folder: str  # sub-folder of data_dir
    metric: str
    test_split: str
    description: str
    load: Callable[[Path, str], Splits] = field(repr=False)  # (task folder, task name)


# --------------------------------------------------------------------------- splitting
def _validation_size(n: int, val_fraction: float) -> int:
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    if val_fraction == 0.0 or n < 2:
        return 0
    # Round half up, but keep at least one example on each side.
    return min(max(math.floor(n * val_fraction + 0.5), 1), n - 1)


def _split_indices(n: int, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Return (rest, validation) indices; `rest` in permuted order, `validation` sorted."""
    perm = np.random.default_rng(seed).permutation(n)
    k = _validation_size(n, val_fraction)
    return perm[k:], np.sort(perm[:k])


def split_train_validation(
    examples: Sequence[T], val_fraction: float, seed: int
) -> tuple[list[T], list[T]]:
    """Split ``examples`` into (train, validation) with a seeded permutation.

    ``round(len * val_fraction)`` examples (at least 1, and at least 1 left for training) at the
    first positions of ``numpy.random.default_rng(seed).permutation(len)`` form the validation
    set. Both parts keep the input order, so the result depends only on the input, the fraction
    and the seed.
    """
    examples = list(examples)
    rest, val = _split_indices(len(examples), val_fraction, seed)
    return [examples[i] for i in np.sort(rest)], [examples[i] for i in val]


def stratified_test_mask(labels: Sequence[int], fraction: float, seed: int) -> np.ndarray:
    """Boolean mask choosing round(fraction * n_c) examples of every class c as test."""
    labels_arr = np.asarray(labels)
    rng = np.random.default_rng(seed)
    is_test = np.zeros(len(labels_arr), dtype=bool)
    for c in np.unique(labels_arr):  # sorted, so the draws are reproducible
        idx = np.flatnonzero(labels_arr == c)
        k = math.floor(len(idx) * fraction + 0.5)
        is_test[rng.permutation(idx)[:k]] = True
    return is_test


def assemble(
    name: str,
    splits: Splits,
    *,
    metric: str,
    test_split: str,
    val_fraction: float,
    seed: int,
    train_limit: int | None = None,
) -> TaskData:
    if train_limit is not None and train_limit < 0:
        raise ValueError(f"train_limit must be >= 0 or None, got {train_limit!r}")
    """The TaskData of `splits`: validation is `splits.validation` when given, else a seeded
    `val_fraction` of train (`split_train_validation`); `train_limit` keeps a seeded subset of
    the rest of train."""
    given = splits.validation is not None
    rest, val = _split_indices(len(splits.train), 0.0 if given else val_fraction, seed)
    if train_limit is not None:
        # A seeded subset (nested: a smaller limit gives a subset of a larger one); the
        # validation slice does not depend on the limit.
        rest = rest[:train_limit]
    return TaskData(
        name=name,
        train=[splits.train[i] for i in np.sort(rest)],
        validation=list(splits.validation) if given else [splits.train[i] for i in val],
        test=list(splits.test),
        label_names=None if splits.label_names is None else list(splits.label_names),
        metric=metric,
        test_split=test_split,
    )
