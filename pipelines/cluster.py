"""k-means over every shot vector, written back as ``cluster_id`` (the data-diversity score counts per cluster).

Mini-batch k-means is fitted on a seeded sample of at most ``FIT_SAMPLE`` shots
and then assigns every shot, so 1M x 512 takes seconds, not minutes. Vectors
are unit length, so Euclidean k-means on them groups by cosine.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from sklearn.cluster import MiniBatchKMeans

from annotator_core.shot_store import ShotStore

FIT_SAMPLE = 200_000
ASSIGN_CHUNK = 100_000


@dataclass(frozen=True)
class ClusterReport:
    shots: int
    k: int
    sizes: list[int]  # shots per cluster, by cluster id
    seconds: float


def fit_clusters(matrix: np.ndarray, *, k: int, seed: int = 0) -> np.ndarray:
    """Cluster id (0..k-1) of each row of ``matrix``; fewer rows than ``k`` gives each row its own cluster."""
    n = len(matrix)
    if n == 0:
        return np.zeros(0, np.int64)
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if n <= k:
        return np.arange(n, dtype=np.int64)
    rng = np.random.default_rng(seed)
    sample = matrix if n <= FIT_SAMPLE else matrix[np.sort(rng.choice(n, FIT_SAMPLE, replace=False))]
    model = MiniBatchKMeans(n_clusters=k, random_state=seed, batch_size=4096, n_init=3, max_no_improvement=20).fit(
        sample
    )
    labels = np.empty(n, np.int64)
    for start in range(0, n, ASSIGN_CHUNK):
        labels[start : start + ASSIGN_CHUNK] = model.predict(matrix[start : start + ASSIGN_CHUNK])
    return labels


def cluster_shots(store: ShotStore, *, k: int, seed: int = 0) -> ClusterReport:
    """Cluster all shots of ``store`` into ``k`` groups and write ``cluster_id`` (keyed, so re-runs are harmless)."""
    started = time.perf_counter()
    if not store.has_shots():
        return ClusterReport(0, k, [], 0.0)
    vectors = store.vectors()
    labels = fit_clusters(vectors.matrix, k=k, seed=seed)
    if len(labels):
        store.set_cluster_ids(vectors.ids.tolist(), labels.tolist())
    sizes = np.bincount(labels, minlength=min(k, len(labels))).tolist() if len(labels) else []
    return ClusterReport(len(labels), k, sizes, time.perf_counter() - started)
