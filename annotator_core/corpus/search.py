"""Nearest shots by cosine from the compressed corpus: an IVF probe over the int8 codes.

At catalog scale a search needs no vector index in LanceDB: the corpus a build
maps already holds every shot in ~√N partitions (centroids, rows grouped by
partition) as int8 codes, and the float32 vectors by row. A query

1. ranks the partitions by their centroid's cosine to the query (P × dim),
2. scores the rows of the nearest partitions with the int8 kernel, nearest
   first, up to ``nprobes`` mean partitions' worth of rows (partitions are
   uneven even after balancing: 2.6k to 24.5k rows at 10M), split over the
   threads of a pool: at 10M, 24 probes read ~234k rows in ~15 ms on two
   cores (``VA_CORPUS_SEARCH_NPROBES``; recall@10 0.98 with the re-score below,
   0.99 at 32 probes),
3. re-scores the ``rerank`` best (``VA_CORPUS_SEARCH_RERANK``, 20) exactly from
   the float32 copy and returns the ``k`` best. The int8 cosines are within
   ~1e-3 of the exact ones, which is enough to find a shot's scene but not to
   order near-ties inside it: at 10M and 32 probes, recall@10 was 0.94 by int8
   alone and 0.99 with 20 rows re-scored. That copy (20 GB at 10M) is mostly not in the page
   cache; its rows are read with concurrent ``pread`` calls
   (:func:`annotator_core.corpus.reads.read_rows`), 3-10 ms for 20 cold rows
   here where the mapping took 300-500 ms. ``rerank`` = 0 ranks by int8.

Recall depends on how the corpus clusters, as with every IVF index: a shot's
near neighbours share its partition on real embeddings (same scene, same
title); on isotropic noise they do not, and only more probes help.
Training an IVF index in LanceDB takes about an hour at 10M rows on two cores;
this path uses the partitions ingest already fitted for the corpus.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from itertools import pairwise
from typing import Any

import numpy as np

from annotator_core.corpus.files import Corpus
from annotator_core.corpus.kernel import quantise_weights, score_codes
from annotator_core.corpus.scorer import Scorer, make_scorer
from annotator_core.errors import DimensionMismatch, NotFoundError, ValidationFailed
from annotator_core.records import video_of
from annotator_core.shot_store import SearchHit, ShotStore


def nearest_rows(
    corpus: Corpus,
    query: np.ndarray,
    *,
    k: int,
    nprobes: int,
    rerank: int,
    excluded: np.ndarray | None = None,
    pool: Executor | None = None,
    threads: int = 1,
    exact_query: Future[np.ndarray] | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(corpus rows, cosine) of the ``k`` shots nearest ``query``, best first; ``excluded`` rows never appear.

    Cost: P·dim for the centroids, then ~``nprobes``·N/P rows of int8 codes, then ``rerank`` float32 rows
    (``rerank`` = 0: the cosines are the int8 ones). With a ``pool`` of ``threads`` threads the codes are
    scored in that many pieces at once (the kernel runs without the GIL). ``exact_query``, when given, is
    the exact vector the re-score uses while ``query`` (an approximation of it) steers the probe: a search
    by example reads its shot's float32 row while the codes are scored.
    """
    q = np.asarray(query, dtype=np.float32).ravel()
    if q.shape[0] != corpus.dim:
        raise ValidationFailed(f"query vector has {q.shape[0]} values; the corpus holds {corpus.dim}-wide vectors.")
    norm = float(np.linalg.norm(q))
    if not np.isfinite(norm) or norm == 0.0:
        raise ValidationFailed("query vector must be finite and not all zero (cosine needs a direction).")
    q = q / norm
    if k <= 0 or corpus.n_rows == 0:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    banned = corpus.deleted if excluded is None else np.union1d(corpus.deleted, np.asarray(excluded, np.int64))
    approx, ranges = _probe(corpus, q, _nearest_partitions(np.asarray(corpus.centroids), q, nprobes), pool, threads)
    # Enough of the best positions that k remain once banned rows (deleted, the query's own shot) are dropped.
    keep_n = min(approx.shape[0], max(rerank, k) + int(banned.shape[0]))
    if not keep_n:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    best = np.argpartition(-approx, keep_n - 1)[:keep_n] if keep_n < approx.shape[0] else np.arange(approx.shape[0])
    rows, approx = _rows_at(best, ranges), approx[best]
    if banned.shape[0]:
        keep = ~np.isin(rows, banned)
        rows, approx = rows[keep], approx[keep]
    if not rows.shape[0]:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    if rerank > 0:  # only the rerank best are read from disk, however many banned rows were passed over
        top = np.lexsort((rows, -approx))[: max(rerank, k)]
        rows = rows[top]
        if exact_query is not None:
            exact = np.asarray(exact_query.result(), np.float32).ravel()
            q = exact / float(np.linalg.norm(exact))
    sims = corpus.exact_vectors(rows) @ q if rerank > 0 else approx
    order = np.lexsort((rows, -sims))[:k]  # ties: the lower row first, so answers are reproducible
    return rows[order], sims[order].astype(np.float32)


def _nearest_partitions(centroids: np.ndarray, q: np.ndarray, nprobes: int) -> np.ndarray:
    """Partition ids, nearest centroid first: all of them when ``nprobes`` covers every partition."""
    sims = centroids @ q
    if nprobes >= sims.shape[0]:
        return np.argsort(-sims, kind="stable")
    near = np.argpartition(-sims, nprobes - 1)[:nprobes]
    return near[np.argsort(-sims[near], kind="stable")]


def _probe(
    corpus: Corpus, q: np.ndarray, partitions: np.ndarray, pool: Executor | None, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``partitions`` (nearest first) in every segment with their int8 cosines, within a budget.

    Partitions are uneven (at 10M rows here: median 2k rows, the largest 211k), and a query's nearest are
    often the large ones, so the scan stops at ``len(partitions)`` times the mean partition's rows: the
    latency of a probe is bounded, and the nearest partitions are always read first.
    """
    budget = len(partitions) * max(1, -(-corpus.n_rows // max(corpus.partitions, 1)))
    ranges: list[tuple[int, int, int]] = []  # (segment, lo, hi)
    total = 0
    for p in partitions.tolist():
        for s, seg in enumerate(corpus.segments):
            lo, hi = int(seg.offsets[p]), int(seg.offsets[p + 1])
            if hi > lo:
                ranges.append((s, lo, hi))
                total += hi - lo
        if total >= budget:
            break
    scores = np.empty(total, np.float32)
    firsts = np.empty(len(ranges), np.int64)  # corpus row of each range's first row
    starts = np.empty(len(ranges), np.int64)  # where each range begins in ``scores``
    weights = [quantise_weights(q.astype(np.float64) * np.asarray(seg.scales, np.float64)) for seg in corpus.segments]
    at = 0
    for i, (s, lo, hi) in enumerate(ranges):
        firsts[i], starts[i] = corpus.segments[s].start + lo, at
        at += hi - lo

    def score(part: range) -> None:
        for i in part:
            s, lo, hi = ranges[i]
            w, step = weights[s]
            score_codes(corpus.segments[s].codes[lo:hi], w, step, 0.0, out=scores[starts[i] : starts[i] + hi - lo])

    if pool is not None and threads > 1 and len(ranges) > 1:  # split by rows: each thread reads as many codes
        cut = np.searchsorted(starts, np.arange(1, threads) * total / threads).tolist()
        bounds = [0, *cut, len(ranges)]
        list(pool.map(score, [range(a, b) for a, b in pairwise(bounds) if b > a]))
    else:
        score(range(len(ranges)))
    return scores, np.stack([firsts, starts]) if ranges else np.empty((2, 0), np.int64)


def _rows_at(positions: np.ndarray, ranges: np.ndarray) -> np.ndarray:
    """Corpus rows of positions in the probe's score buffer (``ranges``: first rows and buffer starts)."""
    which = np.searchsorted(ranges[1], positions, side="right") - 1
    return ranges[0][which] + (positions - ranges[1][which])


class ShotSearch:
    """Search as the service runs it: the compressed corpus where builds use it, else the table's index.

    A search limited to some videos (``where``) goes to LanceDB, whose scalar index narrows it to their
    shots before any vector is read.
    """

    def __init__(self, shots: ShotStore, settings: Any) -> None:
        self.shots = shots
        self.scorer: Scorer = shots.shared("corpus-scorer", lambda: make_scorer(shots, settings))
        self.nprobes = int(settings.corpus_search_nprobes)
        self.rerank = int(settings.corpus_search_rerank)
        self.threads = int(settings.corpus_threads)
        self._pool = ThreadPoolExecutor(max_workers=self.threads, thread_name_prefix="va-search")
        self._io = ThreadPoolExecutor(max_workers=2, thread_name_prefix="va-search-read")

    def by_vector(self, vector: np.ndarray, *, k: int, where: str | None = None) -> list[SearchHit]:
        """The ``k`` shots nearest ``vector`` by cosine."""
        corpus = None if where else self.scorer.search_corpus()
        if corpus is None:
            return self.shots.search(vector, k=k, where=where)
        if np.asarray(vector).size != corpus.dim:
            raise DimensionMismatch(
                f"query vector has {np.asarray(vector).size} values; the shots table expects {corpus.dim}."
            )
        rows, sims = nearest_rows(
            corpus, vector, k=k, nprobes=self.nprobes, rerank=self.rerank, pool=self._pool, threads=self.threads
        )
        return _hits(corpus, rows, sims)

    def like(self, shot_id: str, *, k: int, where: str | None = None) -> list[SearchHit]:
        """The ``k`` shots most like ``shot_id``, itself left out."""
        corpus = None if where else self.scorer.search_corpus()
        if corpus is None:
            return self.shots.search_like(shot_id, k=k, where=where)
        row = corpus.rows_of([shot_id])
        if row[0] < 0:
            raise NotFoundError(f"no shot {shot_id!r}; shot ids look like '<video_id>:<start_frame>'.")
        if self.rerank > 0:
            # The probe starts from the shot's int8 code (in memory) while its float32 row, which the re-score
            # needs, is read from disk: at 10M that cold read (~5 ms) no longer comes before the probe.
            vector, exact = corpus.coded_vectors(row)[0], self._io.submit(lambda: corpus.exact_vectors(row)[0])
        else:
            vector, exact = corpus.exact_vectors(row)[0], None
        found, sims = nearest_rows(
            corpus, vector, k=k, nprobes=self.nprobes, rerank=self.rerank, excluded=row, pool=self._pool,
            threads=self.threads, exact_query=exact,
        )  # fmt: skip
        return _hits(corpus, found, sims)

    def spans(self, shot_ids: Sequence[str]) -> dict[str, tuple[str, float, float]]:
        """``{shot_id: (video_id, start_s, end_s)}`` of the shots that exist (the ones a feed or page shows).

        From the corpus files where builds use them (200 ids: ~1 ms), else one keyed LanceDB read (200 ids at
        1M shots: ~0.1 s, the largest part of a build's HTTP overhead before this)."""
        corpus = self.scorer.search_corpus()
        out: dict[str, tuple[str, float, float]] = {}
        missing = list(shot_ids)
        if corpus is not None and shot_ids:
            rows = corpus.rows_of(list(shot_ids))
            found = np.flatnonzero(rows >= 0)
            for i, span in zip(found.tolist(), corpus.spans_of(rows[found]).tolist(), strict=True):
                sid = shot_ids[i]
                out[sid] = (video_of(sid), float(span[0]), float(span[1]))
            missing = [shot_ids[i] for i in np.flatnonzero(rows < 0).tolist()]
        if missing:  # shots written after the corpus's version, or no corpus at this size
            for r in self.shots.get_shots(missing, columns=["shot_id", "video_id", "start_s", "end_s"]):
                out[r["shot_id"]] = (str(r["video_id"]), float(r["start_s"]), float(r["end_s"]))
        return out


def _hits(corpus: Corpus, rows: np.ndarray, sims: np.ndarray) -> list[SearchHit]:
    spans = corpus.spans_of(rows)
    return [
        SearchHit(sid, video_of(sid), float(span[0]), float(span[1]), float(sim))
        for sid, span, sim in zip(corpus.ids_of(rows), spans.tolist(), sims.tolist(), strict=True)
    ]
