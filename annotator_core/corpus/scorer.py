"""The scorer interface: what a build asks of the corpus, and its two local implementations.

A build needs three things from the corpus: the exact vectors (and ingest
clusters) of the labelled shots, to train on; the four feeds of a trained
classifier; and the corpus size and version it saw. :class:`Scorer` hands out
one :class:`CorpusView` per build that answers those.

- :class:`InMemoryScorer` — the embedded default for small corpora: the shot
  store's cached float32 matrix (4·dim bytes a shot per worker: 2 GB at 1M × 512,
  20 GB at 10M, so only below ``VA_CORPUS_MAPPED_FROM`` shots), one float32
  pass over it (:func:`score_matrix`), exact feeds.
- :class:`MappedScorer` — the compressed corpus of :mod:`annotator_core.corpus.files`
  shared by every worker through the page cache (dim + ~50 bytes a shot: 5.6 GB
  at 10M × 512, counted once however many workers map it), scored in shards,
  candidates re-scored exactly from the corpus's float32 vectors. The shards run in a thread pool
  here; ``pipelines.corpus_shards`` runs them on Ray actors through the same
  :class:`ShardRunner` interface.

``VA_CORPUS_SCORER=auto`` picks the mapped scorer from ``VA_CORPUS_MAPPED_FROM``
shots on.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from threadpoolctl import threadpool_limits

from annotator_core.classifier import Classifier, sigmoid
from annotator_core.corpus.candidates import Candidates, merge_candidates, pick_exact, shard_candidates, shard_parts
from annotator_core.corpus.files import Corpus, open_corpus, sync_corpus
from annotator_core.corpus.kernel import score_rows
from annotator_core.corpus.reads import populate
from annotator_core.feeds import build_feeds, labelled_mask, random_unlabelled
from annotator_core.shot_store import ShotStore, VectorMatrix


@dataclass(frozen=True)
class LabelledShots:
    """The labelled shots found in the corpus, in the order asked, with their exact vectors."""

    ids: list[str]
    vectors: np.ndarray  # float32 [n, dim], L2-normalised
    cluster_ids: np.ndarray  # int64 [n]; -1 where clustering has not run


@dataclass(frozen=True)
class FeedPicks:
    """Each feed as (shot id, P(positive)) in display order, and how it was found."""

    feeds: dict[str, list[tuple[str, float]]]
    info: dict[str, Any] = field(default_factory=dict)


class CorpusView(Protocol):
    """One build's view of the corpus (one shots-table version)."""

    version: int
    n_shots: int

    def cluster_k(self, labelled: LabelledShots) -> int:
        """Ingest clusters the corpus has (max cluster id + 1), 0 when it is not clustered."""
        ...

    def labelled(self, shot_ids: Sequence[str]) -> LabelledShots: ...

    def feeds(self, clf: Classifier, *, labelled_ids: Sequence[str], size: int, seed: int) -> FeedPicks: ...

    def sample(self, *, excluded_ids: Sequence[str], size: int, seed: int) -> list[str]:
        """``size`` distinct shot ids drawn uniformly from those not excluded (no classifier needed)."""
        ...

    def reference(self, *, size: int) -> np.ndarray:
        """Vectors of ``size`` catalog shots evenly strided over the rows (the same ones every build while the
        table holds them), float32 [≤ size, dim]: what a build's quality folds are thresholded on."""
        ...


class Scorer(Protocol):
    name: str

    def view(self) -> CorpusView: ...

    def search_corpus(self) -> Corpus | None:
        """The compressed corpus searches should probe, or None to use the shots table's index."""
        ...


class ShardRunner(Protocol):
    """Computes every shard's candidates for one build (in threads here, on Ray actors in pipelines)."""

    def candidates(
        self, corpus: Corpus, *, coef: np.ndarray, intercept: float, size: int, labelled_rows: np.ndarray
    ) -> list[Candidates]: ...


# --------------------------------------------------------------------------- in memory


class InMemoryScorer:
    """Today's exact path: the shot store's float32 matrix, cached per table version."""

    name = "memory"

    def __init__(self, shots: ShotStore) -> None:
        self.shots = shots

    def search_corpus(self) -> Corpus | None:
        """None: searches go through the shots table's own index."""
        return None

    def view(self) -> _InMemoryView:
        return _InMemoryView(self.shots.vectors())


def score_matrix(matrix: np.ndarray, clf: Classifier) -> np.ndarray:
    """P(positive) of every row of a matrix of unit rows (shot vectors are stored L2-normalised, so no norm
    pass), float32 [n]: the in-memory scan. One pass in a loop that takes neither the GIL nor OpenBLAS's lock
    (:func:`~annotator_core.corpus.kernel.score_rows`), so the build's quality CV runs beside it."""
    rows = clf.check(matrix)
    scores = np.empty(rows.shape[0], dtype=np.float32)
    score_rows(rows, clf.coef, clf.intercept, out=scores)
    return sigmoid(scores)


class _InMemoryView:
    def __init__(self, vectors: VectorMatrix) -> None:
        self.vectors = vectors
        self.version = vectors.version
        self.n_shots = len(vectors)

    def cluster_k(self, labelled: LabelledShots) -> int:
        clusters = self.vectors.cluster_ids
        return int(clusters.max()) + 1 if clusters.shape[0] and (clusters >= 0).any() else 0

    def labelled(self, shot_ids: Sequence[str]) -> LabelledShots:
        rows_of = self.vectors.row_of
        ids = [sid for sid in shot_ids if sid in rows_of]
        rows = np.fromiter((rows_of[sid] for sid in ids), dtype=np.int64, count=len(ids))
        return LabelledShots(ids, self.vectors.matrix[rows], self.vectors.cluster_ids[rows])

    def feeds(self, clf: Classifier, *, labelled_ids: Sequence[str], size: int, seed: int) -> FeedPicks:
        rows_of = self.vectors.row_of
        rows = np.fromiter((rows_of[s] for s in labelled_ids if s in rows_of), dtype=np.int64)
        started = time.perf_counter()
        scores = score_matrix(self.vectors.matrix, clf)
        scored = time.perf_counter() - started
        picked = build_feeds(scores, labelled=rows, size=size, seed=seed)
        ids = self.vectors.ids
        feeds = {name: [(str(ids[i]), float(scores[i])) for i in idx] for name, idx in picked.as_dict().items()}
        return FeedPicks(feeds, {"scorer": "memory", "rows_scored": self.n_shots, "exact": True, "score_s": scored})

    def sample(self, *, excluded_ids: Sequence[str], size: int, seed: int) -> list[str]:
        rows_of = self.vectors.row_of
        excluded = np.fromiter((rows_of[s] for s in excluded_ids if s in rows_of), dtype=np.int64)
        picked = random_unlabelled(self.n_shots, size=size, exclude=labelled_mask(excluded, self.n_shots), seed=seed)
        return [str(self.vectors.ids[i]) for i in picked.tolist()]

    def reference(self, *, size: int) -> np.ndarray:
        return np.asarray(self.vectors.matrix[strided_rows(self.n_shots, size)])


# --------------------------------------------------------------------------- memory-mapped


class ThreadShards:
    """The corpus's partitions split into ``shards`` and scored in a thread pool (numpy releases the GIL)."""

    def __init__(self, *, shards: int = 2, prune: bool = False, max_candidates: int = 4096) -> None:
        self.shards = max(1, shards)
        self.prune = prune
        self.max_candidates = max_candidates
        self._pool = ThreadPoolExecutor(self.shards, thread_name_prefix="va-corpus") if self.shards > 1 else None

    def candidates(
        self, corpus: Corpus, *, coef: np.ndarray, intercept: float, size: int, labelled_rows: np.ndarray
    ) -> list[Candidates]:
        def one(k: int) -> Candidates:
            parts = shard_parts(corpus, shard=k, shards=self.shards)
            return shard_candidates(
                corpus, parts, coef=coef, intercept=intercept, size=size, labelled_rows=labelled_rows,
                prune=self.prune, max_candidates=self.max_candidates, shard=f"thread-{k}",
            )  # fmt: skip

        # Block GEMVs are too small to split across BLAS threads, whose spinning cost 10x the CPU
        # (measured: 3.0 s vs 0.33 s of CPU per 1M rows on the busy 2-core machine); the shards are the threads.
        with threadpool_limits(1):
            if self._pool is None:
                return [one(0)]
            return list(self._pool.map(one, range(self.shards)))


class MappedScorer:
    """The compressed corpus in ``folder``, kept in step with the shots table (see :func:`sync_corpus`)."""

    name = "mapped"

    def __init__(
        self,
        shots: ShotStore,
        folder: Path,
        *,
        runner: ShardRunner | None = None,
        partitions: int = 0,
        max_candidates: int = 4096,
    ) -> None:
        self.shots = shots
        self.folder = Path(folder)
        self.runner: ShardRunner = runner or ThreadShards(max_candidates=max_candidates)
        self.partitions = partitions
        self.max_candidates = max_candidates
        self._lock = threading.Lock()
        self._corpus: Corpus | None = None

    def corpus(self) -> Corpus:
        """The corpus of the table's current version: opened once per version, synced when behind."""
        version = self.shots.version()
        with self._lock:
            if self._corpus is None or self._corpus.version != version:
                found = open_corpus(self.folder)
                if found is None or found.version != version:
                    found = sync_corpus(self.shots, self.folder, partitions=self.partitions)
                for seg in found.segments:  # searches then read codes without page faults (files.populate)
                    populate(seg.codes)
                self._corpus = found
            return self._corpus

    def search_corpus(self) -> Corpus | None:
        """The corpus searches probe (see :mod:`annotator_core.corpus.search`)."""
        return self.corpus()

    def view(self) -> _MappedView:
        return _MappedView(self.corpus(), self.shots, self.runner, self.max_candidates)


class _MappedView:
    def __init__(self, corpus: Corpus, shots: ShotStore, runner: ShardRunner, max_candidates: int) -> None:
        self.corpus = corpus
        self.shots = shots
        self.runner = runner
        self.max_candidates = max_candidates
        self.version = corpus.version
        self.n_shots = len(corpus)

    def cluster_k(self, labelled: LabelledShots) -> int:
        # The manifest's maximum can trail a re-clustering; the labelled shots' clusters are refreshed by sync.
        top = max(self.corpus.cluster_max, int(labelled.cluster_ids.max(initial=-1)))
        return top + 1 if top >= 0 else 0

    def labelled(self, shot_ids: Sequence[str]) -> LabelledShots:
        rows = self.corpus.rows_of(list(shot_ids))
        found = np.flatnonzero(rows >= 0)
        ids = [shot_ids[i] for i in found.tolist()]
        return LabelledShots(ids, self.corpus.exact_vectors(rows[found]), self.corpus.clusters_of(rows[found]))

    def feeds(self, clf: Classifier, *, labelled_ids: Sequence[str], size: int, seed: int) -> FeedPicks:
        started = time.perf_counter()
        rows = self.corpus.rows_of(list(labelled_ids))
        labelled_rows = np.unique(rows[rows >= 0])
        shards = self.runner.candidates(
            self.corpus, coef=clf.coef, intercept=clf.intercept, size=size, labelled_rows=labelled_rows
        )
        scanned = time.perf_counter()
        merged = merge_candidates(shards, size=size, max_candidates=self.max_candidates)
        random_rows = uniform_rows(self.corpus, size=size, excluded=labelled_rows, seed=seed)
        wanted = np.unique(np.concatenate([*merged.values(), random_rows]))
        exact = self._exact(clf, wanted)
        picked = pick_exact(merged, {r: p for r, (_sid, p) in exact.items()}, size=size)
        feeds = {name: [exact[r] for r in rows.tolist()] for name, rows in picked.items()}
        feeds["random"] = [exact[r] for r in random_rows.tolist()]
        info = {
            "scorer": "mapped",
            "shards": len(shards),
            "rows_scored": int(sum(c.rows_scored for c in shards)),
            "rows_total": int(sum(c.rows_total for c in shards)),
            "candidates": int(wanted.shape[0]),
            "margin": float(max((c.margin for c in shards), default=0.0)),
            # A capped feed holds the best rows by approximate score, not provably the exact ones.
            "exact": not any(any(c.capped.values()) for c in shards),
            "scan_s": scanned - started,
            "shard_s": [round(c.seconds, 4) for c in shards],
            "rescore_s": time.perf_counter() - scanned,
        }
        return FeedPicks(feeds, info)

    def sample(self, *, excluded_ids: Sequence[str], size: int, seed: int) -> list[str]:
        rows = self.corpus.rows_of(list(excluded_ids))
        picked = uniform_rows(self.corpus, size=size, excluded=np.unique(rows[rows >= 0]), seed=seed)
        return [str(sid) for sid in self.corpus.ids_of(picked)] if picked.shape[0] else []

    def reference(self, *, size: int) -> np.ndarray:
        # The exact float32 rows, as the in-memory view returns its own. This corpus orders rows by partition, so
        # above 2,048 shots it samples other (equally even) rows than the table order, and the quality of its
        # builds can differ from the in-memory view's by that sample's noise (al_scale.py prints the gap).
        deleted = self.corpus.deleted
        rows = np.setdiff1d(strided_rows(self.corpus.n_rows, size + int(deleted.shape[0])), deleted)
        return self.corpus.exact_vectors(rows[:size])

    def _exact(self, clf: Classifier, rows: np.ndarray) -> dict[int, tuple[str, float]]:
        """Exact float32 P(positive) of each corpus row, from the corpus's float32 vectors."""
        if not rows.shape[0]:
            return {}
        ids = self.corpus.ids_of(rows)
        p = clf.predict_proba(self.corpus.exact_vectors(rows), normalised=True)
        return {r: (sid, float(v)) for r, sid, v in zip(rows.tolist(), ids, p.tolist(), strict=True)}


def strided_rows(n_rows: int, size: int) -> np.ndarray:
    """Up to ``size`` distinct rows of ``n_rows``, evenly spaced from row 0 (all of them when fewer)."""
    if n_rows <= size:
        return np.arange(n_rows, dtype=np.int64)
    return np.unique(np.linspace(0, n_rows - 1, num=size).astype(np.int64))


def uniform_rows(corpus: Corpus, *, size: int, excluded: np.ndarray, seed: int) -> np.ndarray:
    """``size`` distinct corpus rows drawn uniformly from those not ``excluded`` nor deleted (O(size) draws)."""
    rng = np.random.default_rng(seed)
    banned = np.union1d(excluded, corpus.deleted)
    available = corpus.n_rows - banned.shape[0]
    want = min(size, available)
    picked: list[int] = []
    seen: set[int] = set()
    while len(picked) < want:
        # Generator.choice without replacement draws a small sample from a large range in O(sample).
        draw = rng.choice(corpus.n_rows, size=min(corpus.n_rows, 2 * (want - len(picked)) + 16), replace=False)
        ok = draw[~np.isin(draw, banned)]
        for r in ok.tolist():
            if r not in seen:
                seen.add(r)
                picked.append(r)
                if len(picked) == want:
                    break
    return np.array(picked, dtype=np.int64)


def make_scorer(shots: ShotStore, settings: Any) -> Scorer:
    """The scorer the settings ask for (``auto``: mapped from ``corpus_mapped_from`` shots on)."""
    if settings.corpus_scorer == "memory":
        return InMemoryScorer(shots)
    if settings.corpus_scorer == "mapped":
        return _mapped(shots, settings)
    return AutoScorer(shots, settings)


def _mapped(shots: ShotStore, settings: Any) -> MappedScorer:
    runner = ThreadShards(
        shards=settings.corpus_threads, prune=settings.corpus_prune, max_candidates=settings.corpus_max_candidates
    )
    return MappedScorer(
        shots,
        settings.resolved_corpus_dir,
        runner=runner,
        partitions=settings.corpus_partitions,
        max_candidates=settings.corpus_max_candidates,
    )


class AutoScorer:
    """``corpus_scorer=auto``: the in-memory scorer below ``corpus_mapped_from`` shots, the mapped one from there."""

    name = "auto"

    def __init__(self, shots: ShotStore, settings: Any) -> None:
        self.shots = shots
        self.threshold = int(settings.corpus_mapped_from)
        self.memory = InMemoryScorer(shots)
        self.mapped = _mapped(shots, settings)
        self._large_at: tuple[int, bool] | None = None

    def view(self) -> CorpusView:
        return self.mapped.view() if self._large() else self.memory.view()

    def search_corpus(self) -> Corpus | None:
        return self.mapped.search_corpus() if self._large() else None

    def _large(self) -> bool:
        version = self.shots.version()
        if self._large_at is None or self._large_at[0] != version:  # one row count per table version
            self._large_at = (version, self.shots.counts().get("shots", 0) >= self.threshold)
        return self._large_at[1]


def prepare_corpus(shots: ShotStore, settings: Any) -> Corpus | None:
    """Bring the compressed corpus up to the shots table where builds will use it (called at the end of ingest).

    Ingest is where the data already streams, so the first build after it does not pay for the corpus.
    """
    if settings.corpus_scorer == "memory" or not shots.has_shots():
        return None
    if settings.corpus_scorer == "auto" and shots.counts().get("shots", 0) < settings.corpus_mapped_from:
        return None
    return sync_corpus(shots, settings.resolved_corpus_dir, partitions=settings.corpus_partitions)
