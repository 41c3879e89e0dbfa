"""IVF partitions of the compressed corpus: centroids fitted on a sample, every row assigned to its nearest.

A partition is the unit a build prunes (its rows lie within ``radius`` of its
centroid, so ``w·x`` of every row lies within ``w·c ± ‖w‖·radius``) and the unit
of a block scored at once. About √N partitions (at most :data:`MAX_PARTITIONS`,
whose assignment pass costs N·P·dim multiply-adds: 2.6e12 at 10M × 512 × 512).
Vectors are unit length, so the nearest centroid by dot product is the nearest
by Euclidean distance once centroids are normalised too.

Plain k-means leaves partitions very uneven on shot embeddings (at 10M scene-
structured shots with 32 sample rows a centroid: 11 to 211k rows against a mean
of 9.8k), and a search that meets a huge partition first spends its whole row
budget there. :func:`balance` then splits the largest partition in two and
folds the smallest into its neighbours, keeping the count, until none holds
more than :data:`BALANCE_CAP` times the mean. On 2M scene-structured shots in
205 partitions: largest 113k → 31k rows, smallest 38 → 1.2k; a search reading
32 mean partitions' worth of rows found the same neighbours either way (the
halves of a split group are both near its queries). What it buys is an even
unit of work for a probe and for a build's shards.
"""

from __future__ import annotations

import math

import numpy as np

MAX_PARTITIONS = 1024
FIT_ROWS_PER_PARTITION = 128
LLOYD_ITERATIONS = 10
BALANCE_CAP = 1.5  # largest partition / mean partition, on the sample
SPLIT_ITERATIONS = 6
ASSIGN_CHUNK = 32_768


def partitions_for(rows: int, *, configured: int = 0) -> int:
    """Partitions for ``rows`` shots: the setting, else ~√N capped at :data:`MAX_PARTITIONS`."""
    if configured > 0:
        return max(1, min(configured, rows or 1))
    return max(1, min(MAX_PARTITIONS, math.isqrt(max(rows, 1))))


def fit_centroids(sample: np.ndarray, *, partitions: int, seed: int = 0, cap: float = BALANCE_CAP) -> np.ndarray:
    """Unit-length centroids [partitions, dim]: Lloyd iterations (spherical k-means) on ``sample``, then
    :func:`balance` to ``cap`` times the mean partition (``cap`` ≤ 0: no balancing)."""
    rng = np.random.default_rng(seed)
    x = np.ascontiguousarray(sample, dtype=np.float32)
    k = max(1, min(partitions, x.shape[0]))
    centroids = x[rng.choice(x.shape[0], size=k, replace=False)].copy()
    for _ in range(LLOYD_ITERATIONS):
        nearest = assign(x, centroids)
        sums = np.zeros_like(centroids)
        np.add.at(sums, nearest, x)
        empty = np.bincount(nearest, minlength=k) == 0
        sums[empty] = x[rng.choice(x.shape[0], size=int(empty.sum()))]  # reseed empty partitions
        centroids = _unit(sums)
    return balance(x, centroids, cap=cap, seed=seed) if cap > 0 else centroids


def balance(x: np.ndarray, centroids: np.ndarray, *, cap: float = BALANCE_CAP, seed: int = 0) -> np.ndarray:
    """``centroids`` with no partition of ``x`` above ``cap`` × the mean, as far as splitting allows.

    Each round folds the smallest partition's rows into their next-nearest centroids and reuses its
    centroid to split the largest in two (spherical 2-means on its rows); it stops when the largest is
    within ``cap`` × the mean, or when splitting would make it no better than the smallest (at most
    ``4 · partitions`` rounds). The count of partitions never changes.
    """
    rng = np.random.default_rng(seed)
    x = np.ascontiguousarray(x, dtype=np.float32)
    centroids = np.array(centroids, dtype=np.float32, copy=True)
    k = centroids.shape[0]
    if k < 2 or x.shape[0] < 2:
        return centroids
    nearest = assign(x, centroids)
    counts = np.bincount(nearest, minlength=k)
    limit = cap * x.shape[0] / k
    for _ in range(4 * k):
        big, small = int(np.argmax(counts)), int(np.argmin(counts))
        if counts[big] <= limit or 2 * counts[small] >= counts[big]:
            break
        folded = np.flatnonzero(nearest == small)
        if folded.shape[0]:
            sims = x[folded] @ centroids.T
            sims[:, [small, big]] = -np.inf  # the big one is being re-split: its rows are decided below
            nearest[folded] = np.argmax(sims, axis=1)
        members = np.flatnonzero(nearest == big)
        halves, side = _two_means(x[members], rng)
        centroids[big], centroids[small] = halves
        nearest[members[side == 1]] = small
        counts = np.bincount(nearest, minlength=k)
    return centroids


def _two_means(x: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two unit centroids of ``x`` (spherical 2-means from two random rows) and each row's side (0 or 1)."""
    centroids = x[rng.choice(x.shape[0], size=2, replace=False)].copy()
    for _ in range(SPLIT_ITERATIONS):
        side = np.argmax(x @ centroids.T, axis=1)
        for j in (0, 1):
            if (side == j).any():
                centroids[j] = x[side == j].sum(axis=0)
        centroids = _unit(centroids)
    return centroids, np.argmax(x @ centroids.T, axis=1)


def assign(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Nearest centroid (largest dot product) of each row, int32, in chunks so memory stays bounded."""
    out = np.empty(x.shape[0], dtype=np.int32)
    for start in range(0, x.shape[0], ASSIGN_CHUNK):
        block = np.asarray(x[start : start + ASSIGN_CHUNK], dtype=np.float32)
        out[start : start + block.shape[0]] = np.argmax(block @ centroids.T, axis=1)
    return out


def _unit(x: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)
