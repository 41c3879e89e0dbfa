"""Nearest shots by cosine from the compressed corpus: IVF probe over the int8 codes, exact float32 re-rank.

At catalog scale a search needs no vector index in LanceDB: the corpus a build
maps already holds every shot in ~√N partitions (centroids, rows grouped by
partition) as int8 codes, and the float32 vectors by row. A query

1. ranks the partitions by their centroid's cosine to the query (P × dim),
2. scores the rows of the ``nprobes`` best partitions with the int8 kernel
   (at 10M rows and 1,024 partitions, 32 probes read ~310k rows: ~1.6 MB of
   codes a probe, ~20 ms on one core),
3. returns the ``k`` best by their int8 score (cosine within ~1e-3 of the
   exact one), or, with ``rerank`` > 0, re-scores that many of the best exactly
   from the float32 copy first. That copy (20 GB at 10M) is not in the page
   cache, so each re-scored row is a random disk read: 40 rows took ~75 ms here,
   more than the probe, hence ``VA_CORPUS_SEARCH_RERANK`` defaults to 0.

Recall depends on how the corpus clusters, as with every IVF index: a shot's
near neighbours share its partition on real embeddings (same scene, same
title); on isotropic noise they do not, and only more probes help.
Training an IVF index in LanceDB takes about an hour at 10M rows on two cores;
this path uses the partitions ingest already fitted for the corpus.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from annotator_core.corpus.files import Corpus
from annotator_core.corpus.kernel import quantise_weights, score_codes
from annotator_core.corpus.scorer import Scorer, make_scorer
from annotator_core.errors import DimensionMismatch, NotFoundError, ValidationFailed
from annotator_core.shot_store import SearchHit, ShotStore


def nearest_rows(
    corpus: Corpus,
    query: np.ndarray,
    *,
    k: int,
    nprobes: int,
    rerank: int,
    excluded: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """(corpus rows, cosine) of the ``k`` shots nearest ``query``, best first; ``excluded`` rows never appear.

    Cost: P·dim for the centroids, then ~``nprobes``·N/P rows of int8 codes, then ``rerank`` float32 rows
    (``rerank`` = 0: the cosines are the int8 ones).
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
    probe = _nearest_partitions(np.asarray(corpus.centroids), q, nprobes)
    rows, approx = _probe(corpus, q, probe)
    if banned.shape[0]:
        keep = ~np.isin(rows, banned)
        rows, approx = rows[keep], approx[keep]
    pool = min(rows.shape[0], max(rerank, k))
    if pool < rows.shape[0]:
        best = np.argpartition(-approx, pool - 1)[:pool]
        rows, approx = rows[best], approx[best]
    if not rows.shape[0]:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    sims = corpus.exact_vectors(rows) @ q if rerank > 0 else approx
    order = np.lexsort((rows, -sims))[:k]  # ties: the lower row first, so answers are reproducible
    return rows[order], sims[order].astype(np.float32)


def _nearest_partitions(centroids: np.ndarray, q: np.ndarray, nprobes: int) -> np.ndarray:
    sims = centroids @ q
    if nprobes >= sims.shape[0]:
        return np.arange(sims.shape[0])
    return np.argpartition(-sims, nprobes - 1)[:nprobes]


def _probe(corpus: Corpus, q: np.ndarray, partitions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every row of ``partitions`` in every segment, with its approximate cosine from the int8 codes."""
    row_parts, score_parts = [], []
    for seg in corpus.segments:
        if not len(seg):
            continue
        weights, step = quantise_weights(q.astype(np.float64) * np.asarray(seg.scales, np.float64))
        offsets = np.asarray(seg.offsets)
        for p in np.sort(partitions).tolist():  # ascending: the reads walk the codes file forward
            lo, hi = int(offsets[p]), int(offsets[p + 1])
            if hi > lo:
                out = np.empty(hi - lo, np.float32)
                score_codes(seg.codes[lo:hi], weights, step, 0.0, out=out)
                row_parts.append(np.arange(seg.start + lo, seg.start + hi, dtype=np.int64))
                score_parts.append(out)
    if not row_parts:
        return np.empty(0, np.int64), np.empty(0, np.float32)
    return np.concatenate(row_parts), np.concatenate(score_parts)


class ShotSearch:
    """Search as the service runs it: the compressed corpus where builds use it, else the table's index.

    A search limited to some videos (``where``) goes to LanceDB, whose scalar index narrows it to their
    shots before any vector is read.
    """

    def __init__(self, shots: ShotStore, settings: Any) -> None:
        self.shots = shots
        self.scorer: Scorer = shots.shared("corpus-scorer", lambda: make_scorer(shots, settings))
        self.nprobes = int(settings.search_nprobes)
        self.rerank = int(settings.corpus_search_rerank)

    def by_vector(self, vector: np.ndarray, *, k: int, where: str | None = None) -> list[SearchHit]:
        """The ``k`` shots nearest ``vector`` by cosine."""
        corpus = None if where else self.scorer.search_corpus()
        if corpus is None:
            return self.shots.search(vector, k=k, where=where)
        if np.asarray(vector).size != corpus.dim:
            raise DimensionMismatch(
                f"query vector has {np.asarray(vector).size} values; the shots table expects {corpus.dim}."
            )
        rows, sims = nearest_rows(corpus, vector, k=k, nprobes=self.nprobes, rerank=self.rerank)
        return _hits(corpus, rows, sims)

    def like(self, shot_id: str, *, k: int, where: str | None = None) -> list[SearchHit]:
        """The ``k`` shots most like ``shot_id``, itself left out."""
        corpus = None if where else self.scorer.search_corpus()
        if corpus is None:
            return self.shots.search_like(shot_id, k=k, where=where)
        row = corpus.rows_of([shot_id])
        if row[0] < 0:
            raise NotFoundError(f"no shot {shot_id!r}; shot ids look like '<video_id>:<start_frame>'.")
        vector = corpus.exact_vectors(row)[0]
        found, sims = nearest_rows(corpus, vector, k=k, nprobes=self.nprobes, rerank=self.rerank, excluded=row)
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
                out[sid] = (sid.rsplit(":", 1)[0], float(span[0]), float(span[1]))
            missing = [shot_ids[i] for i in np.flatnonzero(rows < 0).tolist()]
        if missing:  # shots written after the corpus's version, or no corpus at this size
            for r in self.shots.get_shots(missing, columns=["shot_id", "video_id", "start_s", "end_s"]):
                out[r["shot_id"]] = (str(r["video_id"]), float(r["start_s"]), float(r["end_s"]))
        return out


def _hits(corpus: Corpus, rows: np.ndarray, sims: np.ndarray) -> list[SearchHit]:
    spans = corpus.spans_of(rows)
    return [
        # A shot id is f"{video_id}:{start_frame}" (records.shot_id), so the video needs no table read.
        SearchHit(sid, sid.rsplit(":", 1)[0], float(span[0]), float(span[1]), float(sim))
        for sid, span, sim in zip(corpus.ids_of(rows), spans.tolist(), sims.tolist(), strict=True)
    ]
