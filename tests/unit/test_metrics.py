"""Model quality and data diversity (paper §3.1) on exact cases and real data."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits

from annotator_core.classifier import fit_logistic, l2_rows, unit_mean
from annotator_core.errors import ValidationFailed
from annotator_core.folds import fold_count, stratified_folds
from annotator_core.metrics import (
    MIN_SAMPLE_SHARE,
    QUALITY_FOLDS,
    RATE_PRIOR,
    balanced_accuracy,
    cluster_counts,
    cross_validated_accuracies,
    data_diversity,
    estimated_balanced_accuracy,
    model_quality,
    model_quality_estimate,
    quality_repeats,
    repeated_cv_accuracies,
    sample_caveat,
    sample_share,
)
from annotator_core.workspace import SAMPLE_SOURCES


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
    assert model_quality(x, y, folds=5, C=10.0, rate_prior=0.0) == 1.0
    # what a build shows: each fold's 6 + 6 held-out shots all right read (6.5 / 7) per class, not a perfect 1
    assert model_quality(x, y, folds=5, C=10.0) == pytest.approx(6.5 / 7)


def test_fold_rates_are_jeffreys_estimates_that_fade_with_fold_size() -> None:
    truth = np.array([True, True] + [False] * 8)
    assert estimated_balanced_accuracy(truth, truth, prior=0.0) == balanced_accuracy(truth, truth) == 1.0
    # two positives both found, eight negatives all right: (2.5 / 3 + 8.5 / 9) / 2
    assert estimated_balanced_accuracy(truth, truth) == pytest.approx((2.5 / 3 + 8.5 / 9) / 2)
    # one of the two positives missed: the rate is 1.5 / 3, not 0.5 of a perfect fold's 1
    missed = truth.copy()
    missed[0] = False
    assert estimated_balanced_accuracy(truth, missed) == pytest.approx((1.5 / 3 + 8.5 / 9) / 2)
    # all wrong is not 0, and chance on a large fold stays chance
    assert estimated_balanced_accuracy(truth, ~truth) == pytest.approx((0.5 / 3 + 0.5 / 9) / 2)
    big = np.random.default_rng(0).random(4000) < 0.5
    guess = np.random.default_rng(1).random(4000) < 0.5
    assert estimated_balanced_accuracy(big, guess) == pytest.approx(balanced_accuracy(big, guess), abs=1e-3)
    # a fold of hundreds right reads ~1
    many = np.array([True] * 300 + [False] * 300)
    assert estimated_balanced_accuracy(many, many) > 0.998
    with pytest.raises(ValidationFailed, match="prior must be a pseudo-count of at least 0, got -1"):
        estimated_balanced_accuracy(truth, truth, prior=-1.0)


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
    ours = cross_validated_accuracies(x, y, folds=5, C=10.0, seed=2, rate_prior=0.0)
    theirs = []
    for test in stratified_folds(y, folds=5, seed=2):
        fit = np.setdiff1d(np.arange(len(y)), test)
        model = LogisticRegression(C=10.0).fit(x[fit].astype(np.float64), y[fit])
        theirs.append(balanced_accuracy_score(y[test], model.predict(x[test].astype(np.float64))))
    np.testing.assert_allclose(ours, theirs, atol=1e-9)
    assert model_quality(x, y, folds=5, C=10.0, seed=2, repeats=1, rate_prior=0.0) == pytest.approx(
        np.percentile(theirs, 25)
    )
    assert model_quality(x, y, folds=5, C=10.0) > 0.85


def test_folds_shrink_to_hold_two_of_the_rarer_class_and_too_few_is_refused() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(29, 8)).astype(np.float32)
    y = np.array([True] * 9 + [False] * 20)
    assert cross_validated_accuracies(x, y, folds=5).shape == (4,)
    assert cross_validated_accuracies(x[6:], y[6:], folds=5).shape == (2,)  # 3 positives: still 2 folds
    assert [fold_count(s, folds=5) for s in (2, 3, 4, 5, 9, 10, 500)] == [2, 2, 2, 2, 4, 5, 5]
    for test in stratified_folds(y, folds=4, seed=0):
        assert y[test].sum() >= 2
    with pytest.raises(ValidationFailed, match="at least 2 examples of each class, got 1"):
        model_quality(x, np.array([True] + [False] * 28))


def _offset_concept(n: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Unit rows with one large common offset and the concept a small shift (issue 13 in miniature)."""
    rng = np.random.default_rng(seed)
    y = rng.random(n) < 0.4
    x = rng.normal(scale=0.02, size=(n, 32)).astype(np.float32)
    x[:, 0] += 1.0
    x[y, 1] += 0.08
    return l2_rows(x), y


def test_quality_with_a_common_offset_is_high_once_centred() -> None:
    corpus, y = _offset_concept(2000, seed=1)
    x, labels = corpus[:20], y[:20]
    # the uncentred fit predicts one class in every fold: "no better than a coin" for a separable label
    assert model_quality(x, labels, C=10.0) <= 0.55
    assert model_quality(x, labels, C=10.0, centre=unit_mean(corpus), rate_prior=0.0) >= 0.8
    assert model_quality(x, labels, C=10.0, centre=unit_mean(x), rate_prior=0.0) >= 0.8  # the labelled mean
    # as builds show it: 8 + 12 labels, folds of 4 + 6 held out, where a perfect fold reads (4.5/5 + 6.5/7) / 2 = 0.91
    assert model_quality(x, labels, C=10.0, centre=unit_mean(x)) >= 0.75


def test_quality_of_label_noise_is_near_chance_when_centred() -> None:
    corpus, _ = _offset_concept(2000, seed=2)
    noise = np.random.default_rng(3).random(200) < 0.5
    quality = model_quality_estimate(corpus[:200], noise, C=10.0, centre=unit_mean(corpus))
    assert 0.35 < quality.value < 0.6
    assert quality.low < quality.value < quality.high


@pytest.mark.parametrize("digit", [8, 9])
def test_quality_of_20_annotations_holds_still_over_fold_seeds(digit: int) -> None:
    """10 + 10 real annotations: the shown score moves little when only the fold split changes."""
    data = load_digits()
    x = l2_rows(data.data.astype(np.float32))
    truth = data.target == digit
    rng = np.random.default_rng(digit)
    rows = np.concatenate(
        [rng.choice(np.flatnonzero(truth), 10, replace=False), rng.choice(np.flatnonzero(~truth), 10, replace=False)]
    )
    centre = unit_mean(x)

    def spread(repeats: int | None, folds: int = QUALITY_FOLDS, rate_prior: float = RATE_PRIOR) -> float:
        values = [
            model_quality(
                x[rows], truth[rows], folds=folds, C=10.0, centre=centre, seed=s, repeats=repeats, rate_prior=rate_prior
            )
            for s in range(30)
        ]
        return float(np.percentile(values, 90) - np.percentile(values, 10))

    assert spread(None) <= 0.15
    # one split of the paper's five folds of four, plain rates: the noise the repeats (and the larger folds) remove
    assert spread(1, folds=5, rate_prior=0.0) >= 0.2
    assert spread(1, rate_prior=0.0) < spread(1, folds=5, rate_prior=0.0)  # two folds of ten are already steadier


def test_builds_default_to_the_two_fold_score() -> None:
    from annotator_core.settings import Settings

    assert Settings.model_fields["cv_folds"].default == QUALITY_FOLDS == 2
    data = load_digits()
    x = l2_rows(data.data.astype(np.float32))[:20]
    y = np.arange(20) < 10
    estimate = model_quality_estimate(x, y, C=10.0)
    assert (estimate.folds, estimate.repeats) == (2, 40)  # 20 labels: two folds of ten, 40 splits


def test_quality_estimate_is_the_mean_of_the_repeats_25th_percentiles() -> None:
    data = load_digits()
    x = l2_rows(data.data.astype(np.float32))[:60]
    y = data.target[:60] < 3  # ~18 positives: folds of at least two
    accuracies = repeated_cv_accuracies(x, y, C=10.0, seed=4, repeats=27)
    assert accuracies.shape == (27, QUALITY_FOLDS)
    np.testing.assert_allclose(accuracies[0], cross_validated_accuracies(x, y, C=10.0, seed=4), atol=1e-9)
    estimate = model_quality_estimate(x, y, C=10.0, seed=4)
    assert estimate.repeats == quality_repeats(60) == 27
    assert estimate.value == pytest.approx(np.mean(np.percentile(accuracies, 25, axis=1)))
    assert (estimate.low, estimate.high) == pytest.approx(tuple(np.percentile(accuracies, [10, 90])))
    assert [quality_repeats(n) for n in (20, 100, 399, 400, 5000)] == [40, 16, 5, 4, 4]
    with pytest.raises(ValidationFailed, match="repeats must be at least 1, got 0"):
        model_quality(x, y, repeats=0)


def test_out_of_fold_scores_come_from_models_that_did_not_see_the_row() -> None:
    data = load_digits()
    x = l2_rows(data.data.astype(np.float32))[:200]
    y = data.target[:200] == 0
    estimate = model_quality_estimate(x, y, folds=5, C=10.0, seed=1, repeats=2)
    assert estimate.out_of_fold.shape == (200,)
    expected = np.empty(200)
    for test in stratified_folds(y, folds=5, seed=1):
        fit = np.setdiff1d(np.arange(200), test)
        coef, intercept, _ = fit_logistic(x[fit], y[fit], C=10.0)
        expected[test] = x[test] @ coef + intercept
    np.testing.assert_allclose(estimate.out_of_fold, expected, atol=0.05)
    assert np.mean((estimate.out_of_fold > 0) == y) > 0.95


def test_prior_threshold_scores_a_good_ranker_on_rare_positives_above_chance() -> None:
    """6 positives among 300 labels: at P > 0.5 the model says "negative" everywhere (0.5); at the prior it does not."""
    data = load_digits()
    x = l2_rows(data.data.astype(np.float32))
    truth = data.target == 0
    rng = np.random.default_rng(0)
    rows = np.concatenate(
        [rng.choice(np.flatnonzero(truth), 6, replace=False), rng.choice(np.flatnonzero(~truth), 294, replace=False)]
    )
    centre = unit_mean(x[rows])
    half = model_quality_estimate(x[rows], truth[rows], C=1.0, centre=centre, rate_prior=0.0)
    prior = model_quality_estimate(x[rows], truth[rows], C=1.0, centre=centre, threshold="prior", rate_prior=0.0)
    assert half.value <= 0.6
    assert prior.value >= 0.8


def test_five_positives_are_not_scored_by_folds_of_one() -> None:
    """5 real positives among 100 labels, 24 draws: a good ranker (held-out AUC ≥ 0.85) rarely reads ≤ 0.55.

    With five folds of one positive each, a fold's balanced accuracy is ~0.5 whenever its one positive
    is missed, and 4 of these 24 draws read ≤ 0.55; with two folds of 2–3 positives, 1 does.
    """
    from sklearn.metrics import roc_auc_score

    from annotator_core.classifier import train

    data = load_digits()
    x = l2_rows(data.data.astype(np.float32))
    misleading = 0
    for digit in (8, 1):
        truth = data.target == digit
        for seed in range(12):
            rng = np.random.default_rng(seed)
            rows = np.concatenate(
                [
                    rng.choice(np.flatnonzero(truth), 5, replace=False),
                    rng.choice(np.flatnonzero(~truth), 95, replace=False),
                ]
            )
            centre = unit_mean(x[rows])
            estimate = model_quality_estimate(x[rows], truth[rows], C=10.0, centre=centre, threshold="prior")
            assert estimate.folds == 2
            rest = np.setdiff1d(np.arange(len(x)), rows)
            model = train(x[rows], truth[rows], C=10.0, centre=centre)
            auc = roc_auc_score(truth[rest], model.decision_function(x[rest]))
            misleading += int(auc >= 0.85 and estimate.value <= 0.55)
    assert misleading <= 1


def test_warm_start_from_the_build_model_gives_the_same_scores_within_solver_tolerance() -> None:
    from scipy.special import expit

    from annotator_core.classifier import train

    data = load_digits()
    x = l2_rows(data.data.astype(np.float32))[:800]
    y = data.target[:800] == 8
    centre = unit_mean(x)
    model = train(x, y, C=10.0, centre=centre)
    cold = model_quality_estimate(x, y, C=10.0, centre=centre, seed=3, threshold="prior")
    warm = model_quality_estimate(x, y, C=10.0, centre=centre, seed=3, threshold="prior", warm_start=model)
    assert warm.value == pytest.approx(cold.value, abs=0.01)
    # the solver stops at a gradient tolerance (as the previous-fold start did): probabilities differ by up to ~0.03
    np.testing.assert_allclose(expit(warm.out_of_fold), expit(cold.out_of_fold), atol=0.05)
    assert np.mean((warm.out_of_fold > 0) == (cold.out_of_fold > 0)) >= 0.99


def _rare_digit(digit: int, n_pos: int, n_neg: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Labelled rows of one digit against the rest, and the other rows as the catalog sample."""
    data = load_digits()
    x = l2_rows(data.data.astype(np.float32))
    truth = data.target == digit
    rng = np.random.default_rng(seed)
    rows = np.concatenate(
        [
            rng.choice(np.flatnonzero(truth), n_pos, replace=False),
            rng.choice(np.flatnonzero(~truth), n_neg, replace=False),
        ]
    )
    rest = np.setdiff1d(np.arange(len(x)), rows)
    return x[rows], truth[rows], x[rest], truth[rest]


def test_corpus_threshold_records_the_share_of_the_catalog_the_build_model_flags() -> None:
    from annotator_core.classifier import train

    x, y, catalog, _ = _rare_digit(3, 20, 80, seed=0)
    centre = unit_mean(x)
    model = train(x, y, C=10.0, centre=centre)
    estimate = model_quality_estimate(
        x, y, C=10.0, centre=centre, threshold="corpus", reference=catalog, warm_start=model
    )
    expected = np.mean(model.decision_function(catalog) > np.log(20 / 80))
    assert 0.02 < expected < 0.5  # the model flags some of the catalog, not all
    assert estimate.flagged == pytest.approx(expected, abs=1.0 / len(catalog))
    assert estimate.as_dict()["flagged"] == estimate.flagged
    assert "flagged" not in model_quality_estimate(x, y, C=10.0, centre=centre, threshold="prior").as_dict()
    # without the build's model the estimate fits one on every row itself, to the same share
    cold = model_quality_estimate(x, y, C=10.0, centre=centre, threshold="corpus", reference=catalog)
    assert cold.flagged == pytest.approx(estimate.flagged, abs=2.0 / len(catalog))


def test_corpus_threshold_decides_every_fold_at_that_share_of_the_catalog() -> None:
    """Each fold's model flags the catalog share the build's model flags, wherever its own prior would put it."""
    from annotator_core.classifier import Centring

    x, y, catalog, _ = _rare_digit(1, 10, 90, seed=2)
    centre = unit_mean(x)
    share = model_quality_estimate(x, y, C=10.0, centre=centre, threshold="corpus", reference=catalog).flagged
    got = repeated_cv_accuracies(
        x, y, folds=5, C=10.0, centre=centre, seed=5, threshold="corpus", reference=catalog, rate_prior=0.0
    )[0]
    centring = Centring.of(centre, x.shape[1])
    rows, ref = centring.apply(x), centring.apply(catalog)
    expected = []
    for test in stratified_folds(y, folds=5, seed=5):
        fit = np.setdiff1d(np.arange(len(y)), test)
        coef, intercept, _ = fit_logistic(rows[fit], y[fit], C=10.0)
        ref_logits = ref @ coef + intercept
        cut = np.quantile(ref_logits, 1.0 - share)
        assert abs(np.mean(ref_logits > cut) - share) <= 2.0 / len(catalog)
        expected.append(balanced_accuracy(y[test], rows[test] @ coef + intercept > cut))
    np.testing.assert_allclose(got, expected, atol=1e-9)
    # and that is not where the folds' own priors decide (there one fold reads 0.44, here 0.67)
    prior = repeated_cv_accuracies(x, y, folds=5, C=10.0, centre=centre, seed=5, threshold="prior", rate_prior=0.0)[0]
    assert np.abs(prior - got).max() > 0.1


def test_corpus_threshold_keeps_the_scores_meaning_on_easy_noisy_and_few_labels() -> None:
    corpus, y = _offset_concept(2000, seed=1)
    separable = model_quality_estimate(
        corpus[:40], y[:40], C=10.0, centre=unit_mean(corpus[:40]), threshold="corpus", reference=corpus[40:]
    )
    assert separable.value >= 0.8
    noise = np.random.default_rng(3).random(200) < 0.5
    chance = model_quality_estimate(
        corpus[:200], noise, C=10.0, centre=unit_mean(corpus[:200]), threshold="corpus", reference=corpus[200:]
    )
    assert 0.35 < chance.value < 0.62
    # 10 + 10 real annotations: still steady over fold seeds
    x, labels, catalog, _ = _rare_digit(9, 10, 10, seed=9)
    values = [
        model_quality(x, labels, C=10.0, centre=unit_mean(x), seed=s, threshold="corpus", reference=catalog)
        for s in range(30)
    ]
    assert np.percentile(values, 90) - np.percentile(values, 10) <= 0.15


def test_corpus_threshold_refuses_a_missing_or_malformed_catalog_sample() -> None:
    x, y, catalog, _ = _rare_digit(3, 10, 30, seed=2)
    with pytest.raises(ValidationFailed, match='threshold="corpus" needs reference'):
        model_quality(x, y, threshold="corpus")
    with pytest.raises(ValidationFailed, match=r"reference must be an \[m, 64\] matrix.*got shape \(5, 63\)"):
        model_quality(x, y, threshold="corpus", reference=catalog[:5, :63])
    bad = catalog[:50].copy()
    bad[3, 4] = np.nan
    with pytest.raises(ValidationFailed, match="reference contains NaN"):
        model_quality(x, y, threshold="corpus", reference=bad)


def test_corpus_share_is_the_flagged_share_kept_between_one_row_and_half_the_catalog() -> None:
    from annotator_core.metrics import corpus_share

    logits = np.arange(10, dtype=np.float64)  # ten catalog rows scored 0..9
    assert corpus_share(logits, 6.5) == pytest.approx(0.3)  # rows 7, 8, 9
    assert corpus_share(logits, 100.0) == pytest.approx(0.1)  # none flagged: still its top row
    assert corpus_share(logits, 2.5) == pytest.approx(0.5)  # seven flagged: decided at the median


def test_evaluate_scores_each_fold_on_its_counted_rows_and_trains_on_all() -> None:
    """Rows left out of ``evaluate`` still train every fold; each fold's score counts only the others."""
    from annotator_core.classifier import Centring

    x, y, catalog, _ = _rare_digit(4, 20, 60, seed=3)
    centre = unit_mean(x)
    counted = np.ones(len(y), dtype=bool)
    counted[::3] = False  # every third row: "labelled from the borderline feed"
    got = repeated_cv_accuracies(
        x, y, C=10.0, centre=centre, seed=7, threshold="corpus", reference=catalog, evaluate=counted, rate_prior=0.0
    )[0]
    share = model_quality_estimate(x, y, C=10.0, centre=centre, threshold="corpus", reference=catalog).flagged
    centring = Centring.of(centre, x.shape[1])
    rows, ref = centring.apply(x), centring.apply(catalog)
    expected, everything = [], []
    for test in stratified_folds(y, folds=QUALITY_FOLDS, seed=7):
        fit = np.setdiff1d(np.arange(len(y)), test)  # the left-out rows are in here too
        coef, intercept, _ = fit_logistic(rows[fit], y[fit], C=10.0)
        flagged = rows[test] @ coef + intercept > np.quantile(ref @ coef + intercept, 1.0 - share)
        kept = counted[test]
        expected.append(balanced_accuracy(y[test][kept], flagged[kept]))
        everything.append(balanced_accuracy(y[test], flagged))
    np.testing.assert_allclose(got, expected, atol=1e-9)
    assert not np.allclose(expected, everything)  # the mask changed what was scored
    # the out-of-fold scores (the random-ap reward's input) do not depend on the mask
    a = model_quality_estimate(x, y, C=10.0, centre=centre, threshold="corpus", reference=catalog, seed=7)
    b = model_quality_estimate(
        x, y, C=10.0, centre=centre, threshold="corpus", reference=catalog, seed=7, evaluate=counted
    )
    np.testing.assert_allclose(a.out_of_fold, b.out_of_fold)


def test_a_fold_whose_counted_rows_lack_a_class_is_scored_on_all_its_rows() -> None:
    x, y, catalog, _ = _rare_digit(4, 20, 60, seed=3)
    centre = unit_mean(x)
    only_negatives = ~y  # no positive is ever counted
    kwargs = {"C": 10.0, "centre": centre, "seed": 7, "threshold": "corpus", "reference": catalog}
    got = repeated_cv_accuracies(x, y, evaluate=only_negatives, **kwargs)
    np.testing.assert_allclose(got, repeated_cv_accuracies(x, y, **kwargs), atol=1e-12)


def test_evaluate_must_be_one_bool_per_row() -> None:
    x, y, catalog, _ = _rare_digit(4, 20, 60, seed=3)
    for bad in (np.ones(len(y) - 1, dtype=bool), np.ones(len(y), dtype=int)):
        with pytest.raises(ValidationFailed, match="one bool per labelled row"):
            model_quality_estimate(x, y, C=10.0, threshold="corpus", reference=catalog, evaluate=bad)


UNIFORM = {"random", "import", "unknown"}


def test_sample_caveat_flags_labels_with_under_a_tenth_from_a_uniform_sample() -> None:
    assert sample_caveat({"search": 20}, uniform=UNIFORM) == {
        "from_sample": 0,
        "labels": 20,
        "share": 0.0,
        "min_share": MIN_SAMPLE_SHARE,
    }
    caveat = sample_caveat({"search": 180, "top_positive": 10, "random": 9}, uniform=UNIFORM)
    assert caveat is not None and (caveat["from_sample"], caveat["labels"]) == (9, 199)
    assert caveat["share"] == pytest.approx(9 / 199)
    # a tenth is enough: 20 of 200
    assert sample_caveat({"search": 180, "random": 20}, uniform=UNIFORM) is None
    # labels of unknown origin (imported, or saved without a source) may be a uniform sample: they count
    assert sample_caveat({"search": 30, "import": 2, "unknown": 2}, uniform=UNIFORM) is None
    assert sample_caveat({}, uniform=UNIFORM) is None
    assert sample_caveat({"search": 10, "random": 3}, uniform=UNIFORM, min_share=0.5) is not None


def test_sample_share_counts_the_labels_from_a_uniform_sample_with_or_without_a_caveat() -> None:
    assert sample_share({"search": 180, "random": 20}, uniform=UNIFORM) == {
        "from_sample": 20,
        "labels": 200,
        "share": 0.1,
    }
    assert sample_share({}, uniform=UNIFORM) == {"from_sample": 0, "labels": 0, "share": 0.0}
    # the workspace's own sources: an import that says a shot was drawn at random counts, one from search does not
    imported = sample_share({"import:random": 1, "import:search": 24, "import": 0}, uniform=SAMPLE_SOURCES)
    assert (imported["from_sample"], imported["labels"]) == (1, 25)
    with pytest.raises(ValidationFailed, match="label counts must be at least 0"):
        sample_share({"random": -1}, uniform=UNIFORM)


def test_sample_caveat_refuses_bad_counts_and_shares() -> None:
    with pytest.raises(ValidationFailed, match="min_share must be in"):
        sample_caveat({"search": 10}, uniform=UNIFORM, min_share=0.0)
    with pytest.raises(ValidationFailed, match="label counts must be at least 0"):
        sample_caveat({"search": -1}, uniform=UNIFORM)
