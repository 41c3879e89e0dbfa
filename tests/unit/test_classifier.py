"""The per-label classifier on real labelled data (scikit-learn's handwritten digits)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import load_digits
from sklearn.metrics import roc_auc_score

from annotator_core.classifier import Centring, Classifier, fit_logistic, l2_rows, train, unit_mean
from annotator_core.errors import DimensionMismatch, ValidationFailed


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    """Real 64-d features with a real concept (digit 3 vs the rest), L2-normalised like shot vectors."""
    data = load_digits()
    return l2_rows(data.data.astype(np.float32)), data.target == 3


def test_learns_a_real_concept(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    clf = train(x[:1000], y[:1000], encoder="pixels", C=10.0)
    p = clf.predict_proba(x[1000:])
    assert p.dtype == np.float32 and p.shape == (len(x) - 1000,)
    assert roc_auc_score(y[1000:], p) > 0.94
    assert clf.encoder == "pixels" and clf.dim == 64
    assert clf.info["n_pos"] == int(y[:1000].sum())


def test_probabilities_are_calibrated_on_balanced_data(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    pos = np.flatnonzero(y)
    neg = np.flatnonzero(~y)[: len(pos)]
    idx = np.concatenate([pos, neg])
    clf = train(x[idx], y[idx], C=10.0)
    p = clf.predict_proba(x[idx])
    # positives above, negatives below the 0.5 line the borderline feed is measured from
    assert np.median(p[y[idx]]) > 0.8 and np.median(p[~y[idx]]) < 0.2


def test_scaling_a_row_does_not_change_its_score(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    clf = train(x, y)
    np.testing.assert_allclose(clf.predict_proba(x[:50] * 7.5), clf.predict_proba(x[:50]), atol=1e-6)
    np.testing.assert_allclose(clf.predict_proba(x[:50], normalised=True), clf.predict_proba(x[:50]), atol=1e-6)


def test_bytes_round_trip(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    clf = train(x, y, encoder="clip:openai/clip-vit-base-patch32")
    back = Classifier.from_bytes(clf.to_bytes())
    assert back.encoder == clf.encoder and back.dim == clf.dim and back.intercept == clf.intercept
    np.testing.assert_array_equal(back.coef, clf.coef)
    np.testing.assert_array_equal(back.predict_proba(x), clf.predict_proba(x))
    assert back.info == clf.info


def test_corrupt_bytes_are_refused(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    data = train(x, y).to_bytes()
    with pytest.raises(ValidationFailed, match="not a Video Annotator classifier"):
        Classifier.from_bytes(b"garbage")
    with pytest.raises(ValidationFailed, match="corrupt"):
        Classifier.from_bytes(data[:-4])


def test_dimension_mismatch_names_both_widths(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    clf = train(x, y, encoder="pixels")
    with pytest.raises(DimensionMismatch, match=r"shape \(3, 32\).*\[n, 64\].*pixels"):
        clf.predict_proba(np.ones((3, 32), dtype=np.float32))


def test_training_needs_both_classes(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, _ = digits
    with pytest.raises(ValidationFailed, match=r"both positive and negative.*got 20 positive and 0 negative"):
        train(x[:20], np.ones(20, dtype=bool))
    with pytest.raises(ValidationFailed, match="one label per row"):
        train(x[:20], np.ones(19, dtype=bool))


def test_same_seed_same_model(digits: tuple[np.ndarray, np.ndarray]) -> None:
    x, y = digits
    np.testing.assert_array_equal(train(x, y, seed=3).coef, train(x, y, seed=3).coef)


def test_same_solution_as_scikit_learn(digits: tuple[np.ndarray, np.ndarray]) -> None:
    """Our L-BFGS fit minimises scikit-learn's LogisticRegression objective with its stopping rule."""
    from sklearn.linear_model import LogisticRegression

    x, y = digits
    for C in (1.0, 10.0):
        ours = train(x, y, C=C)
        theirs = LogisticRegression(C=C).fit(x.astype(np.float64), y)
        np.testing.assert_allclose(ours.coef, theirs.coef_.ravel(), atol=1e-3)
        assert ours.intercept == pytest.approx(theirs.intercept_[0], abs=1e-3)
        np.testing.assert_allclose(ours.predict_proba(x), theirs.predict_proba(x)[:, 1], atol=1e-4)


def _offset_concept(n: int, *, dim: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows sharing one large common offset (as CLIP embeddings do), the concept a small shift.

    The miniature of issue 13: on raw rows a C = 10 fit of 20 labels predicts one class.
    """
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    x = rng.normal(scale=0.02, size=(n, dim)).astype(np.float32)
    x[:, 0] += 1.0  # the offset: every row points mostly the same way
    x[y, 1] += 0.08  # the concept: a small shift along one other axis
    return l2_rows(x), y


def test_unit_mean_is_a_strided_sample_of_unit_rows() -> None:
    rng = np.random.default_rng(0)
    matrix = l2_rows(rng.normal(size=(10_000, 8)).astype(np.float32) + 3.0)
    mean = unit_mean(matrix, sample=1000)
    np.testing.assert_allclose(mean, matrix[::10].mean(axis=0), atol=1e-6)
    assert np.linalg.norm(mean - matrix.mean(axis=0)) < 0.01
    with pytest.raises(ValidationFailed, match=r"non-empty \[n, dim\] matrix"):
        unit_mean(np.zeros((0, 8), dtype=np.float32))


def test_centring_folds_into_the_intercept() -> None:
    """A centred model scores raw unit rows exactly as its centred fit scores the centred rows."""
    corpus, y = _offset_concept(400)
    mean = unit_mean(corpus)
    clf = train(corpus[:40], y[:40], C=10.0, centre=mean)
    centring = Centring.of(mean, 32)
    coef, intercept, _ = fit_logistic(centring.apply(corpus[:40]), y[:40], C=10.0)
    logits = centring.apply(corpus) @ coef.astype(np.float64) + intercept
    np.testing.assert_allclose(clf.decision_function(corpus), logits, atol=1e-4)
    assert clf.info["centred"] is True and train(corpus[:40], y[:40]).info["centred"] is False
    with pytest.raises(DimensionMismatch, match="corpus mean has 3 values but the vectors have 32"):
        train(corpus[:40], y[:40], centre=np.zeros(3))


def test_centring_separates_a_concept_hidden_under_a_common_offset() -> None:
    corpus, y = _offset_concept(2000, seed=1)
    train_rows, test_rows = slice(0, 20), slice(20, None)
    plain = train(corpus[train_rows], y[train_rows], C=10.0)
    centred = train(corpus[train_rows], y[train_rows], C=10.0, centre=unit_mean(corpus))
    auc_centred = roc_auc_score(y[test_rows], centred.predict_proba(corpus[test_rows]))
    assert auc_centred > 0.95
    # both rank well, but only the centred model's probabilities cross 0.5 between the classes
    p = centred.predict_proba(corpus[test_rows])
    assert np.median(p[y[test_rows]]) > 0.5 > np.median(p[~y[test_rows]])
    p_plain = plain.predict_proba(corpus[test_rows])
    assert np.median(p_plain[y[test_rows]]) < 0.5


def test_unfold_recovers_the_centred_fit_that_fold_exported() -> None:
    """What a build's model hands the quality folds as a warm start is the centred fit itself."""
    corpus, y = _offset_concept(400)
    mean = unit_mean(corpus[:40])
    centring = Centring.of(mean, 32)
    coef, intercept, _ = fit_logistic(centring.apply(corpus[:40]), y[:40], C=10.0)
    clf = train(corpus[:40], y[:40], C=10.0, centre=mean)
    np.testing.assert_allclose(centring.unfold(clf), np.append(coef, intercept), rtol=1e-4, atol=1e-4)
