"""The compressed corpus: merged shard candidates give exactly the float32 feeds, and the random feed is uniform.

Corpora are written straight to corpus files (no LanceDB): hypothesis draws the
corpus, the classifier, the shard count and whether partitions are pruned, and
the feeds picked from the merged candidates must equal the feeds picked from
exact float32 scores of every row.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from annotator_core.classifier import sigmoid
from annotator_core.corpus.candidates import merge_candidates, pick_exact, shard_candidates, shard_parts
from annotator_core.corpus.files import Corpus, open_corpus, write_corpus
from annotator_core.corpus.partitions import fit_centroids
from annotator_core.corpus.scorer import uniform_rows
from annotator_core.feeds import build_feeds


def unit_rows(n: int, dim: int, *, seed: int, clusters: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((clusters, dim)).astype(np.float32) * 2
    x = centres[rng.integers(clusters, size=n)] + rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write(folder: Path, x: np.ndarray, *, partitions: int, seed: int = 0, batch: int = 997) -> Corpus:
    ids = np.array([f"shot:{i}".encode() for i in range(x.shape[0])])
    clusters = np.arange(x.shape[0]) % 3

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        for start in range(0, x.shape[0], batch):
            spans = np.zeros((min(batch, len(ids) - start), 2), np.float32)
            yield ids[start : start + batch], x[start : start + batch], clusters[start : start + batch], spans

    return write_corpus(folder, batches, version=7, centroids=fit_centroids(x, partitions=partitions, seed=seed))


def originals(corpus: Corpus, rows: np.ndarray) -> np.ndarray:
    """The index into x of each corpus row (rows are grouped by partition in the files)."""
    return np.array([int(s.split(":")[1]) for s in corpus.ids_of(rows)], dtype=np.int64)


def merged_feeds(
    corpus: Corpus, x: np.ndarray, coef: np.ndarray, b: float, *, size: int, labelled: np.ndarray, shards: int,
    prune: bool,
) -> dict[str, np.ndarray]:  # fmt: skip
    """Feeds (as indices into x) through shards → merge → exact re-score of the candidates only."""
    labelled_rows = np.sort(corpus.rows_of([f"shot:{i}" for i in labelled.tolist()]))
    found = [
        shard_candidates(
            corpus, shard_parts(corpus, shard=k, shards=shards), coef=coef, intercept=b, size=size,
            labelled_rows=labelled_rows, prune=prune, max_candidates=10**6,
        )
        for k in range(shards)
    ]  # fmt: skip
    merged = merge_candidates(found, size=size, max_candidates=10**6)
    wanted = np.unique(np.concatenate(list(merged.values())))
    p = sigmoid(x[originals(corpus, wanted)] @ coef + np.float32(b))
    picked = pick_exact(merged, dict(zip(wanted.tolist(), p.tolist(), strict=True)), size=size)
    return {name: originals(corpus, rows) for name, rows in picked.items()}


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 1500),
    dim=st.sampled_from([3, 16, 64]),
    size=st.integers(1, 40),
    shards=st.sampled_from([1, 2, 3, 5]),
    partitions=st.integers(1, 48),
    prune=st.booleans(),
    weight=st.floats(0.5, 40.0),
)
def test_merged_feeds_equal_the_exact_float32_feeds(
    seed: int, n: int, dim: int, size: int, shards: int, partitions: int, prune: bool, weight: float
) -> None:
    rng = np.random.default_rng(seed)
    x = unit_rows(n, dim, seed=seed)
    coef = (rng.standard_normal(dim) * weight / np.sqrt(dim)).astype(np.float32)
    b = float(rng.normal(scale=1.0))
    labelled = rng.choice(n, size=int(rng.integers(0, n // 3 + 1)), replace=False)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write(Path(tmp), x, partitions=partitions, seed=seed)
        got = merged_feeds(corpus, x, coef, b, size=size, labelled=labelled, shards=shards, prune=prune)
    p = sigmoid(x @ coef + np.float32(b))
    exact = build_feeds(p, labelled=labelled, size=size, seed=0)
    for name in ("top_positive", "top_negative", "borderline"):
        want = getattr(exact, name)
        value = np.abs(p - np.float32(0.5)) if name == "borderline" else p  # what the feed ranks by
        # The same values in the same order; the same shots wherever the values are not tied.
        np.testing.assert_array_equal(value[got[name]], value[want], err_msg=name)
        untied = np.array([np.sum(value == value[i]) == 1 for i in want], dtype=bool)
        np.testing.assert_array_equal(got[name][untied], want[untied], err_msg=name)
    assert not set(got["borderline"].tolist()) & set(labelled.tolist())


def test_pruning_skips_partitions_that_cannot_reach_the_feeds(tmp_path: Path) -> None:
    """Tight clusters spread over a half circle, a classifier along its axis: most partitions are never scored."""
    dim, rng = 32, np.random.default_rng(3)
    angles = np.linspace(0, np.pi, 16)
    centres = np.zeros((16, dim), np.float32)
    centres[:, 0], centres[:, 1] = np.cos(angles), np.sin(angles)
    x = centres[rng.integers(16, size=20_000)] + rng.standard_normal((20_000, dim)).astype(np.float32) * 0.01
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    corpus = write(tmp_path, x, partitions=64)
    coef = np.eye(dim, dtype=np.float32)[0] * 8
    args = dict(coef=coef, intercept=0.0, size=20, labelled_rows=np.empty(0, np.int64), max_candidates=10**6)
    pruned = shard_candidates(corpus, shard_parts(corpus), prune=True, **args)  # type: ignore[arg-type]
    full = shard_candidates(corpus, shard_parts(corpus), prune=False, **args)  # type: ignore[arg-type]
    assert full.rows_scored == 20_000
    assert pruned.rows_scored < 0.5 * full.rows_scored
    for name in ("top_positive", "top_negative", "borderline"):
        best = full.rows[name][np.argsort(-full.keys[name], kind="stable")[:20]]
        assert set(pruned.rows[name].tolist()) >= set(best.tolist()), name


def test_ids_map_to_rows_and_back(tmp_path: Path) -> None:
    x = unit_rows(3000, 8, seed=1)
    corpus = write(tmp_path, x, partitions=10)
    asked = ["shot:5", "shot:2999", "nope", "shot:0", "shot:12345678901234567890"]
    rows = corpus.rows_of(asked)
    assert (rows >= 0).tolist() == [True, True, False, True, False]
    assert corpus.ids_of(rows[rows >= 0]) == ["shot:5", "shot:2999", "shot:0"]
    reopened = open_corpus(tmp_path)
    assert reopened is not None and reopened.version == 7 and len(reopened) == 3000
    # Codes reproduce the vectors to within half a quantisation step per dimension.
    seg = reopened.segments[0]
    row = int(rows[0])
    np.testing.assert_allclose(seg.codes[row] * seg.scales, x[5], atol=float(seg.scales.max()) / 2 + 1e-7)


def test_random_feed_is_uniform_over_unlabelled_shots(tmp_path: Path) -> None:
    """Chi-square over 4,000 draws of 5 from 60 rows with 12 labelled: every unlabelled row equally likely."""
    corpus = write(tmp_path, unit_rows(60, 4, seed=2), partitions=6)
    labelled = np.sort(np.random.default_rng(0).choice(60, size=12, replace=False))
    counts = np.zeros(60, dtype=np.int64)
    for seed in range(4000):
        picked = uniform_rows(corpus, size=5, excluded=labelled, seed=seed)
        assert len(set(picked.tolist())) == 5
        counts[picked] += 1
    assert counts[labelled].sum() == 0
    free = np.setdiff1d(np.arange(60), labelled)
    assert chisquare(counts[free]).pvalue > 1e-3
    # Asking for more than there is returns every unlabelled row once.
    assert sorted(uniform_rows(corpus, size=100, excluded=labelled, seed=1).tolist()) == free.tolist()


@pytest.mark.parametrize("shards", [1, 4])
def test_a_feed_larger_than_a_shard_still_merges_exactly(tmp_path: Path, shards: int) -> None:
    x = unit_rows(30, 8, seed=4)
    corpus = write(tmp_path, x, partitions=8)
    coef = np.random.default_rng(4).standard_normal(8).astype(np.float32)
    got = merged_feeds(corpus, x, coef, 0.1, size=25, labelled=np.arange(3), shards=shards, prune=True)
    p = sigmoid(x @ coef + np.float32(0.1))
    np.testing.assert_array_equal(got["top_positive"], np.argsort(-p, kind="stable")[:25])
