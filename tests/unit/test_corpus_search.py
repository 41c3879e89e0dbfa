"""Search over the compressed corpus: exact when every partition is probed, close to exact on clustered data.

Corpora are written straight to corpus files (no LanceDB) and compared with a
brute-force cosine search over the same float32 vectors.
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from annotator_core.corpus.files import Corpus, write_corpus
from annotator_core.corpus.partitions import fit_centroids
from annotator_core.corpus.search import nearest_rows
from annotator_core.errors import ValidationFailed


def scenes(n: int, dim: int, *, seed: int, scene: int = 12) -> np.ndarray:
    """Unit vectors in runs of ``scene`` near-alike shots (a shared direction plus a little noise each)."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n // scene + 1, dim)).astype(np.float32)
    x = centres[np.arange(n) // scene] + 0.4 * rng.standard_normal((n, dim)).astype(np.float32)
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def write(folder: Path, x: np.ndarray, *, partitions: int, seed: int = 0) -> Corpus:
    ids = np.array([s.encode() for s in shot_ids(x.shape[0])])
    spans = np.stack([np.arange(x.shape[0]) * 1.0, np.arange(x.shape[0]) * 1.0 + 0.5], axis=1).astype(np.float32)

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        for start in range(0, x.shape[0], 500):
            end = start + 500
            yield ids[start:end], x[start:end], np.zeros(len(ids[start:end]), np.int64), spans[start:end]

    return write_corpus(folder, batches, version=1, centroids=fit_centroids(x, partitions=partitions, seed=seed))


def shot_ids(n: int) -> list[str]:
    return [f"clip{i // 100}:{i % 100 * 25}" for i in range(n)]


def brute_force(rows: np.ndarray, x: np.ndarray, q: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(corpus rows, cosine) of every shot, best first; ``rows[i]`` is shot i's corpus row (the files keep
    rows grouped by partition)."""
    sims = x @ (q / np.linalg.norm(q))
    order = np.argsort(-sims, kind="stable")
    return rows[order], sims[order]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    n=st.integers(30, 1500),
    dim=st.sampled_from([8, 33, 64]),
    partitions=st.integers(1, 40),
    k=st.integers(1, 25),
    seed=st.integers(0, 10_000),
)
def test_probing_every_partition_gives_the_exact_neighbours(n: int, dim: int, partitions: int, k: int, seed: int):
    x = scenes(n, dim, seed=seed)
    q = np.random.default_rng(seed + 1).standard_normal(dim).astype(np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        corpus = write(Path(tmp), x, partitions=partitions, seed=seed)
        rows, sims = nearest_rows(corpus, q, k=k, nprobes=corpus.partitions, rerank=n)
        want_rows, want_sims = brute_force(corpus.rows_of(shot_ids(n)), x, q)
        np.testing.assert_allclose(sims, want_sims[: min(k, n)], atol=1e-6)
        # the same rows, up to shots whose cosine ties the k-th within float32 rounding
        assert set(rows.tolist()) <= set(want_rows[want_sims >= want_sims[min(k, n) - 1] - 1e-6].tolist())
        assert len(set(rows.tolist())) == min(k, n) and np.all(np.diff(sims) <= 0)


def queries_near_shots(x: np.ndarray, count: int, *, seed: int) -> np.ndarray:
    """``count`` queries, each a random shot of ``x`` with a little noise."""
    rng = np.random.default_rng(seed)
    picked = x[rng.choice(len(x), count, replace=False)]
    return picked + 0.05 * rng.standard_normal(picked.shape).astype(np.float32)


def recall_at_10(rows: np.ndarray, rows_of_shots: np.ndarray, x: np.ndarray, q: np.ndarray) -> float:
    return len(set(rows.tolist()) & set(brute_force(rows_of_shots, x, q)[0][:10].tolist())) / 10


def test_a_few_probes_find_the_neighbours_on_clustered_shots(tmp_path: Path) -> None:
    x = scenes(20_000, 64, seed=3)
    corpus = write(tmp_path, x, partitions=140)
    rows_of_shots = corpus.rows_of(shot_ids(len(x)))
    recalls = []
    for q in queries_near_shots(x, 50, seed=4):
        rows, _ = nearest_rows(corpus, q, k=10, nprobes=8, rerank=40)
        recalls.append(recall_at_10(rows, rows_of_shots, x, q))
    assert corpus.partitions == 140
    assert np.mean(recalls) >= 0.95  # with 8 of 140 partitions probed (~6% of the rows); one probe gives ~0.89


def test_without_a_rerank_the_int8_scores_rank_nearly_as_exact_search_does(tmp_path: Path) -> None:
    x = scenes(5_000, 64, seed=8)
    corpus = write(tmp_path, x, partitions=50)
    rows_of_shots = corpus.rows_of(shot_ids(len(x)))
    recalls = []
    for q in queries_near_shots(x, 40, seed=9):
        rows, sims = nearest_rows(corpus, q, k=10, nprobes=50, rerank=0)
        exact = corpus.exact_vectors(rows) @ (q / np.linalg.norm(q))
        np.testing.assert_allclose(sims, exact, atol=4e-3)  # int8 cosines (64-d: coarse scales), near float32
        assert np.all(np.diff(sims) <= 0)
        recalls.append(recall_at_10(rows, rows_of_shots, x, q))
    assert np.mean(recalls) >= 0.97  # only near-ties at the tenth place may swap


def test_scoring_in_two_threads_finds_what_one_thread_finds(tmp_path: Path) -> None:
    from concurrent.futures import ThreadPoolExecutor

    x = scenes(3_000, 32, seed=10)
    corpus = write(tmp_path, x, partitions=30)
    rng = np.random.default_rng(12)
    with ThreadPoolExecutor(max_workers=2) as pool:
        for q in rng.standard_normal((10, 32)).astype(np.float32):
            alone = nearest_rows(corpus, q, k=15, nprobes=12, rerank=0)
            split = nearest_rows(corpus, q, k=15, nprobes=12, rerank=0, pool=pool, threads=2)
            assert alone[0].tolist() == split[0].tolist() and alone[1].tolist() == split[1].tolist()


def test_excluded_rows_never_appear_and_spans_follow_rows(tmp_path: Path) -> None:
    x = scenes(600, 16, seed=5)
    corpus = write(tmp_path, x, partitions=6)
    row = int(corpus.rows_of(["clip2:250"])[0])
    rows, sims = nearest_rows(corpus, corpus.exact_vectors(np.array([row]))[0], k=20, nprobes=6, rerank=600)
    assert rows[0] == row and sims[0] == pytest.approx(1.0, abs=1e-6)
    excluded, _ = nearest_rows(
        corpus, corpus.exact_vectors(np.array([row]))[0], k=20, nprobes=6, rerank=600, excluded=np.array([row])
    )
    assert row not in excluded.tolist() and excluded.tolist() == rows[1:].tolist() + excluded[-1:].tolist()
    # clip2:250 is the 210th shot written: its span is (210, 210.5) seconds
    assert corpus.spans_of(np.array([row])).tolist() == [[210.0, 210.5]]


def test_a_bad_query_is_refused_with_the_reason(tmp_path: Path) -> None:
    corpus = write(tmp_path, scenes(100, 16, seed=6), partitions=4)
    with pytest.raises(ValidationFailed, match="has 15 values; the corpus holds 16-wide"):
        nearest_rows(corpus, np.ones(15, np.float32), k=5, nprobes=4, rerank=10)
    with pytest.raises(ValidationFailed, match="not all zero"):
        nearest_rows(corpus, np.zeros(16, np.float32), k=5, nprobes=4, rerank=10)
    with pytest.raises(ValidationFailed, match="finite"):
        nearest_rows(corpus, np.full(16, np.nan, np.float32), k=5, nprobes=4, rerank=10)


def test_coded_vectors_are_the_codes_scaled_within_half_a_step(tmp_path: Path) -> None:
    x = scenes(800, 32, seed=13)
    corpus = write(tmp_path, x, partitions=8)
    rows = corpus.rows_of(shot_ids(len(x)))
    coded = corpus.coded_vectors(rows)
    scales = np.asarray(corpus.segments[0].scales)
    assert np.all(np.abs(coded - x) <= scales / 2 + 1e-6)
    assert not np.array_equal(coded, x)  # they are the codes, not the float32 copy


def test_a_probe_steered_by_the_code_and_rescored_by_the_exact_vector_answers_as_the_exact_query(
    tmp_path: Path,
) -> None:
    """Search by example probes with the shot's int8 code while its float32 row is read; the re-score then
    uses the exact vector, so the answer (rows and cosines) is the exact query's."""
    from concurrent.futures import Future

    x = scenes(2_000, 32, seed=14)
    corpus = write(tmp_path, x, partitions=20)
    for shot in ("clip3:250", "clip11:0", "clip17:2475"):
        row = corpus.rows_of([shot])
        exact = corpus.exact_vectors(row)[0]
        want = nearest_rows(corpus, exact, k=10, nprobes=20, rerank=40, excluded=row)
        future: Future[np.ndarray] = Future()
        future.set_result(exact)
        got = nearest_rows(corpus, corpus.coded_vectors(row)[0], k=10, nprobes=20, rerank=40, excluded=row,
                           exact_query=future)  # fmt: skip
        assert got[0].tolist() == want[0].tolist()
        np.testing.assert_allclose(got[1], want[1], rtol=0, atol=1e-6)
        np.testing.assert_allclose(got[1], corpus.exact_vectors(got[0]) @ (exact / np.linalg.norm(exact)), atol=1e-6)
