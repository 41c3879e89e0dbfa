"""The query of "more like my positives" on exact cases: a model of the labels, and Rocchio's mean beside it."""

from __future__ import annotations

import numpy as np
import pytest

from annotator_core.classifier import l2_rows, train, unit_mean
from annotator_core.errors import ValidationFailed
from annotator_core.relevance import like_positives, rocchio_query


def test_the_query_ranks_shots_as_a_model_fitted_to_the_labels_does() -> None:
    rng = np.random.default_rng(3)
    pos = rng.standard_normal((4, 16)).astype(np.float32) + 2.0
    neg = rng.standard_normal((9, 16)).astype(np.float32)
    query = like_positives(pos, neg, C=10.0)
    assert query.dtype == np.float32 and query.shape == (16,)
    assert np.linalg.norm(query) == pytest.approx(1.0, abs=1e-6)
    shots = l2_rows(rng.standard_normal((500, 16)).astype(np.float32))
    x = np.concatenate([pos, neg])
    y = np.r_[np.ones(4, dtype=bool), np.zeros(9, dtype=bool)]
    model = train(x, y, C=10.0, centre=unit_mean(x))
    # the same order as the build's classifier over the same labels: its intercept does not change a ranking
    assert np.array_equal(
        np.argsort(-(shots @ query), kind="stable")[:50],
        np.argsort(-model.decision_function(shots, normalised=True), kind="stable")[:50],
    )


def test_the_query_follows_what_separates_the_labels_where_rocchio_follows_what_they_share() -> None:
    # Every labelled shot shares a large common direction (e0); positives lean to e2, negatives away from it.
    # Rocchio's mean keeps most of e0, so it ranks a shot like the negatives above one like the positives.
    pos = np.array([[1.0, 0.1, 0.3], [1.0, -0.1, 0.35], [1.0, 0.0, 0.25]], dtype=np.float32)
    neg = np.array([[1.0, 0.1, -0.3], [1.0, -0.1, -0.25], [1.0, 0.05, -0.35], [0.0, 1.0, 0.0]], dtype=np.float32)
    like_a_negative, like_a_positive = l2_rows(np.array([[1.0, 0.0, -0.1], [0.3, 0.0, 1.0]], dtype=np.float32))
    model, rocchio = like_positives(pos, neg, C=10.0), rocchio_query(pos, neg)
    assert like_a_positive @ model > like_a_negative @ model
    assert like_a_positive @ rocchio < like_a_negative @ rocchio


def test_without_negatives_it_is_the_positives_mean_direction() -> None:
    # rows are normalised first, so a long vector does not dominate
    got = like_positives(np.array([[10.0, 0, 0], [0, 1.0, 0]]), np.empty((0, 3)), C=10.0)
    np.testing.assert_allclose(got, [0.7071068, 0.7071068, 0], atol=1e-6)
    # one positive and one negative are enough for a model: it points from the negative to the positive
    e = np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(like_positives(e[[0]], e[[1]], C=10.0), [0.7071068, -0.7071068, 0], atol=1e-5)


def test_rocchio_is_the_positives_mean_minus_half_the_negatives_mean() -> None:
    e = np.eye(3, dtype=np.float32)
    # positives e0 and e1 (mean ½, ½, 0), negative e1: ½ e0 + ½ e1 − ½ e1 = ½ e0 → e0
    np.testing.assert_allclose(rocchio_query(e[[0, 1]], e[[1]]), [1.0, 0.0, 0.0], atol=1e-7)
    # beta sets how far the negatives push: with beta 1, (½, ½) − e1 = (½, −½)
    np.testing.assert_allclose(rocchio_query(e[[0, 1]], e[[1, 1]], beta=1.0), [0.7071068, -0.7071068, 0], atol=1e-6)


def test_labels_that_cannot_be_told_apart_fall_back_to_the_positives_direction() -> None:
    # a positive and a negative with the same vector (two copies of one shot labelled both ways): no model
    # separates them, so the query is the positives' mean direction rather than an error or a zero vector
    e = np.eye(3, dtype=np.float32)
    np.testing.assert_allclose(like_positives(e[[0]], e[[0]], C=10.0), [1.0, 0.0, 0.0], atol=1e-7)


def test_no_positive_or_bad_vectors_are_refused() -> None:
    e = np.eye(2, dtype=np.float32)
    with pytest.raises(ValidationFailed, match="at least one positive"):
        like_positives(np.empty((0, 2)), e, C=10.0)
    with pytest.raises(ValidationFailed, match="cancel out"):
        rocchio_query(e[[0]], e[[0]], beta=1.0)
    with pytest.raises(ValidationFailed, match="NaN"):
        like_positives(np.array([[np.nan, 1.0]]), e, C=10.0)
    with pytest.raises(ValidationFailed, match=r"\[n, 2\]"):
        like_positives(e, np.ones((1, 3)), C=10.0)
