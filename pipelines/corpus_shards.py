"""Corpus shards on Ray actors: a build's candidates computed where the corpus lives, for catalogs past one machine.

Each :class:`CorpusShard` actor maps the compressed corpus files
(:mod:`annotator_core.corpus.files`) and scores only its own partitions
(shard k of K holds the k-th contiguous range of partition ids: about N/K rows,
one contiguous run per segment, and only those pages are ever read on its node). :class:`RayShards` is a
:class:`~annotator_core.corpus.scorer.ShardRunner`: the build sends the
classifier to every shard at once and merges their candidates with the same
code as the in-process threads, so a sharded build gives the same feeds.

Failure rule: an actor that dies is restarted by Ray (``max_restarts``), its
constructor re-opens the corpus files, and the call is retried
(``max_task_retries``). If a shard still cannot answer, the build fails with
:class:`CorpusShardsFailed`, which says the build can simply be run again —
never a feed computed from part of the corpus.

The corpus folder must be readable at the same path on every node (a shared
volume, as the RayJob mounts the data folder); ``corpus_dir`` names it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import ray
from threadpoolctl import threadpool_limits

from annotator_core.corpus.candidates import Candidates, shard_candidates, shard_parts
from annotator_core.corpus.files import Corpus, open_corpus
from annotator_core.errors import StoreUnavailable

RESTARTS = 2


class CorpusShardsFailed(StoreUnavailable):
    """A corpus shard could not answer even after Ray restarted it; the build is safe to retry."""


@ray.remote(max_restarts=RESTARTS, max_task_retries=RESTARTS, num_cpus=1)
class CorpusShard:
    """Shard ``shard`` of ``shards`` of the corpus in ``folder``, opened (memory-mapped) in the constructor."""

    def __init__(
        self, folder: str, shard: int, shards: int, *, prune: bool = False, max_candidates: int = 4096
    ) -> None:
        self.folder = Path(folder)
        self.shard = shard
        self.shards = shards
        self.prune = prune
        self.max_candidates = max_candidates
        self.corpus: Corpus | None = open_corpus(self.folder)

    def pid(self) -> int:
        return os.getpid()

    def node(self) -> str:
        return str(ray.get_runtime_context().get_node_id())

    def rows(self, version: int) -> int:
        corpus = self._corpus(version)
        return sum(p.hi - p.lo for p in shard_parts(corpus, shard=self.shard, shards=self.shards))

    def candidates(
        self, version: int, coef: np.ndarray, intercept: float, size: int, labelled_rows: np.ndarray
    ) -> Candidates:
        corpus = self._corpus(version)
        with threadpool_limits(1):  # one core per shard: small block GEMVs lose to BLAS threads spinning
            return shard_candidates(
            corpus, shard_parts(corpus, shard=self.shard, shards=self.shards), coef=coef, intercept=intercept,
            size=size, labelled_rows=labelled_rows, prune=self.prune, max_candidates=self.max_candidates,
            shard=f"ray-{self.shard}/{self.shards}@{os.getpid()}",
        )  # fmt: skip

    def _corpus(self, version: int) -> Corpus:
        if self.corpus is None or self.corpus.version != version:
            self.corpus = open_corpus(self.folder)
        if self.corpus is None or self.corpus.version != version:
            found = "no corpus" if self.corpus is None else f"version {self.corpus.version}"
            raise CorpusShardsFailed(
                f"shard {self.shard} finds {found} in {self.folder}, the build expects version {version}; "
                "the corpus folder must be shared by every node — build again once it is."
            )
        return self.corpus


class RayShards:
    """A :class:`ShardRunner` over ``shards`` Ray actors (on the cluster ``ray.init`` joined)."""

    def __init__(
        self, folder: str | Path, *, shards: int, prune: bool = False, max_candidates: int = 4096, **options: Any
    ) -> None:
        self.folder = str(folder)
        self.actors = [
            CorpusShard.options(**options).remote(  # type: ignore[attr-defined]
                self.folder, k, shards, prune=prune, max_candidates=max_candidates
            )
            for k in range(shards)
        ]

    def candidates(
        self, corpus: Corpus, *, coef: np.ndarray, intercept: float, size: int, labelled_rows: np.ndarray
    ) -> list[Candidates]:
        return self.collect(self.submit(corpus, coef=coef, intercept=intercept, size=size, labelled_rows=labelled_rows))

    def submit(
        self, corpus: Corpus, *, coef: np.ndarray, intercept: float, size: int, labelled_rows: np.ndarray
    ) -> list[Any]:
        """Send the classifier to every shard at once; returns the calls in flight."""
        coef_ref = ray.put(np.asarray(coef, dtype=np.float32))
        rows_ref = ray.put(np.asarray(labelled_rows, dtype=np.int64))
        return [a.candidates.remote(corpus.version, coef_ref, intercept, size, rows_ref) for a in self.actors]

    def collect(self, calls: list[Any]) -> list[Candidates]:
        """Every shard's answer, or :class:`CorpusShardsFailed` when one cannot answer."""
        try:
            return list(ray.get(calls))
        except (ray.exceptions.RayActorError, ray.exceptions.ActorUnavailableError) as exc:
            raise CorpusShardsFailed(
                f"a corpus shard died during the build and did not come back after its restarts "
                f"({type(exc).__name__}); no feed was computed from part of the corpus — build again."
            ) from None
        except ray.exceptions.RayTaskError as exc:
            cause = exc.as_instanceof_cause()
            if isinstance(cause, CorpusShardsFailed):
                raise CorpusShardsFailed(str(cause).split("\n")[-1]) from None
            raise

    def pids(self) -> list[int]:
        return list(ray.get([a.pid.remote() for a in self.actors]))

    def close(self) -> None:
        for actor in self.actors:
            ray.kill(actor)
