"""A classical teacher for distillation probes: out-of-fold TF-IDF + logistic regression
probabilities on a task's train part (bench/finetune_sweep.py phase K).

    probs, info = oof_teacher(task.train, task.num_labels, seed=0)

Every train example's teacher distribution comes from a model that did not see it (k-fold
cross-fitting), so the soft targets carry the teacher's generalisation, not its memory of the
train labels. C is chosen by out-of-fold accuracy on the train part itself: the validation
slice is never read. `fit_full` refits at the chosen C on the whole train part (to score an
ensemble on the validation halves, for information only).
"""

from __future__ import annotations

import time

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedKFold

from bench.tfidf_baseline import PairFeatures, _labels, _scores
from tflm_embbert.data.examples import Example

TEACHER_C_GRID = (3.0, 10.0, 30.0, 100.0)
CHAR = {"analyzer": "char_wb", "ngram_range": (2, 5), "sublinear_tf": True, "min_df": 2}


class Features:
    """PairFeatures (word 1-2 grams), with `chars`: + character 2-5 grams of text_a and text_b."""

    def __init__(self, chars: bool):
        self.words = PairFeatures()
        self.chars = TfidfVectorizer(**CHAR) if chars else None

    def fit(self, examples: list[Example]) -> Features:
        self.words.fit(examples)
        if self.chars is not None:
            self.chars.fit([e.text_a + " " + (e.text_b or "") for e in examples])
        return self

    def transform(self, examples: list[Example]):
        x = self.words.transform(examples)
        if self.chars is None:
            return x
        c = self.chars.transform([e.text_a + " " + (e.text_b or "") for e in examples])
        return sp.hstack([x, c], format="csr")


def _oof(train: list[Example], num_labels: int, c: float, folds: int, seed: int, chars: bool):
    y = _labels(train, False)
    probs = np.zeros((len(train), num_labels))
    split = StratifiedKFold(folds, shuffle=True, random_state=seed)
    for fit_idx, out_idx in split.split(np.zeros(len(y)), y):
        part = [train[i] for i in fit_idx]
        features = Features(chars).fit(part)
        model = LogisticRegression(C=c, max_iter=3000).fit(features.transform(part), y[fit_idx])
        probs[out_idx] = _scores(model, features.transform([train[i] for i in out_idx]), num_labels)
    return probs


def oof_teacher(
    train: list[Example], num_labels: int, seed: int = 0, folds: int = 5, chars: bool = False
) -> tuple[np.ndarray, dict]:
    """(n, num_labels) out-of-fold probabilities at the C with the best out-of-fold accuracy."""
    started = time.time()
    y = _labels(train, False)
    best = None
    grid = {}
    for c in TEACHER_C_GRID:
        probs = _oof(train, num_labels, c, folds, seed, chars)
        grid[f"{c:g}"] = float(np.mean(probs.argmax(-1) == y))
        if best is None or grid[f"{c:g}"] > best[0]:
            best = (grid[f"{c:g}"], c, probs)
    accuracy, c, probs = best
    info = {"C": c, "oof_accuracy": round(100 * accuracy, 3), "grid": grid, "folds": folds}
    info["seconds"] = round(time.time() - started, 1)
    return probs, info


def fit_full(train: list[Example], c: float, chars: bool = False):
    """(features, model) refit at C on the whole train part."""
    features = Features(chars).fit(train)
    model = LogisticRegression(C=c, max_iter=3000).fit(
        features.transform(train), _labels(train, False)
    )
    return features, model
