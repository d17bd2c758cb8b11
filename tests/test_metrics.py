"""Tests for tflm_embbert.data.metrics against hand-computed values and numpy/scipy references."""

import numpy as np
import pytest
from scipy import stats

from tflm_embbert.data.metrics import (
    accuracy,
    compute_metrics,
    f1_positive,
    matthews_corrcoef,
    pearson,
    spearman,
)


def test_accuracy():
    assert accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 0.75
    assert accuracy(np.array([2, 2]), np.array([2, 2])) == 1.0
    assert isinstance(accuracy([1], [0]), float)


@pytest.mark.parametrize(
    "y_true, y_pred",
    [([0, 1], [0]), ([], []), ([[0, 1]], [[0, 1]])],
    ids=["length-mismatch", "empty", "2-d"],
)
def test_bad_shapes_raise(y_true, y_pred):
    with pytest.raises(ValueError):
        accuracy(y_true, y_pred)


def test_mcc_binary_hand_computed():
    # TP=2 TN=2 FP=1 FN=1 -> (2*2 - 1*1) / sqrt(3*3*3*3) = 1/3
    assert matthews_corrcoef([1, 1, 1, 0, 0, 0], [1, 1, 0, 0, 0, 1]) == pytest.approx(1 / 3)
    assert matthews_corrcoef([0, 1, 0, 1], [0, 1, 0, 1]) == pytest.approx(1.0)
    assert matthews_corrcoef([0, 1, 0, 1], [1, 0, 1, 0]) == pytest.approx(-1.0)


def test_mcc_binary_equals_phi_coefficient():
    rng = np.random.default_rng(0)
    t, p = rng.integers(0, 2, 200), rng.integers(0, 2, 200)
    assert matthews_corrcoef(t, p) == pytest.approx(np.corrcoef(t, p)[0, 1])


def test_mcc_multiclass_gorodkin_hand_computed():
    # confusion (rows true): [[1,1,0],[0,1,1],[1,0,1]]; c=3, n=6, t=p=(2,2,2)
    # (3*6 - 12) / sqrt((36 - 12) * (36 - 12)) = 6 / 24
    assert matthews_corrcoef([0, 0, 1, 1, 2, 2], [0, 1, 1, 2, 2, 0]) == pytest.approx(0.25)
    assert matthews_corrcoef([0, 1, 2, 2], [0, 1, 2, 2]) == pytest.approx(1.0)


def test_mcc_undefined_is_zero():
    assert matthews_corrcoef([0, 1, 1, 0], [1, 1, 1, 1]) == 0.0
    assert matthews_corrcoef([1, 1, 1], [1, 1, 1]) == 0.0


def test_f1_positive():
    # positive=1: TP=2 FP=1 FN=0 -> 4/5; positive=0: TP=1 FP=0 FN=1 -> 2/3
    assert f1_positive([1, 1, 0, 0], [1, 1, 1, 0]) == pytest.approx(0.8)
    assert f1_positive([1, 1, 0, 0], [1, 1, 1, 0], positive=0) == pytest.approx(2 / 3)
    assert f1_positive([0, 0], [0, 0]) == 0.0  # no positives anywhere
    assert f1_positive([1, 1], [0, 0]) == 0.0


def test_pearson_and_spearman_against_scipy():
    rng = np.random.default_rng(1)
    x = rng.normal(size=50)
    y = x + rng.normal(size=50)
    assert pearson(x, y) == pytest.approx(stats.pearsonr(x, y)[0])
    assert spearman(x, y) == pytest.approx(stats.spearmanr(x, y)[0])
    ties_x, ties_y = [1, 2, 2, 3, 4, 4, 5], [1.0, 3.0, 2.0, 2.0, 5.0, 4.0, 4.0]
    assert spearman(ties_x, ties_y) == pytest.approx(stats.spearmanr(ties_x, ties_y)[0])


def test_correlations_hand_computed():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    # 1 - 6 * sum(d^2) / (n (n^2 - 1)) = 1 - 6 * 2 / 60
    assert spearman([1, 2, 3, 4], [1, 3, 2, 4]) == pytest.approx(0.8)
    assert spearman([1, 2, 3, 4], [1, 8, 27, 64]) == pytest.approx(1.0)  # monotone, non-linear


def test_correlations_constant_input_is_zero_and_nan_raises():
    assert pearson([1, 2, 3], [2, 2, 2]) == 0.0
    assert spearman([1, 2, 3], [2, 2, 2]) == 0.0
    with pytest.raises(ValueError, match="NaN"):
        pearson([1, 2, 3], [1, np.nan, 2])


def test_compute_metrics_classification_ids_and_logits():
    y = [0, 1, 1, 0]
    logits = np.array([[2.0, 1.0], [0.0, 3.0], [1.0, 0.5], [0.2, 0.1]])  # argmax 0,1,0,0
    assert compute_metrics("accuracy", y, logits) == {"accuracy": 0.75}
    assert compute_metrics("accuracy", y, [0, 1, 0, 0]) == {"accuracy": 0.75}
    assert compute_metrics("accuracy", y, np.array([0.0, 1.0, 0.0, 0.0])) == {"accuracy": 0.75}

    mcc = compute_metrics("mcc", y, logits)
    assert list(mcc) == ["mcc", "accuracy"]
    assert mcc["mcc"] == pytest.approx(matthews_corrcoef(y, [0, 1, 0, 0]))

    f1 = compute_metrics("f1", y, logits)
    assert list(f1) == ["f1", "accuracy"]
    assert f1 == {"f1": pytest.approx(2 / 3), "accuracy": 0.75}  # TP=1 FP=0 FN=1


def test_compute_metrics_regression():
    y = [0.0, 1.5, 3.0, 5.0]
    pred = np.array([[0.5], [1.0], [3.5], [4.0]])  # (n, 1) model output
    out = compute_metrics("spearman", y, pred)
    assert list(out) == ["spearman", "pearson"]
    assert out["spearman"] == pytest.approx(1.0)
    assert out["pearson"] == pytest.approx(stats.pearsonr(y, pred[:, 0])[0])
    assert all(isinstance(v, float) for v in out.values())


@pytest.mark.parametrize(
    "metric, pred",
    [
        ("bleu", [0, 1]),
        ("accuracy", [0.2, 0.7]),  # probabilities are not class ids
        ("accuracy", [[0.3], [0.9]]),  # one score column: ambiguous
    ],
)
def test_compute_metrics_rejects_bad_input(metric, pred):
    with pytest.raises(ValueError):
        compute_metrics(metric, [0, 1], pred)


def test_per_class_metrics_hand_computed():
    from tflm_embbert.data.metrics import per_class_metrics

    # class 0: TP 1, FP 1, FN 1; class 1: TP 2, FP 1; class 2: TP 1, FN 1; class 3: absent.
    report = per_class_metrics([0, 0, 1, 1, 2, 2], [0, 1, 1, 1, 0, 2], ["a", "b", "c", "d"])
    rows = {r["label"]: r for r in report["classes"]}
    assert [r["label"] for r in report["classes"]] == ["a", "b", "c", "d"]
    assert (rows["a"]["precision"], rows["a"]["recall"], rows["a"]["f1"]) == (0.5, 0.5, 0.5)
    assert rows["b"]["precision"] == pytest.approx(2 / 3) and rows["b"]["recall"] == 1.0
    assert rows["b"]["f1"] == pytest.approx(0.8)
    assert rows["c"]["precision"] == 1.0 and rows["c"]["f1"] == pytest.approx(2 / 3)
    assert rows["d"] == {"label": "d", "precision": 0.0, "recall": 0.0, "f1": 0.0, "support": 0}
    assert [r["support"] for r in report["classes"]] == [2, 2, 2, 0]
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["macro_f1"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)  # d occurs nowhere


def test_per_class_metrics_agree_with_sklearn_classification_report():
    from sklearn.metrics import classification_report

    from tflm_embbert.data.metrics import per_class_metrics

    rng = np.random.default_rng(0)
    y_true = rng.integers(0, 4, 200)
    scores = rng.normal(size=(200, 4)) + 1.5 * np.eye(4)[y_true]
    report = per_class_metrics(y_true, scores, ["w", "x", "y", "z"])
    expected = classification_report(y_true, scores.argmax(1), output_dict=True)
    for index, row in enumerate(report["classes"]):
        for key in ("precision", "recall", "f1"):
            assert row[key] == pytest.approx(expected[str(index)][key.replace("f1", "f1-score")])
        assert row["support"] == expected[str(index)]["support"]
    assert report["macro_f1"] == pytest.approx(expected["macro avg"]["f1-score"])
    assert report["accuracy"] == pytest.approx(expected["accuracy"])
    with pytest.raises(ValueError, match="class ids \\[4\\] outside 0..3"):
        per_class_metrics([0, 4], [0, 1], ["w", "x", "y", "z"])
