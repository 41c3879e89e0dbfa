"""The two scores shown at every build (paper §3.1): model quality and data diversity.

Pure functions, arrays in and a float out, no I/O.

- **model quality**: the 25th percentile of balanced accuracy over stratified
  K-fold cross-validation. A low quantile rather than the mean, so one lucky
  fold does not make a label look finished.
- **data diversity**: how well the labelled shots cover the corpus. Per class,
  count the labelled shots in each of the k corpus clusters, cap each count at
  s, sum both classes and divide by 2·k·s; 1.0 means every cluster has at least
  s positives and s negatives.
"""

from __future__ import annotations

import numpy as np

from annotator_core.classifier import check_training_data, fit_logistic
from annotator_core.errors import ValidationFailed

QUALITY_PERCENTILE = 25.0


def balanced_accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean of the true-positive rate and the true-negative rate (0.5 is chance)."""
    truth = np.asarray(y_true, dtype=bool)
    pred = np.asarray(y_pred, dtype=bool)
    rates = []
    for cls in (True, False):
        members = truth == cls
        if members.any():
            rates.append(float(np.mean(pred[members] == cls)))
    return float(np.mean(rates))


def stratified_folds(y: np.ndarray, *, folds: int, seed: int = 0) -> list[np.ndarray]:
    """Test-index arrays of ``folds`` stratified folds (each class dealt round robin after a shuffle)."""
    labels = np.asarray(y, dtype=bool)
    rng = np.random.default_rng(seed)
    assignment = np.empty(labels.shape[0], dtype=np.int64)
    for cls in (True, False):
        members = np.flatnonzero(labels == cls)
        rng.shuffle(members)
        # Start the second class where the first ended, so fold sizes differ by at most one.
        offset = 0 if cls else int(labels.sum()) % folds
        assignment[members] = (np.arange(members.shape[0]) + offset) % folds
    return [np.flatnonzero(assignment == f) for f in range(folds)]


def cross_validated_accuracies(
    x: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    C: float = 1.0,
    max_iter: int = 200,
) -> np.ndarray:
    """Balanced accuracy of each stratified fold's held-out part, float64 [folds].

    ``folds`` is lowered to the size of the smaller class when that is smaller (each fold needs
    one of each).
    """
    x_unit, labels = check_training_data(x, y)
    smaller = int(min(labels.sum(), labels.shape[0] - labels.sum()))
    if folds < 2:
        raise ValidationFailed(f"folds must be at least 2, got {folds}.")
    if smaller < 2:
        raise ValidationFailed(
            f"cross-validation needs at least 2 examples of each class, got {smaller} of the smaller one; "
            "label more shots of that class."
        )
    folds = min(folds, smaller)
    scores = []
    for test_idx in stratified_folds(labels, folds=folds, seed=seed):
        train_mask = np.ones(labels.shape[0], dtype=bool)
        train_mask[test_idx] = False
        coef, intercept, _ = fit_logistic(x_unit[train_mask], labels[train_mask], C=C, seed=seed, max_iter=max_iter)
        predicted = (x_unit[test_idx] @ coef + intercept) > 0
        scores.append(balanced_accuracy(labels[test_idx], predicted))
    return np.asarray(scores, dtype=np.float64)


def model_quality(
    x: np.ndarray,
    y: np.ndarray,
    *,
    folds: int = 5,
    seed: int = 0,
    C: float = 1.0,
) -> float:
    """25th percentile of balanced accuracy over stratified K-fold cross-validation (paper §3.1.1)."""
    accuracies = cross_validated_accuracies(x, y, folds=folds, seed=seed, C=C)
    return float(np.percentile(accuracies, QUALITY_PERCENTILE))


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
