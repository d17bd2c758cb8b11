"""The classical reference: TF-IDF (word 1-2 grams) + a linear model (scikit-learn).

    from bench.tfidf_baseline import fit_tfidf
    result = fit_tfidf(load_task("sst2", data_dir, seed=0))

Same splits as every neural cell (`tflm_embbert.data.datasets.load_task`): the linear model is fit
on the train part (the same 90% the neural models train on; the validation slice is not refit on),
its regularisation is chosen by the task's metric on the seeded 10% validation slice, and the
test split (GLUE: dev) is scored once, with the chosen model.

Features: one `TfidfVectorizer` (word 1-2 grams, lowercase, sublinear tf, min_df 2) fit on the
train part's texts. A single text is its TF-IDF row. A pair (MRPC, STS-B, RTE, WNLI) is
[a, b, |a - b|, a * b, cos(a, b)] from the same vectorizer: both texts, their difference and their
word overlap (elementwise product; its sum is the cosine). Unlike the neural models (cut to L
tokens) the texts are never truncated.

Models: classification = `LogisticRegression` (lbfgs, multinomial for > 2 classes), C from
`C_GRID`; regression (STS-B) = `Ridge`, alpha from `ALPHA_GRID`. Metrics are the neural cells'
(`tflm_embbert.data.metrics.compute_metrics`): accuracy, MCC, positive-class F1, Spearman.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

import numpy as np
import scipy.sparse as sp
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression, Ridge

from tflm_embbert.data.examples import Example, TaskData
from tflm_embbert.data.metrics import compute_metrics

C_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0)
ALPHA_GRID = (0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
VECTORIZER = {"ngram_range": (1, 2), "lowercase": True, "sublinear_tf": True, "min_df": 2}


@dataclass
class TfidfResult:
    metric: str
    model: str  # "logistic_regression" or "ridge"
    parameter: str  # "C" or "alpha"
    chosen: float
    validation: dict[str, float]  # the chosen model's metrics on the validation slice
    test: dict[str, float]
    grid: dict[str, float] = field(default_factory=dict)  # value -> validation primary metric
    features: int = 0
    pairs: bool = False
    seconds: float = 0.0

    def to_json(self) -> dict:
        return {**asdict(self), "seconds": round(self.seconds, 1)}


class PairFeatures:
    """TF-IDF rows of single texts, or [a, b, |a - b|, a * b, cos] of pairs."""

    def __init__(self, **vectorizer):
        self.vectorizer = TfidfVectorizer(**{**VECTORIZER, **vectorizer})
        self.pairs = False

    def fit(self, examples: list[Example]) -> PairFeatures:
        self.pairs = any(e.text_b is not None for e in examples)
        texts = [e.text_a for e in examples]
        if self.pairs:
            texts += [e.text_b or "" for e in examples]
        self.vectorizer.fit(texts)
        return self

    def transform(self, examples: list[Example]) -> sp.csr_matrix:
        a = self.vectorizer.transform([e.text_a for e in examples])
        if not self.pairs:
            return a.tocsr()
        b = self.vectorizer.transform([e.text_b or "" for e in examples])
        overlap = a.multiply(b)
        cosine = sp.csr_matrix(np.asarray(overlap.sum(axis=1)))  # rows are L2-normalised
        return sp.hstack([a, b, abs(a - b), overlap, cosine], format="csr")


def _labels(examples: list[Example], regression: bool) -> np.ndarray:
    return np.asarray([e.label for e in examples], dtype=np.float64 if regression else np.int64)


def _scores(model, x, num_labels: int) -> np.ndarray:
    """Predicted scores for regression; (n, num_labels) class probabilities otherwise (a class
    absent from train gets probability 0)."""
    if num_labels == 1:
        return model.predict(x)
    scores = np.zeros((x.shape[0], num_labels))
    scores[:, model.classes_] = model.predict_proba(x)
    return scores


def fit_tfidf(task: TaskData, grid: tuple[float, ...] | None = None, **vectorizer) -> TfidfResult:
    """Fits on task.train, picks C (alpha) on task.validation, scores task.test once."""
    if not task.validation:
        raise ValueError(f"{task.name}: an empty validation slice cannot choose C")
    started = time.time()
    regression = task.is_regression
    features = PairFeatures(**vectorizer).fit(task.train)
    x_train, x_val = features.transform(task.train), features.transform(task.validation)
    y_train, y_val = _labels(task.train, regression), _labels(task.validation, regression)
    grid = grid or (ALPHA_GRID if regression else C_GRID)
    best, best_value, scores = None, -np.inf, {}
    for value in grid:
        if regression:
            model = Ridge(alpha=value)
        else:
            model = LogisticRegression(C=value, max_iter=3000)
        model.fit(x_train, y_train)
        metrics = compute_metrics(task.metric, y_val, _scores(model, x_val, task.num_labels))
        scores[f"{value:g}"] = metrics[task.metric]
        if metrics[task.metric] > best_value:  # ties: the smaller C / alpha seen first
            best, best_value, best_val = (value, model), metrics[task.metric], metrics
    value, model = best
    x_test, y_test = features.transform(task.test), _labels(task.test, regression)
    test = compute_metrics(task.metric, y_test, _scores(model, x_test, task.num_labels))
    return TfidfResult(
        metric=task.metric,
        model="ridge" if regression else "logistic_regression",
        parameter="alpha" if regression else "C",
        chosen=value,
        validation=best_val,
        test=test,
        grid=scores,
        features=x_train.shape[1],
        pairs=features.pairs,
        seconds=time.time() - started,
    )
