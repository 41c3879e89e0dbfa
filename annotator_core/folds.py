"""Stratified K-fold splits of a label's annotations, for the model-quality score (annotator_core.metrics).

Pure functions: labels (and near-duplicate group keys) in, test-index arrays out, no I/O.
"""

from __future__ import annotations

import numpy as np

from annotator_core.errors import ValidationFailed

# Held-out rows of the rarer class per fold, at least. With one, a fold's balanced accuracy is 0.5·TNR or
# 0.5 + 0.5·TNR, so its 25th percentile read ~0.5 for good rankers (issue 13: 11 of 1,590 benchmark points
# with test AUC >= 0.85 showed <= 0.55; 6 with two per fold).
MIN_RARER_PER_FOLD = 2


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


def stratified_group_folds(y: np.ndarray, groups: np.ndarray, *, folds: int, seed: int = 0) -> list[np.ndarray]:
    """Test-index arrays of ``folds`` folds that never split a group, each class spread as evenly as groups allow.

    ``groups`` holds one key per row (equal keys: one near-duplicate group). Groups are shuffled by
    ``seed``, then dealt largest first, each to the fold where it adds the least to the fold's share
    of positives plus its share of negatives (ties to the smaller fold, then the lower number).
    """
    labels = np.asarray(y, dtype=bool)
    keys = np.asarray(groups)
    if keys.shape != labels.shape:
        raise ValidationFailed(f"groups has shape {keys.shape}; pass one group key per labelled row {labels.shape}.")
    _, group = np.unique(keys, return_inverse=True)
    group = group.ravel()
    n_groups = int(group.max()) + 1 if group.shape[0] else 0
    pos = np.bincount(group, weights=labels, minlength=n_groups)
    size = np.bincount(group, minlength=n_groups).astype(np.float64)
    neg = size - pos
    total_pos, total_neg = max(1.0, float(pos.sum())), max(1.0, float(neg.sum()))
    order = np.random.default_rng(seed).permutation(n_groups)
    order = order[np.argsort(-size[order], kind="stable")]
    fold_pos, fold_neg, fold_size = np.zeros(folds), np.zeros(folds), np.zeros(folds)
    fold_of = np.empty(n_groups, dtype=np.int64)
    for g in order.tolist():
        cost = (fold_pos + pos[g]) / total_pos * (pos[g] > 0) + (fold_neg + neg[g]) / total_neg * (neg[g] > 0)
        best = int(np.lexsort((np.arange(folds), fold_size, cost))[0])
        fold_of[g] = best
        fold_pos[best] += pos[g]
        fold_neg[best] += neg[g]
        fold_size[best] += size[g]
    assignment = fold_of[group]
    return [np.flatnonzero(assignment == f) for f in range(folds)]


def fold_count(smaller: int, *, folds: int) -> int:
    """Folds used when the rarer class has ``smaller`` rows (or groups): ``folds``, fewer if that leaves a
    fold under :data:`MIN_RARER_PER_FOLD` of them, never under 2."""
    return max(2, min(folds, smaller // MIN_RARER_PER_FOLD))


def smaller_class(labels: np.ndarray, keys: np.ndarray | None) -> int:
    """Rows (or, with group keys, groups holding a row) of the rarer class: what bounds the folds."""
    if keys is None:
        return int(min(labels.sum(), labels.shape[0] - labels.sum()))
    with_pos = np.unique(keys[labels]).shape[0]
    with_neg = np.unique(keys[~labels]).shape[0]
    return int(min(with_pos, with_neg))
