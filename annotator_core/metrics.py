"""The two scores shown at every build (paper §3.1): model quality and data diversity.

Pure functions, arrays in and a float out, no I/O.

- **model quality**: the 25th percentile of balanced accuracy over stratified
  K-fold cross-validation. A low quantile rather than the mean, so one lucky
  fold does not make a label look finished. The paper used K = 5; builds use
  K = 2 (:data:`QUALITY_FOLDS`). With 20 labels five folds hold four shots each
  and score only 0, ¼, ½, ¾ or 1, so their 25th percentile is mostly the
  noise of the smallest folds; two folds of ten are scored on more shots each,
  and the score ranks labels by held-out AP better (issue 13: Spearman ρ 0.738
  → 0.766 on benchmark runs not used to choose K; 0.737 → 0.781 over all 12
  runs with the repeats below, and no point a build shows reads ≤ 0.55 at test
  AUC ≥ 0.85, against 6 with five folds). One split is still noisy, so it is
  repeated with other seeds — more repeats the fewer the labels — and the
  shown value is the mean of the repeats' 25th percentiles; the 10th–90th
  percentile of all fold scores is the spread shown beside it.
  Each fold's true-positive and true-negative rates are estimated with half a
  pseudo-count each way (:data:`RATE_PRIOR`, the Jeffreys prior): a fold that
  holds two positives reads 0.83 on them at best, not 1, so a few lucky or
  unlucky held-out shots move the score less (issue 13: ρ 0.781 → 0.791).
  Folds are fewer when the rarer class is small, so that each holds at least
  two of it (with K = 5: 5 positives give 2 folds, not 5 folds of one).
  Builds decide each fold at the build's operating point on the catalog
  (``threshold="corpus"``): a fold's model flags the same share of a fixed
  catalog sample as the model trained on every label flags at its prior. A
  fold's prior-threshold decision flags a share of the catalog that varies with
  its 80% of the labels; at one share the folds compare rankings, and that
  share carries how rare the label is (issue 13: Spearman ρ of the score with
  held-out AP 0.657 → 0.706 on benchmark runs not used to choose it).
  With near-duplicate groups (``groups``), every group stays in one fold, so a
  copy of a held-out shot is never in the training part (that would score a
  memorised example as a generalisation); see :func:`stratified_group_folds`.
- **how far to trust it**: the folds can only see the labelled shots. Labels found by search cover shots like
  the query, so a label with few from a uniform sample scores models that find nothing elsewhere as if they
  worked. :func:`sample_caveat` flags a build below :data:`MIN_SAMPLE_SHARE` of such labels.
- **data diversity**: how well the labelled shots cover the corpus. Per class,
  count the labelled shots in each of the k corpus clusters, cap each count at
  s, sum both classes and divide by 2·k·s; 1.0 means every cluster has at least
  s positives and s negatives.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from annotator_core.classifier import Centring, Classifier, check_training_data, fit_logistic, l2_rows
from annotator_core.errors import ValidationFailed
from annotator_core.folds import fold_count, smaller_class, stratified_folds, stratified_group_folds

QUALITY_PERCENTILE = 25.0
SPREAD_PERCENTILES = (10.0, 90.0)
# Folds of the quality cross-validation builds use (settings.cv_folds). The paper's K = 5 left 20 labels
# folds of four shots; two folds of ten, repeated, ranked the benchmark's points by held-out AP better
# (issue 13: ρ 0.742 / 0.772 / 0.763 / 0.758 for K = 5 / 2 / 3 / 4 on the runs used to choose).
QUALITY_FOLDS = 2
# Repeats of the K-fold split: enough that about this many labelled rows are held out in all, within
# [MIN_REPEATS, MAX_REPEATS]. 20 labels get 40 repeats (80 fits of 10 rows); 400 or more get four
# (8 fits of half the labels: the row-fits of one split of five folds).
REPEAT_ROWS = 1600
MIN_REPEATS = 4
MAX_REPEATS = 40
# Pseudo-counts of a fold's true-positive and true-negative rates: each rate is its posterior mean under a
# Beta(½, ½) (Jeffreys) prior, (hits + ½) / (held-out rows of the class + 1). A fold holding two positives
# can then read at most 0.83 on them rather than a perfect 1, and a fold of hundreds barely moves. Raw rates
# of a few held-out shots jump in steps of ½ or ⅓, and those steps were most of the score's noise between
# labels of the same test AP (issue 13: Spearman ρ with held-out AP 0.781 → 0.791 on all 12 benchmark runs,
# 0.781 → 0.792 on the runs chosen on and 0.782 → 0.791 on the other ten; 0.5%: 0.753 → 0.769).
RATE_PRIOR = 0.5
# Catalog rows a build's folds are thresholded on (threshold="corpus"): an evenly strided sample, the same every build.
REFERENCE_ROWS = 2048
MAX_SHARE = 0.5  # the most of the catalog a fold is made to flag (see corpus_share)
Threshold = Literal["half", "prior", "corpus"]
# Share of a build's labels from a uniform sample below which its score comes with a caveat. On search-found
# labels with some random ones among them (benchmarks/quality_caveat.py, 6 runs × 10 labels × 3 prevalences,
# the points a build shows), the models were useless (test AP < 0.1) at 40% of the points with none, 10–18%
# with a share under 10%, 6% from 10 to 20% and 1% above, while the score read about 0.7 at every share. The
# loop's own labels (the labelling cycle draws a random page in six: 17% and more) were useless at 1–2%, so a
# higher bar would warn annotators who follow the loop.
MIN_SAMPLE_SHARE = 0.10


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean of the true-positive rate and the true-negative rate (0.5 is chance)."""
    return estimated_balanced_accuracy(y_true, y_pred, prior=0.0)


def estimated_balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray, *, prior: float = RATE_PRIOR) -> float:
    """Balanced accuracy with each class's rate estimated as (hits + prior) / (rows + 2·prior).

    ``prior`` 0 is :func:`balanced_accuracy`; the default ½ is the posterior mean under a Jeffreys prior
    (:data:`RATE_PRIOR`), which keeps a fold of a few held-out shots from reading 0 or 1.
    """
    _check_rate_prior(prior)
    truth = np.asarray(y_true, dtype=bool)
    pred = np.asarray(y_pred, dtype=bool)
    rates = []
    for cls in (True, False):
        members = truth == cls
        count = int(members.sum())
        if count:
            hits = int(np.sum(pred[members] == cls))
            rates.append((hits + prior) / (count + 2.0 * prior))
    return float(np.mean(rates))


def _check_rate_prior(prior: float) -> None:
    if not prior >= 0.0:
        raise ValidationFailed(f"rate prior must be a pseudo-count of at least 0, got {prior}; 0.5 is Jeffreys'.")


def cross_validated_accuracies(
    x: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = QUALITY_FOLDS,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 200,
    centre: np.ndarray | None = None,
    rate_prior: float = RATE_PRIOR,
) -> np.ndarray:
    """Balanced accuracy of each stratified fold's held-out part, float64 [folds].

    ``folds`` is lowered to half the size of the smaller class (at least 2) when that is smaller,
    so each fold holds two of the rarer class (:func:`fold_count`). ``centre`` centres the rows as
    :func:`~annotator_core.classifier.train` does. ``rate_prior``: see :func:`estimated_balanced_accuracy`
    (0: the plain balanced accuracy of each fold).
    """
    return repeated_cv_accuracies(
        x, y, folds=folds, seed=seed, C=C, max_iter=max_iter, centre=centre, repeats=1, rate_prior=rate_prior
    )[0]


def repeated_cv_accuracies(
    x: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = QUALITY_FOLDS,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 200,
    centre: np.ndarray | None = None,
    repeats: int = 1,
    threshold: Threshold = "half",
    groups: np.ndarray | None = None,
    reference: np.ndarray | None = None,
    evaluate: np.ndarray | None = None,
    rate_prior: float = RATE_PRIOR,
) -> np.ndarray:
    """:func:`cross_validated_accuracies` over ``repeats`` splits, float64 [repeats, folds].

    Repeat r splits with seed ``seed + 7919·r`` (repeat 0 is the single split); each fit
    warm-starts from the previous fold's solution. ``threshold="half"`` predicts positive at
    P > 0.5; ``"prior"`` at P above the training fold's share of positives — the decision that
    maximises balanced accuracy for calibrated scores, so a good ranker trained on 5 positives and
    995 negatives is not scored 0.5 for predicting "negative" everywhere. ``"corpus"`` needs
    ``reference`` (unit rows sampled from the catalog): each fold flags the share of those rows that
    the model trained on all rows flags at the prior (see :func:`corpus_share`). ``evaluate`` (one bool
    per row): the rows each fold's balanced accuracy is measured on; every row still trains (see
    :func:`model_quality_estimate`).
    """
    return _cross_validate(
        x,
        y,
        folds=folds,
        seed=seed,
        C=C,
        max_iter=max_iter,
        centre=centre,
        repeats=repeats,
        threshold=threshold,
        groups=groups,
        reference=reference,
        evaluate=evaluate,
        rate_prior=rate_prior,
    )[0]


def _cross_validate(
    x: np.ndarray,
    y: np.ndarray,
    *,
    folds: int,
    seed: int,
    C: float,
    max_iter: int = 200,
    centre: np.ndarray | None,
    repeats: int,
    threshold: Threshold = "half",
    groups: np.ndarray | None = None,
    warm_start: Classifier | None = None,
    reference: np.ndarray | None = None,
    evaluate: np.ndarray | None = None,
    rate_prior: float = RATE_PRIOR,
) -> tuple[np.ndarray, np.ndarray, float]:
    """Fold accuracies [repeats, folds], the first split's out-of-fold log-odds [n], and the share of
    ``reference`` the folds flag (``threshold="corpus"``; NaN otherwise).

    ``groups`` (one key per row) keeps each near-duplicate group in one fold; when every key is
    distinct the split is the plain stratified one, so a corpus without duplicates scores as before.
    ``warm_start`` (the model trained on all rows) starts every fold's fit; it shares 80% of each
    fold's rows, so the solver needs fewer iterations than from the previous fold's solution (1,000
    labels × 512: 25/11/17/32/10 → 7/8/8/8/9). Fold scores agree within the solver's tolerance.
    ``evaluate``: a fold's balanced accuracy counts only these of its held-out rows, or all of them
    when those lack a class.
    """
    if repeats < 1:
        raise ValidationFailed(f"repeats must be at least 1, got {repeats}.")
    _check_rate_prior(rate_prior)  # before any fit, not at the first fold's score
    x_unit, labels = check_training_data(x, y)
    counted = _evaluation_mask(evaluate, labels.shape[0])
    keys = None if groups is None else np.asarray(groups).ravel()
    if keys is not None and np.unique(keys).shape[0] == keys.shape[0]:
        keys = None
    smaller = smaller_class(labels, keys)
    if folds < 2:
        raise ValidationFailed(f"folds must be at least 2, got {folds}.")
    if smaller < 2:
        what = "near-duplicate groups" if keys is not None else "examples"
        raise ValidationFailed(
            f"cross-validation needs at least 2 {what} of each class, got {smaller} of the smaller one; "
            "label more shots of that class."
        )
    folds = fold_count(smaller, folds=folds)
    centring = Centring.of(centre, int(x_unit.shape[1]))
    rows = centring.apply(x_unit)
    scores = np.empty((repeats, folds), dtype=np.float64)
    out_of_fold = np.empty(labels.shape[0], dtype=np.float64)
    full = None if warm_start is None else centring.unfold(warm_start)
    share, catalog = float("nan"), None
    if threshold == "corpus":
        catalog = _reference_rows(reference, int(x_unit.shape[1]))
        if full is None:
            coef, intercept, _ = fit_logistic(rows, labels, C=C, seed=seed, max_iter=max_iter)
            full = np.append(coef.astype(np.float64), intercept)
        n_pos = int(labels.sum())
        cut = float(np.log(n_pos / (labels.shape[0] - n_pos)))
        share = corpus_share(_catalog_logits(catalog, centring, full[:-1], full[-1]), cut)
    start: np.ndarray | None = full
    for r in range(repeats):
        split_seed = seed + 7919 * r
        split = (
            stratified_folds(labels, folds=folds, seed=split_seed)
            if keys is None
            else stratified_group_folds(labels, keys, folds=folds, seed=split_seed)
        )
        for f, test_idx in enumerate(split):
            train_mask = np.ones(labels.shape[0], dtype=bool)
            train_mask[test_idx] = False
            coef, intercept, _ = fit_logistic(
                rows[train_mask], labels[train_mask], C=C, seed=seed, max_iter=max_iter, start=start
            )
            start = np.append(coef.astype(np.float64), intercept) if full is None else full
            logits = rows[test_idx] @ coef + intercept
            if r == 0:
                out_of_fold[test_idx] = logits
            cut = 0.0
            if threshold == "prior":  # log-odds of the training fold's class ratio
                n_pos = int(labels[train_mask].sum())
                cut = float(np.log(n_pos / (int(train_mask.sum()) - n_pos)))
            elif catalog is not None:  # flag the build's share of the catalog sample
                cut = float(np.quantile(_catalog_logits(catalog, centring, coef, intercept), 1.0 - share))
            held, flagged = labels[test_idx], logits > cut
            if counted is not None:
                kept = counted[test_idx]
                if held[kept].any() and not held[kept].all():
                    held, flagged = held[kept], flagged[kept]
            scores[r, f] = estimated_balanced_accuracy(held, flagged, prior=rate_prior)
    return scores, out_of_fold, share


def _evaluation_mask(evaluate: np.ndarray | None, n: int) -> np.ndarray | None:
    """``evaluate`` as a bool mask over the n labelled rows (None: every row counts)."""
    if evaluate is None:
        return None
    mask = np.asarray(evaluate)
    if mask.dtype != bool or mask.shape != (n,):
        raise ValidationFailed(
            f"evaluate must be one bool per labelled row ({n},), got {mask.dtype} {mask.shape}; "
            "pass True for the rows a fold's score should count."
        )
    return mask


def corpus_share(reference_logits: np.ndarray, cut: float) -> float:
    """Share of the catalog sample a model flags (log-odds above ``cut``), kept within [1/m, 1/2].

    A model that flags none of m sampled rows still flags its top one, so a fold's threshold is a
    quantile inside the sample. At most half: early builds whose labels are mostly search-found
    positives flag most of the catalog at their prior, and deciding their folds there scored good
    rankers low (issue 13: ρ(quality, test AP) 0.675 without the cap, 0.706 with it; a label on more
    than half the shots is decided at the catalog's median).
    """
    m = int(reference_logits.shape[0])
    flagged = float(np.mean(reference_logits > cut))
    return float(np.clip(flagged, 1.0 / m, MAX_SHARE))


def _catalog_logits(catalog: np.ndarray, centring: Centring, coef: np.ndarray, intercept: float) -> np.ndarray:
    """Log-odds of the unit catalog rows under a model fitted on centred rows (the centring folded into it,
    so the catalog is never copied: one matrix-vector product)."""
    w, b = centring.fold(coef, intercept)
    return catalog @ w + b


def _reference_rows(reference: np.ndarray | None, dim: int) -> np.ndarray:
    """The catalog sample as unit rows (float32 [m, dim]); rows already unit, as stored, are not copied."""
    if reference is None:
        raise ValidationFailed(
            'threshold="corpus" needs reference: unit rows sampled from the catalog (e.g. 2048, evenly strided).'
        )
    arr = np.asarray(reference)
    if arr.ndim != 2 or arr.shape[0] < 2 or arr.shape[1] != dim:
        raise ValidationFailed(
            f"reference must be an [m, {dim}] matrix of catalog vectors with m >= 2, got shape {arr.shape}."
        )
    if not np.all(np.isfinite(arr)):
        raise ValidationFailed("reference contains NaN or infinite values; re-embed the affected shots.")
    rows = np.asarray(arr, dtype=np.float32)
    norms = np.einsum("ij,ij->i", rows, rows)
    return rows if np.all(np.abs(norms - 1.0) < 1e-4) else l2_rows(rows)


@dataclass(frozen=True)
class Quality:
    """Model quality with its spread: what the header shows, e.g. "0.74, folds 0.60–0.90"."""

    value: float  # mean over repeats of the 25th percentile of the folds' balanced accuracy (RATE_PRIOR-estimated)
    low: float  # 10th percentile of every fold's balanced accuracy
    high: float  # 90th percentile
    folds: int
    repeats: int
    # Share of the catalog sample the build's model flags, at which every fold was decided (threshold="corpus").
    flagged: float = float("nan")
    # Log-odds of each labelled row from the first split's model that did not see it, float64 [n].
    out_of_fold: np.ndarray = field(default_factory=lambda: np.empty(0), repr=False, compare=False)

    def as_dict(self) -> dict[str, float | int]:
        out: dict[str, float | int] = {
            "value": self.value,
            "low": self.low,
            "high": self.high,
            "folds": self.folds,
            "repeats": self.repeats,
        }
        if np.isfinite(self.flagged):
            out["flagged"] = self.flagged
        return out


def quality_repeats(n_labelled: int) -> int:
    """How often to repeat the K-fold split for ``n_labelled`` labels (fewer labels, more repeats)."""
    return int(min(MAX_REPEATS, max(MIN_REPEATS, -(-REPEAT_ROWS // max(1, n_labelled)))))


def model_quality_estimate(
    x: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = QUALITY_FOLDS,
    seed: int = 0,
    C: float = 1.0,
    centre: np.ndarray | None = None,
    repeats: int | None = None,
    threshold: Threshold = "half",
    groups: np.ndarray | None = None,
    warm_start: Classifier | None = None,
    reference: np.ndarray | None = None,
    evaluate: np.ndarray | None = None,
    rate_prior: float = RATE_PRIOR,
) -> Quality:
    """Model quality (paper §3.1.1) over repeated stratified K-fold, with the folds' spread.

    ``repeats=None`` picks :func:`quality_repeats` for the number of labels; ``threshold`` is
    explained at :func:`repeated_cv_accuracies` (builds use ``"corpus"``). ``groups`` (one key per
    row, e.g. :meth:`~annotator_core.duplicates.DuplicateGroups.fold_groups`) makes the folds
    group-aware: no near-duplicate group is split across folds. ``warm_start``: the build's model
    trained on all the rows, which starts every fold's fit (fewer solver iterations). ``reference``:
    catalog rows for ``threshold="corpus"`` (builds pass :data:`REFERENCE_ROWS` evenly strided rows).
    ``evaluate``: one bool per row, the rows a fold's balanced accuracy counts (all train). Builds leave
    out the shots the borderline feed picked: an earlier model picked them for being hard to
    call, so counting them scores a model on its hardest cases and the score falls as the loop works
    (issue 13: ρ with held-out AP 0.64 → 0.74 on the replays).
    """
    labels = np.asarray(y)
    n_repeats = quality_repeats(labels.shape[0]) if repeats is None else int(repeats)
    accuracies, out_of_fold, flagged = _cross_validate(
        x,
        y,
        folds=folds,
        seed=seed,
        C=C,
        centre=centre,
        repeats=n_repeats,
        threshold=threshold,
        groups=groups,
        warm_start=warm_start,
        reference=reference,
        evaluate=evaluate,
        rate_prior=rate_prior,
    )
    value = float(np.mean(np.percentile(accuracies, QUALITY_PERCENTILE, axis=1)))
    low, high = np.percentile(accuracies, SPREAD_PERCENTILES)
    return Quality(value, float(low), float(high), int(accuracies.shape[1]), n_repeats, flagged, out_of_fold)


def model_quality(
    x: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = QUALITY_FOLDS,
    seed: int = 0,
    C: float = 1.0,
    centre: np.ndarray | None = None,
    repeats: int | None = None,
    threshold: Threshold = "half",
    groups: np.ndarray | None = None,
    warm_start: Classifier | None = None,
    reference: np.ndarray | None = None,
    evaluate: np.ndarray | None = None,
    rate_prior: float = RATE_PRIOR,
) -> float:
    """25th percentile of balanced accuracy over stratified K-fold cross-validation (paper §3.1.1).

    The value of :func:`model_quality_estimate` (averaged over repeated splits when labels are few).
    """
    estimate = model_quality_estimate(
        x,
        y,
        folds=folds,
        seed=seed,
        C=C,
        centre=centre,
        repeats=repeats,
        threshold=threshold,
        groups=groups,
        warm_start=warm_start,
        reference=reference,
        evaluate=evaluate,
        rate_prior=rate_prior,
    )
    return estimate.value


def sample_share(label_sources: Mapping[str, int], *, uniform: Collection[str]) -> dict[str, float | int]:
    """How many of a build's labels came, or may have come, from a uniform sample of the catalog.

    ``label_sources``: labelled shots per source (where each was picked); ``uniform``: the sources that are, or
    may be, a uniform sample (the random feed; labels of unknown origin, which are given the benefit of the
    doubt). JSON-ready: ``{"from_sample": k, "labels": n, "share": k / n}`` (share 0 for no labels).
    """
    counts = {str(source): int(n) for source, n in label_sources.items()}
    if any(n < 0 for n in counts.values()):
        raise ValidationFailed(f"label counts must be at least 0, got {counts}.")
    labels = sum(counts.values())
    from_sample = sum(n for source, n in counts.items() if source in uniform)
    return {"from_sample": from_sample, "labels": labels, "share": from_sample / labels if labels else 0.0}


def sample_caveat(
    label_sources: Mapping[str, int], *, uniform: Collection[str], min_share: float = MIN_SAMPLE_SHARE
) -> dict[str, float | int] | None:
    """The caveat a build's quality carries when under ``min_share`` of its labels came from a uniform sample,
    else None: :func:`sample_share`'s counts with ``"min_share"``, JSON-ready."""
    if not 0.0 < min_share <= 1.0:
        raise ValidationFailed(f"min_share must be in (0, 1], got {min_share}; {MIN_SAMPLE_SHARE} is the default.")
    share = sample_share(label_sources, uniform=uniform)
    if share["labels"] == 0 or share["from_sample"] >= min_share * share["labels"]:
        return None
    return {**share, "min_share": min_share}


def cluster_counts(clusters: np.ndarray, *, k: int) -> np.ndarray:
    """Labelled shots per cluster, int64 [k]; ids below 0 (not clustered yet) are not counted."""
    ids = np.asarray(clusters, dtype=np.int64).ravel()
    if ids.size and ids.max() >= k:
        raise ValidationFailed(
            f"cluster id {int(ids.max())} is out of range for k={k} clusters; "
            "re-run clustering or set n_clusters to the k it was run with."
        )
    return np.bincount(ids[ids >= 0], minlength=k).astype(np.int64)


def data_diversity(pos_clusters: np.ndarray, neg_clusters: np.ndarray, *, k: int = 10, cap: int = 10) -> float:
    """Coverage of the k corpus clusters by labelled positives and negatives, in [0, 1] (paper §3.1.2).

    ``pos_clusters`` / ``neg_clusters`` hold the cluster id of each labelled positive / negative shot.
    """
    if k < 1 or cap < 1:
        raise ValidationFailed(f"k and cap must be at least 1, got k={k}, cap={cap}.")
    pos = np.minimum(cluster_counts(pos_clusters, k=k), cap)
    neg = np.minimum(cluster_counts(neg_clusters, k=k), cap)
    return float(pos.sum() + neg.sum()) / float(2 * k * cap)
