"""bench/tfidf_baseline.py: the TF-IDF + linear reference on tiny synthetic tasks."""

import numpy as np
import pytest

from bench.tfidf_baseline import PairFeatures, fit_tfidf
from tflm_embbert.data.examples import Example, TaskData

POS = ["good fun film", "great acting", "lovely and good", "great fun", "good story"]
NEG = ["bad plot", "awful acting", "boring and bad", "awful film", "bad story"]


def _task(train, validation, test, metric="accuracy", labels=("neg", "pos")):
    return TaskData(
        "toy", train, validation, test, list(labels) if labels else None, metric, "test"
    )


def _sentiment(n, offset=0):
    return [Example(POS[(i + offset) % 5], None, 1) for i in range(n)] + [
        Example(NEG[(i + offset) % 5], None, 0) for i in range(n)
    ]


def test_learns_a_separable_task_and_picks_c_on_validation_only():
    task = _task(_sentiment(10), _sentiment(3, 1), _sentiment(4, 2))
    result = fit_tfidf(task, grid=(0.01, 10.0))
    assert result.test["accuracy"] == 1.0
    assert set(result.grid) == {"0.01", "10"}
    assert result.validation["accuracy"] == max(result.grid.values())
    # flipping the TEST labels changes the test score but not the choice (made on validation)
    flipped = [Example(e.text_a, None, 1 - e.label) for e in task.test]
    other = fit_tfidf(_task(task.train, task.validation, flipped), grid=(0.01, 10.0))
    assert other.chosen == result.chosen and other.test["accuracy"] == 0.0


def test_mcc_and_f1_metrics_are_the_tasks():
    task = _task(_sentiment(10), _sentiment(3, 1), _sentiment(4, 2), metric="mcc")
    assert fit_tfidf(task, grid=(10.0,)).test == {"mcc": 1.0, "accuracy": 1.0}


def test_pairs_get_overlap_features_and_regression_uses_spearman():
    words = "cat dog sun rain tree car boat fish bird moon".split()
    rng = np.random.default_rng(0)

    def pairs(n):
        out = []
        for _ in range(n):
            a = rng.choice(words, 4, replace=False)
            shared = int(rng.integers(0, 5))
            b = list(a[:shared]) + list(rng.choice([w for w in words if w not in a], 4 - shared))
            out.append(Example(" ".join(a), " ".join(b), float(shared)))
        return out

    task = _task(pairs(200), pairs(40), pairs(40), metric="spearman", labels=None)
    features = PairFeatures().fit(task.train)
    assert features.pairs
    x = features.transform(task.test[:3])
    assert x.shape[1] == 4 * len(features.vectorizer.vocabulary_) + 1
    result = fit_tfidf(task)
    assert result.model == "ridge" and result.parameter == "alpha"
    assert result.test["spearman"] > 0.8  # the word overlap predicts the shared-word count


def test_empty_validation_is_refused():
    with pytest.raises(ValueError, match="validation"):
        fit_tfidf(_task(_sentiment(5), [], _sentiment(2)))
