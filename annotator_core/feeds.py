"""The four feeds shown after a build (paper §3.2), picked from the whole corpus's scores.

- ``top_positive``: highest scores first. Includes already-labelled shots, so
  annotators see what the model learned (the UI marks them).
- ``top_negative``: lowest scores first. Includes labelled shots, likewise.
- ``borderline``: smallest |score − 0.5| first; unlabelled shots only.
- ``random``: a uniform sample of unlabelled shots.

Every feed is found in linear time — a sampled threshold and one comparison
pass, then ``np.argpartition`` over the few survivors — and only the chosen
``size`` entries are sorted, so a corpus of millions of shots is never sorted.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from annotator_core.errors import ValidationFailed

FEEDS = ("top_positive", "top_negative", "borderline", "random")
# The source an annotation made from the borderline feed carries: an earlier model picked the shot for being
# hard to call, so model quality trains on it but does not score on it (metrics.model_quality_estimate).
BORDERLINE_SOURCE = "borderline"
# The feed to label a page of after each build, in turn (one page, then build again): borderline every other
# page, the other three between. Chosen among five orders on the sample-efficiency replays (runs 0-5) and
# confirmed on runs 6-11 (benchmarks/README.md, issue 13); the benchmark's simulated annotator follows it.
LABELLING_CYCLE = ("borderline", "random", "borderline", "top_positive", "borderline", "top_negative")
# Above this many shots, a sampled threshold narrows the selection before partitioning.
PREFILTER_MIN = 50_000
PREFILTER_SAMPLE = 8192


@dataclass(frozen=True)
class Feeds:
    """Row indices into the scored corpus, each in display order."""

    top_positive: np.ndarray
    top_negative: np.ndarray
    borderline: np.ndarray
    random: np.ndarray

    def as_dict(self) -> dict[str, np.ndarray]:
        return {name: getattr(self, name) for name in FEEDS}


def labelled_mask(labelled: np.ndarray, n: int) -> np.ndarray:
    """A bool mask [n] from either a bool mask or an array of row indices."""
    arr = np.asarray(labelled)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise ValidationFailed(f"labelled mask has shape {arr.shape}; expected ({n},) like the scores.")
        return arr
    mask = np.zeros(n, dtype=bool)
    if arr.size:
        idx = arr.astype(np.int64).ravel()
        if idx.min() < -n or idx.max() >= n:
            raise ValidationFailed(f"labelled holds row indices outside 0..{n - 1}; pass rows of the scores.")
        mask[idx] = True
    return mask


def _smallest(values: np.ndarray, size: int) -> np.ndarray:
    """Indices of the ``size`` smallest values, in ascending order.

    A strided sample estimates a threshold that about ``4 * size`` values fall under; one
    vectorised comparison keeps those, and only they are partitioned and sorted. Every value
    among the ``size`` smallest is at or under that threshold, so the answer is exact; when the
    estimate keeps too few, the whole array is partitioned instead.
    """
    n = values.shape[0]
    if size <= 0:
        return np.empty(0, dtype=np.int64)
    if size >= n:
        candidates = np.arange(n)
    else:
        candidates = np.empty(0, dtype=np.int64)
        if n > PREFILTER_MIN:
            sample = np.sort(values[:: max(1, n // PREFILTER_SAMPLE)])
            rank = min(sample.shape[0] - 1, int(np.ceil(4 * size * sample.shape[0] / n)) + 8)
            candidates = np.flatnonzero(values <= sample[rank])
        if candidates.shape[0] < size:
            candidates = np.argpartition(values, size - 1)[:size]
    order = np.lexsort((candidates, values[candidates]))[:size]
    return candidates[order].astype(np.int64)


def top_positive(scores: np.ndarray, *, size: int) -> np.ndarray:
    """Indices of the ``size`` highest scores, highest first."""
    return _smallest(-scores, min(size, scores.shape[0]))


def top_negative(scores: np.ndarray, *, size: int) -> np.ndarray:
    """Indices of the ``size`` lowest scores, lowest first."""
    return _smallest(scores, min(size, scores.shape[0]))


def borderline(scores: np.ndarray, *, size: int, exclude: np.ndarray | None = None) -> np.ndarray:
    """Indices of the ``size`` scores closest to 0.5, closest first, skipping rows in ``exclude``."""
    distance = np.abs(scores - np.float32(0.5))
    available = scores.shape[0]
    if exclude is not None:
        distance[exclude] = np.inf
        available -= int(exclude.sum())
    return _smallest(distance, min(size, available))


def random_unlabelled(n: int, *, size: int, exclude: np.ndarray | None = None, seed: int = 0) -> np.ndarray:
    """``size`` distinct row indices drawn uniformly from rows not in ``exclude``."""
    rng = np.random.default_rng(seed)
    pool = np.flatnonzero(~exclude) if exclude is not None else None
    available = n if pool is None else pool.shape[0]
    pick = rng.choice(available, size=min(size, available), replace=False).astype(np.int64)
    return pick if pool is None else pool[pick]


def build_feeds(scores: np.ndarray, *, labelled: np.ndarray, size: int = 50, seed: int = 0) -> Feeds:
    """The four feeds over ``scores`` (P(positive) per corpus row); ``labelled`` is a mask or row indices."""
    values = np.asarray(scores)
    if values.ndim != 1:
        raise ValidationFailed(f"scores must be one value per shot (1-d), got shape {values.shape}.")
    if size < 0:
        raise ValidationFailed(f"feed size must be non-negative, got {size}.")
    if values.dtype not in (np.float32, np.float64):
        values = values.astype(np.float32)
    if np.isnan(values).any():
        raise ValidationFailed("scores contain NaN; the classifier or the shot vectors are broken — rebuild.")
    n = values.shape[0]
    mask = labelled_mask(labelled, n)
    return Feeds(
        top_positive=top_positive(values, size=size),
        top_negative=top_negative(values, size=size),
        borderline=borderline(values, size=size, exclude=mask),
        random=random_unlabelled(n, size=size, exclude=mask, seed=seed),
    )


def next_feed(version: int) -> str:
    """The feed to label next after building ``version`` (1 is a label's first build): its turn in the cycle."""
    if version < 1:
        raise ValidationFailed(f"version {version} is not a build: versions count from 1")
    return LABELLING_CYCLE[(version - 1) % len(LABELLING_CYCLE)]
