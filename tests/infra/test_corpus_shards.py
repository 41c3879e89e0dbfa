"""Corpus shards on Ray actors: a build on a real two-node Ray cluster equals the in-process build, and a shard
killed during a build gives the complete result or a clear error.

The cluster is the one `tests/infra/test_ray_cluster.py` starts (a head and a second node on loopback, one
CPU each), so the two shard actors (one CPU each) necessarily run on different nodes. The corpus is the
digits corpus of `tests/integration/test_corpus.py`, in LanceDB and in corpus files under tmp_path, which
both nodes read at the same path as a shared volume would give them.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator

import numpy as np
import pytest
import ray
from sklearn.datasets import load_digits
from test_ray_cluster import ray_cluster  # noqa: F401  (the two-node cluster fixture)

from annotator_core.classifier import l2_rows
from annotator_core.corpus.scorer import InMemoryScorer, MappedScorer
from annotator_core.shot_store import ShotStore
from annotator_core.store import AnnotationStore
from annotator_core.workspace import LabelWorkspace
from pipelines.corpus_shards import CorpusShardsFailed, RayShards

pytestmark = pytest.mark.slow
LABEL = "digit three"


@pytest.fixture()
def digits(make_settings):
    settings = make_settings(feed_size=20, corpus_partitions=16)
    data = load_digits()
    vectors = l2_rows(data.data.astype(np.float32))
    shots = ShotStore.from_settings(settings)
    shots.upsert_shots(
        [
            {"shot_id": f"digits:{i}", "video_id": "digits", "start_frame": i, "end_frame": i + 1,
             "start_s": float(i), "end_s": float(i + 1), "thumbnail": b"", "cluster_id": i % 10,
             "encoder": "pixels", "vector": v.tolist()}
            for i, v in enumerate(vectors)
        ]
    )  # fmt: skip
    store = AnnotationStore.from_settings(settings)
    store.labels.create(LABEL)
    rng = np.random.default_rng(0)
    for i in rng.choice(np.flatnonzero(data.target == 3), 20, replace=False).tolist():
        store.annotations.annotate(LABEL, f"digits:{i}", "ann", True, source="search")
    for i in rng.choice(np.flatnonzero(data.target != 3), 40, replace=False).tolist():
        store.annotations.annotate(LABEL, f"digits:{i}", "ann", False, source="random")
    return settings, shots, store


@pytest.fixture()
def on_cluster(ray_cluster: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:  # noqa: F811
    """This test process joined to the two-node cluster as a driver, and disconnected afterwards."""
    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")  # as the cluster's own processes run
    ray.init(address=ray_cluster, include_dashboard=False, log_to_driver=False)
    try:
        yield ray_cluster
    finally:
        ray.shutdown()


def build(settings, shots, store, scorer):
    return LabelWorkspace(LABEL, shots=shots, store=store, settings=settings, scorer=scorer).build(created_by="t")


def feeds_of(result) -> dict[str, list[str]]:
    return {name: [i.shot_id for i in items] for name, items in result.feeds.items() if name != "random"}


def test_a_build_on_a_two_node_cluster_equals_the_in_process_build(digits, on_cluster: str) -> None:
    settings, shots, store = digits
    exact = build(settings, shots, store, InMemoryScorer(shots))
    runner = RayShards(settings.resolved_corpus_dir, shards=2)
    try:
        sharded = build(settings, shots, store, MappedScorer(shots, settings.resolved_corpus_dir, runner=runner))
        nodes = {n["NodeID"] for n in ray.nodes() if n["Alive"]}
        assert len(nodes) == 2 and len(set(runner.pids())) == 2
    finally:
        runner.close()
    assert feeds_of(sharded) == feeds_of(exact)
    assert sharded.extra["scoring"]["shards"] == 2 and sharded.extra["scoring"]["rows_total"] == 1797
    assert sharded.model_quality == exact.model_quality and sharded.data_diversity == exact.data_diversity


class KillOneShard(RayShards):
    """Kills shard ``victim``'s process (SIGKILL) after the build's calls are sent and before they are answered."""

    def __init__(self, *args, victim: int, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.victim = victim
        self.killed: list[int] = []

    def candidates(self, corpus, **kwargs):
        pid = self.pids()[self.victim]
        calls = self.submit(corpus, **kwargs)
        os.kill(pid, signal.SIGKILL)
        self.killed.append(pid)
        return self.collect(calls)


def test_a_shard_killed_during_a_build_restarts_or_fails_clearly(digits, on_cluster: str) -> None:
    settings, shots, store = digits
    exact = feeds_of(build(settings, shots, store, InMemoryScorer(shots)))
    folder = settings.resolved_corpus_dir

    # Restarts allowed (the default): the killed shard re-opens the corpus files and the build completes.
    runner = KillOneShard(folder, shards=2, victim=0)
    try:
        result = build(settings, shots, store, MappedScorer(shots, folder, runner=runner))
        assert feeds_of(result) == exact
        assert runner.killed and runner.killed[0] not in runner.pids()  # it was restarted, not spared
    finally:
        runner.close()

    # No restarts: the build fails with an error that says to build again, and shows nothing partial.
    runner = KillOneShard(folder, shards=2, victim=1, max_restarts=0, max_task_retries=0)
    try:
        with pytest.raises(CorpusShardsFailed, match=r"died during the build.*build again"):
            build(settings, shots, store, MappedScorer(shots, folder, runner=runner))
        assert runner.killed
    finally:
        runner.close()
