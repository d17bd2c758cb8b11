"""Evaluation metrics for the EmbBERT tasks (numpy + scipy; scikit-learn for the per-class
report).

All functions return plain Python floats as fractions (accuracy and F1 in [0, 1], correlations
in [-1, 1]); callers format them, e.g. as percentages. Where a metric is undefined (a constant
prediction or label vector for MCC and the correlations, no positives at all for F1) it is 0.0,
which keeps "pick the best checkpoint" comparisons well-defined.

:func:`compute_metrics` maps a task's primary metric name (``TaskData.metric``) to a dict:

============  ===========================
metric        keys (primary first)
============  ===========================
accuracy      accuracy
mcc           mcc, accuracy
f1            f1, accuracy
spearman      spearman, pearson
============  ===========================

:func:`per_class_metrics` adds precision, recall, F1 and support per class and macro-F1
(scikit-learn's ``precision_recall_fscore_support``) for a classification split.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike
from scipy.stats import rankdata

__all__ = [
    "accuracy",
    "compute_metrics",
    "f1_positive",
    "matthews_corrcoef",
    "pearson",
    "per_class_metrics",
    "spearman",
]


def _pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs as 1-D arrays of the same, non-zero length."""
    t, p = np.asarray(y_true), np.asarray(y_pred)
    if t.ndim != 1 or p.ndim != 1:
        raise ValueError(f"expected 1-D y_true and y_pred, got shapes {t.shape} and {p.shape}")
    if len(t) != len(p):
        raise ValueError(f"y_true and y_pred differ in length: {len(t)} != {len(p)}")
    if len(t) == 0:
        raise ValueError("y_true and y_pred are empty")
    return t, p


def _finite_pair(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    t, p = _pair(y_true, y_pred)
    t, p = t.astype(np.float64), p.astype(np.float64)
    if not (np.all(np.isfinite(t)) and np.all(np.isfinite(p))):
        raise ValueError("y_true and y_pred must not contain NaN or infinity")
    return t, p


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of predictions equal to the true label."""
    t, p = _pair(y_true, y_pred)
    return float(np.mean(t == p))


def matthews_corrcoef(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Matthews correlation coefficient; binary or multiclass (Gorodkin's R_K).

    From the confusion matrix C (n samples, c = trace C, t_k / p_k = true / predicted counts
    of class k): ``(c*n - t.p) / sqrt((n^2 - p.p) * (n^2 - t.t))``. For two classes this is
    the usual ``(TP*TN - FP*FN) / sqrt(...)``. 0.0 when undefined (one side constant).
    """
    t, p = _pair(y_true, y_pred)
    classes, codes = np.unique(np.concatenate([t, p]), return_inverse=True)
    k, n = len(classes), len(t)
    confusion = np.bincount(codes[:n] * k + codes[n:], minlength=k * k).reshape(k, k)
    confusion = confusion.astype(np.float64)
    true_counts, pred_counts = confusion.sum(axis=1), confusion.sum(axis=0)
    correct = np.trace(confusion)
    cov_tp = correct * n - true_counts @ pred_counts
    cov_pp = n * n - pred_counts @ pred_counts
    cov_tt = n * n - true_counts @ true_counts
    denominator = np.sqrt(cov_tt * cov_pp)
    if denominator == 0.0:
        return 0.0
    return float(np.clip(cov_tp / denominator, -1.0, 1.0))


def f1_positive(y_true: ArrayLike, y_pred: ArrayLike, positive: int = 1) -> float:
    """F1 score of the ``positive`` class: 2TP / (2TP + FP + FN); 0.0 if that class never
    occurs in either input."""
    t, p = _pair(y_true, y_pred)
    true_pos, pred_pos = t == positive, p == positive
    tp = np.sum(true_pos & pred_pos)
    fp = np.sum(~true_pos & pred_pos)
    fn = np.sum(true_pos & ~pred_pos)
    denominator = 2 * tp + fp + fn
    return 0.0 if denominator == 0 else float(2 * tp / denominator)


def pearson(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Pearson correlation; 0.0 when either input is constant."""
    t, p = _finite_pair(y_true, y_pred)
    t, p = t - t.mean(), p - p.mean()
    denominator = np.sqrt((t @ t) * (p @ p))
    if denominator == 0.0:
        return 0.0
    return float(np.clip((t @ p) / denominator, -1.0, 1.0))


def spearman(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Spearman rank correlation (Pearson of average ranks, so ties are handled like
    ``scipy.stats.spearmanr``); 0.0 when either input is constant."""
    t, p = _finite_pair(y_true, y_pred)
    return pearson(rankdata(t), rankdata(p))


def _class_ids(y_pred_or_scores: ArrayLike) -> np.ndarray:
    """Class ids from 1-D ids or 2-D per-class scores (argmax over the last axis)."""
    a = np.asarray(y_pred_or_scores)
    if a.ndim == 2:
        if a.shape[1] < 2:
            raise ValueError(f"2-D scores need one column per class (>= 2), got shape {a.shape}")
        return np.argmax(a, axis=1)
    if a.ndim != 1:
        raise ValueError(f"expected 1-D class ids or 2-D scores, got shape {a.shape}")
    if a.dtype.kind in "iub":
        return a.astype(np.int64)
    if a.dtype.kind == "f" and np.all(np.isfinite(a)) and np.all(a == np.round(a)):
        return a.astype(np.int64)
    raise ValueError(
        "1-D predictions must be integer class ids; pass 2-D scores (logits) to take the argmax"
    )


def compute_metrics(
    metric: str, y_true: ArrayLike, y_pred_or_scores: ArrayLike
) -> dict[str, float]:
    """All metrics reported for a task whose primary metric is ``metric``.

    Classification (``accuracy``, ``mcc``, ``f1``): ``y_pred_or_scores`` is either class ids
    (1-D) or per-class scores / logits of shape (n, num_classes), of which the argmax is taken.
    For ``f1`` the positive class is 1. Regression (``spearman``): predicted scores, shape (n,)
    or (n, 1). The primary metric is the first key of the returned dict.
    """
    if metric == "spearman":
        scores = np.asarray(y_pred_or_scores, dtype=np.float64)
        if scores.ndim == 2 and scores.shape[1] == 1:
            scores = scores[:, 0]
        return {"spearman": spearman(y_true, scores), "pearson": pearson(y_true, scores)}
    if metric not in ("accuracy", "mcc", "f1"):
        raise ValueError(f"unknown metric {metric!r}; expected accuracy, mcc, f1 or spearman")
    y_pred = _class_ids(y_pred_or_scores)
    acc = accuracy(y_true, y_pred)
    if metric == "mcc":
        return {"mcc": matthews_corrcoef(y_true, y_pred), "accuracy": acc}
    if metric == "f1":
        return {"f1": f1_positive(y_true, y_pred), "accuracy": acc}
    return {"accuracy": acc}


def per_class_metrics(
    y_true: ArrayLike, y_pred_or_scores: ArrayLike, label_names: list[str]
) -> dict:
    """Precision, recall, F1 and support of every class of ``label_names`` (class-index order;
    a class absent from both inputs is listed with zeros), accuracy, and macro-F1: the unweighted
    mean F1 over the classes that occur in ``y_true`` or ``y_pred`` (scikit-learn's default). A
    class never predicted (or without examples) has precision (or recall) 0.0.

    ``{"accuracy", "macro_f1", "classes": [{"label", "precision", "recall", "f1", "support"}]}``
    """
    from sklearn.metrics import f1_score, precision_recall_fscore_support

    y_pred = _class_ids(y_pred_or_scores)
    t, p = _pair(y_true, y_pred)
    classes = list(range(len(label_names)))
    outside = sorted({int(v) for v in np.concatenate([t, p])} - set(classes))
    if outside:
        raise ValueError(f"class ids {outside[:5]} outside 0..{len(classes) - 1} ({label_names})")
    precision, recall, f1, support = precision_recall_fscore_support(
        t, p, labels=classes, zero_division=0.0
    )
    return {
        "accuracy": accuracy(t, p),
        "macro_f1": float(f1_score(t, p, average="macro", zero_division=0.0)),
        "classes": [
            {
                "label": name,
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]),
            }
            for i, name in enumerate(label_names)
        ],
    }
