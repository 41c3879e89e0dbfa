"""Relevance feedback: the query behind "more like my positives" (a label's annotations as one search vector).

Pure functions, arrays in and a vector out, no I/O; the workspace reads the annotations and vectors.

The query is the direction of the label's own classifier, fitted to its annotations so far exactly as a build
fits it (centred on the labelled rows' mean, the build's C). A linear model's log-odds on unit rows are
x̂ · w + b, so the unlabelled shots it ranks highest are the ones nearest unit(w): the search index answers it
like any other vector, before the first build and between builds. With positives only it is their mean
direction. Rocchio's query (the positives' mean minus half the negatives' mean, :func:`rocchio_query`) was the
query until 2026-12-07; the benchmark keeps it for comparison (``--like-query rocchio``, issue 13).
"""

from __future__ import annotations

import numpy as np

from annotator_core.classifier import l2_rows, train, unit_mean
from annotator_core.errors import ValidationFailed

# Rocchio's beta: how much of the negatives' mean :func:`rocchio_query` subtracts. Chosen on runs 0-5 of the
# sample-efficiency replay among 0, 0.25 and 0.5 (with 1-3 positives, re-ranked each page), confirmed on runs 6-11.
LIKE_NEGATIVE_WEIGHT = 0.5


def like_positives(positives: np.ndarray, negatives: np.ndarray, *, C: float) -> np.ndarray:
    """The query of "more like my positives", unit float32 [dim]: the direction of a logistic regression fitted
    to ``positives`` against ``negatives`` as a build fits it (``C``: the build's ``classifier_c``), or the
    positives' mean direction when nothing is labelled negative yet.

    A model of the labels ranks shots by what separates the positives from the negatives labelled so far,
    where a mean of the positives ranks by what they share, including what the negatives share too. On the
    sample-efficiency replays it finds more positives in the same number of labels (issue 13, benchmarks/README).
    When nothing separates them (every negative a copy of every positive) it is the positives' mean direction too.
    """
    pos = _positive_rows(positives)
    neg = _rows(negatives, "negatives", dim=pos.shape[1])
    if neg.shape[0] == 0:
        return rocchio_query(pos, neg, beta=0.0)
    x = np.concatenate([pos, neg])
    y = np.concatenate([np.ones(pos.shape[0], dtype=bool), np.zeros(neg.shape[0], dtype=bool)])
    weights = train(x, y, C=C, centre=unit_mean(x)).coef.astype(np.float64)
    norm = float(np.linalg.norm(weights))
    if not np.isfinite(norm) or norm == 0.0:
        return rocchio_query(pos, neg, beta=0.0)
    return (weights / norm).astype(np.float32)


def rocchio_query(positives: np.ndarray, negatives: np.ndarray, *, beta: float = LIKE_NEGATIVE_WEIGHT) -> np.ndarray:
    """Rocchio's relevance-feedback query: unit(mean of the positives − beta · mean of the negatives), float32 [dim].

    Every row is normalised first, so a long vector does not dominate.
    """
    pos = _positive_rows(positives)
    query = l2_rows(pos).mean(axis=0, dtype=np.float64)
    neg = _rows(negatives, "negatives", dim=pos.shape[1])
    if neg.shape[0]:
        query = query - beta * l2_rows(neg).mean(axis=0, dtype=np.float64)
    norm = float(np.linalg.norm(query))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValidationFailed("the positives' and negatives' means cancel out; label more positives.")
    return (query / norm).astype(np.float32)


def _positive_rows(positives: np.ndarray) -> np.ndarray:
    """:func:`_rows` of the positives, which a query needs at least one of."""
    pos = _rows(positives, "positives")
    if pos.shape[0] == 0:
        raise ValidationFailed(f"like_positives needs at least one positive vector, got shape {pos.shape}.")
    return pos


def _rows(vectors: np.ndarray, what: str, *, dim: int | None = None) -> np.ndarray:
    """``vectors`` as a float32 [n, dim] matrix (an empty one for no rows), or :class:`ValidationFailed`."""
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.size == 0:
        return np.empty((0, dim or (arr.shape[-1] if arr.ndim == 2 else 0)), dtype=np.float32)
    if dim is not None:
        arr = arr.reshape(-1, dim) if arr.ndim == 1 else arr
    if arr.ndim != 2 or (dim is not None and arr.shape[1] != dim):
        raise ValidationFailed(f"{what} must be an [n, {dim or 'dim'}] matrix of shot vectors, got shape {arr.shape}.")
    if not np.all(np.isfinite(arr)):
        raise ValidationFailed(f"{what} contain NaN or infinite values; re-embed the affected shots.")
    return arr
