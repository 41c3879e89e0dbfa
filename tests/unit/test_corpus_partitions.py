"""IVF partitions of the compressed corpus: balancing bounds the largest partition without losing the
neighbourhoods a search relies on.

The data is uneven on purpose, as shot embeddings are: a few dense groups holding most shots (long
titles, common genres) beside many small ones.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotator_core.corpus.partitions import assign, balance, fit_centroids


def uneven(n: int, dim: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(unit vectors, group of each row): group sizes fall off as 1/rank, so the first few hold most rows."""
    rng = np.random.default_rng(seed)
    groups = 60
    weights = 1.0 / np.arange(1, groups + 1)
    group = rng.choice(groups, size=n, p=weights / weights.sum())
    centres = rng.standard_normal((groups, dim)).astype(np.float32)
    x = centres[group] + 0.35 * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), group


def test_balancing_bounds_the_largest_partition_that_plain_k_means_leaves_huge() -> None:
    """Fitted on a sample (32 rows a partition, as ingest does) and assigned over every row."""
    x, _ = uneven(40_000, 32, seed=3)
    sample = x[np.random.default_rng(0).choice(x.shape[0], size=40 * 32, replace=False)]
    mean = x.shape[0] / 40
    plain = np.bincount(assign(x, fit_centroids(sample, partitions=40, seed=0, cap=0)), minlength=40)
    balanced = np.bincount(assign(x, fit_centroids(sample, partitions=40, seed=0)), minlength=40)
    assert plain.max() > 3 * mean  # the data is uneven enough that the test can fail
    assert balanced.max() <= 2.5 * mean  # cap 1.5 on the sample; the other rows add sampling noise
    assert balanced.min() > 0.1 * mean


def probe_recall(x: np.ndarray, centroids: np.ndarray, queries: np.ndarray, *, budget: int, k: int = 10) -> float:
    """Share of each query's ``k`` nearest rows that lie in the partitions a search reads, nearest centroid
    first until ``budget`` rows (as :func:`annotator_core.corpus.search.nearest_rows` bounds its scan)."""
    part = assign(x, centroids)
    sizes = np.bincount(part, minlength=centroids.shape[0])
    found = []
    for q in queries:
        want = np.argsort(-(x @ q))[:k]
        read, total = set(), 0
        for p in np.argsort(-(centroids @ q)).tolist():
            read.add(p)
            total += int(sizes[p])
            if total >= budget:
                break
        found.append(np.isin(part[want], list(read)).mean())
    return float(np.mean(found))


def test_balanced_partitions_find_the_neighbours_within_the_same_row_budget() -> None:
    """Balancing splits dense groups, so a shot and its neighbour share a partition less often; a search
    still reads them both, because the halves' centroids are the query's nearest."""
    x, _ = uneven(40_000, 32, seed=5)
    rng = np.random.default_rng(2)
    sample = x[rng.choice(x.shape[0], size=40 * 32, replace=False)]
    queries = x[rng.choice(x.shape[0], size=60, replace=False)]
    budget = 4 * x.shape[0] // 40  # four mean partitions' worth
    plain = probe_recall(x, fit_centroids(sample, partitions=40, seed=1, cap=0), queries, budget=budget)
    balanced = probe_recall(x, fit_centroids(sample, partitions=40, seed=1), queries, budget=budget)
    assert balanced >= plain - 0.02, (plain, balanced)
    assert balanced >= 0.9, balanced


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(n=st.integers(2, 600), k=st.integers(1, 30), cap=st.floats(1.1, 4.0), seed=st.integers(0, 2**16))
def test_balance_keeps_the_count_of_unit_centroids_for_any_input(n: int, k: int, cap: float, seed: int) -> None:
    x, _ = uneven(n, 8, seed=seed)
    start = x[np.random.default_rng(seed).choice(n, size=min(k, n), replace=False)]
    out = balance(x, start, cap=cap, seed=seed)
    assert out.shape == start.shape
    assert np.all(np.isfinite(out))
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)


def test_balance_is_reproducible_for_a_seed() -> None:
    x, _ = uneven(3000, 16, seed=9)
    a = fit_centroids(x, partitions=20, seed=4)
    b = fit_centroids(x, partitions=20, seed=4)
    assert np.array_equal(a, b)


@pytest.mark.parametrize("k", [1, 2])
def test_balance_leaves_tiny_partitionings_alone(k: int) -> None:
    x, _ = uneven(50, 8, seed=1)
    start = x[:k].copy()
    assert balance(x, start, cap=1.1, seed=0).shape == (k, 8)
