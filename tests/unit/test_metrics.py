"""Model quality and data diversity (paper §3.1) on exact cases and real data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

from annotator_core.classifier import l2_rows
from annotator_core.errors import ValidationFailed
from annotator_core.metrics import (
    balanced_accuracy,
    cluster_counts,
    cross_validated_accuracies,
    data_diversity,
    model_quality,
    stratified_folds,
)


def _ids(counts: list[int]) -> np.ndarray:
    """Cluster ids of labelled shots given how many fall in each cluster."""
    return np.repeat(np.arange(len(counts)), counts)


def test_figure_6_example_gives_0_65() -> None:
    # positives 10, 5, 3, 10 and negatives 0, 5, 9, 10 over k = 4 clusters, cap 10
    assert data_diversity(_ids([10, 5, 3, 10]), _ids([0, 5, 9, 10]), k=4, cap=10) == pytest.approx(0.65)


def test_counts_above_the_cap_add_nothing() -> None:
    low = data_diversity(_ids([10, 5, 3, 10]), _ids([0, 5, 9, 10]), k=4, cap=10)
    high = data_diversity(_ids([50, 5, 3, 11]), _ids([0, 5, 9, 99]), k=4, cap=10)
    assert low == high


def test_unclustered_shots_count_nothing_and_bad_ids_are_refused() -> None:
    assert data_diversity(np.full(30, -1), np.full(30, -1), k=10, cap=10) == 0.0
    assert cluster_counts(np.array([-1, 0, 2, 2]), k=3).tolist() == [1, 0, 2]
    with pytest.raises(ValidationFailed, match="cluster id 12 is out of range for k=10"):
        data_diversity(np.array([12]), np.array([0]), k=10, cap=10)


@settings(max_examples=200, deadline=None)
@given(
    k=st.integers(1, 12),
    cap=st.integers(1, 15),
    pos=st.lists(st.integers(-1, 11), max_size=120),
    neg=st.lists(st.integers(-1, 11), max_size=120),
    extra=st.integers(0, 11),
)
def test_diversity_is_bounded_and_never_drops_when_a_label_is_added(k, cap, pos, neg, extra) -> None:
    pos_ids = np.array([p for p in pos if p < k], dtype=np.int64)
    neg_ids = np.array([n for n in neg if n < k], dtype=np.int64)
    value = data_diversity(pos_ids, neg_ids, k=k, cap=cap)
    assert 0.0 <= value <= 1.0
    more = data_diversity(np.append(pos_ids, extra % k), neg_ids, k=k, cap=cap)
    assert value <= more <= value + 1.0 / (2 * k * cap) + 1e-12


@settings(max_examples=50, deadline=None)
@given(k=st.integers(1, 8), cap=st.integers(1, 6))
def test_full_coverage_is_exactly_one(k, cap) -> None:
    ids = np.repeat(np.arange(k), cap)
    assert data_diversity(ids, ids, k=k, cap=cap) == 1.0


def test_balanced_accuracy_on_exact_cases() -> None:
    truth = np.array([1, 1, 1, 1, 0, 0], dtype=bool)
    assert balanced_accuracy(truth, truth) == 1.0
    assert balanced_accuracy(truth, ~truth) == 0.0
    assert balanced_accuracy(truth, np.ones(6, dtype=bool)) == 0.5  # all positive: chance
    assert balanced_accuracy(truth, np.array([1, 1, 0, 0, 0, 1], dtype=bool)) == pytest.approx(0.5)


def test_folds_are_stratified_and_cover_every_row() -> None:
    y = np.array([True] * 12 + [False] * 38)
    folds = stratified_folds(y, folds=5, seed=1)
    assert sorted(np.concatenate(folds).tolist()) == list(range(50))
    assert all(int(y[f].sum()) in (2, 3) for f in folds)
    assert max(len(f) for f in folds) - min(len(f) for f in folds) <= 1


def test_quality_of_separable_data_is_one() -> None:
    rng = np.random.default_rng(0)
    centre = np.zeros(16, dtype=np.float32)
    centre[0] = 1.0
    x = np.concatenate([rng.normal(size=(30, 16)) * 0.05 + centre, rng.normal(size=(30, 16)) * 0.05 - centre])
    y = np.array([True] * 30 + [False] * 30)
    assert model_quality(x, y, folds=5, C=10.0) == 1.0


def test_quality_of_random_labels_is_near_chance() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 32)).astype(np.float32)
    y = rng.random(200) < 0.5
    quality = model_quality(x, y, folds=5, seed=0)
    assert 0.3 < quality < 0.6


def test_quality_on_real_digits_matches_scikit_learn_cross_validation() -> None:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score

    data = load_digits()
    x = l2_rows(data.data.astype(np.float32))[:600]
    y = data.target[:600] == 7
    ours = cross_validated_accuracies(x, y, folds=5, C=10.0, seed=2)
    theirs = []
    for test in stratified_folds(y, folds=5, seed=2):
        fit = np.setdiff1d(np.arange(len(y)), test)
        model = LogisticRegression(C=10.0).fit(x[fit].astype(np.float64), y[fit])
        theirs.append(balanced_accuracy_score(y[test], model.predict(x[test].astype(np.float64))))
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    assert model_quality(x, y, folds=5, C=10.0, seed=2) == pytest.approx(np.percentile(theirs, 25))
    assert model_quality(x, y, folds=5, C=10.0) > 0.85


def test_folds_shrink_to_the_smaller_class_and_too_few_is_refused() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(23, 8)).astype(np.float32)
    y = np.array([True] * 3 + [False] * 20)
    assert cross_validated_accuracies(x, y, folds=5).shape == (3,)
    with pytest.raises(ValidationFailed, match="at least 2 examples of each class, got 1"):
        model_quality(x, np.array([True] + [False] * 22))
