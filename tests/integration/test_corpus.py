"""Builds over the memory-mapped compressed corpus equal builds over the in-memory float32 matrix.

Real stores in tmp_path: LanceDB holding scikit-learn's 1,797 handwritten
digits as shots (64-d, L2-normalised, clustered with k-means as ingest would)
and SQLite annotations of the label "digit 3". The same annotations are built
once per scorer; then shots are added and removed in LanceDB and the next build
must see exactly the table as it is now.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.cluster import KMeans
from sklearn.datasets import load_digits

from annotator_core.classifier import l2_rows
from annotator_core.corpus.files import open_corpus
from annotator_core.corpus.scorer import InMemoryScorer, MappedScorer, ThreadShards, make_scorer
from annotator_core.shot_store import ShotStore
from annotator_core.store import AnnotationStore
from annotator_core.workspace import LabelWorkspace

LABEL = "digit three"


def shot_rows(vectors: np.ndarray, ids: list[str], clusters: np.ndarray, video: str = "digits") -> list[dict]:
    return [
        {
            "shot_id": sid, "video_id": video, "start_frame": i, "end_frame": i + 1, "start_s": float(i),
            "end_s": float(i + 1), "thumbnail": b"", "cluster_id": int(clusters[i]), "encoder": "pixels",
            "vector": vectors[i].tolist(),
        }
        for i, sid in enumerate(ids)
    ]  # fmt: skip


@pytest.fixture()
def digits(make_settings):
    settings = make_settings(feed_size=20, n_clusters=10, corpus_partitions=12)
    data = load_digits()
    vectors = l2_rows(data.data.astype(np.float32))
    ids = [f"digits:{i}" for i in range(len(vectors))]
    clusters = KMeans(10, n_init=2, random_state=0).fit_predict(vectors)
    shots = ShotStore.from_settings(settings)
    shots.upsert_shots(shot_rows(vectors, ids, clusters))
    store = AnnotationStore.from_settings(settings)
    store.labels.create(LABEL)
    truth = data.target == 3
    rng = np.random.default_rng(0)
    for i in rng.choice(np.flatnonzero(truth), 25, replace=False).tolist():
        store.annotations.annotate(LABEL, ids[i], "ann", True, source="search")
    for i in rng.choice(np.flatnonzero(~truth), 60, replace=False).tolist():
        store.annotations.annotate(LABEL, ids[i], "ann", False, source="random")
    return settings, shots, store, vectors, ids


def build(settings, shots, store, scorer):
    return LabelWorkspace(LABEL, shots=shots, store=store, settings=settings, scorer=scorer).build(created_by="t")


@pytest.mark.parametrize("shards", [1, 3])
@pytest.mark.parametrize("prune", [False, True])
def test_mapped_build_equals_in_memory_build(digits, shards: int, prune: bool) -> None:
    settings, shots, store, _vectors, _ids = digits
    exact = build(settings, shots, store, InMemoryScorer(shots))
    runner = ThreadShards(shards=shards, prune=prune)
    mapped = build(settings, shots, store, MappedScorer(shots, settings.resolved_corpus_dir, runner=runner))
    for name in ("top_positive", "top_negative", "borderline"):
        assert [i.shot_id for i in mapped.feeds[name]] == [i.shot_id for i in exact.feeds[name]], name
        np.testing.assert_allclose(
            [i.score for i in mapped.feeds[name]], [i.score for i in exact.feeds[name]], atol=1e-6
        )
    labelled = set(store.annotations.consensus(LABEL))
    assert len(mapped.feeds["random"]) == 20 and not {i.shot_id for i in mapped.feeds["random"]} & labelled
    assert mapped.model_quality == exact.model_quality
    assert mapped.data_diversity == exact.data_diversity and mapped.extra["clustered"]
    assert mapped.extra["n_shots"] == exact.extra["n_shots"] == 1797
    assert mapped.extra["scoring"]["scorer"] == "mapped" and mapped.extra["scoring"]["exact"]
    assert mapped.extra["scoring"]["shards"] == shards


def test_the_next_build_sees_shots_added_and_removed_since_the_corpus_was_written(digits) -> None:
    settings, shots, store, vectors, ids = digits
    scorer = MappedScorer(shots, settings.resolved_corpus_dir, runner=ThreadShards(shards=2))
    first = build(settings, shots, store, scorer)
    assert first.extra["n_shots"] == 1797
    corpus = open_corpus(settings.resolved_corpus_dir)
    assert corpus is not None and len(corpus.segments) == 1 and corpus.version == shots.version()

    # A later ingest: 30 new shots, each the top shot moved further along the classifier (they must top the feed) ...
    coef = LabelWorkspace(LABEL, shots=shots, store=store, settings=settings, scorer=scorer).classifier().coef
    top_vector = vectors[ids.index(first.feeds["top_positive"][0].shot_id)]
    rng = np.random.default_rng(1)
    noise = rng.normal(scale=1e-3, size=(30, vectors.shape[1])).astype(np.float32)
    new = l2_rows(top_vector + 0.3 * coef / np.linalg.norm(coef) + noise)
    new_ids = [f"later:{i}" for i in range(30)]
    shots.upsert_shots(shot_rows(new, new_ids, np.zeros(30, np.int64), video="later"))
    # ... and a re-ingested title whose 10 old shots are gone.
    gone = [f"digits:{i}" for i in range(1787, 1797)]
    shots.upsert_shots(shot_rows(vectors[1787:1797], gone, np.zeros(10, np.int64), video="redo"))
    shots.delete_video_shots("redo")

    second = build(settings, shots, store, scorer)
    corpus = open_corpus(settings.resolved_corpus_dir)
    assert corpus is not None and corpus.version == shots.version()
    assert len(corpus.segments) == 2  # the new shots were appended as a segment, not a rebuild
    assert second.extra["n_shots"] == 1797 + 30 - 10
    top = [i.shot_id for i in second.feeds["top_positive"]]
    assert set(top[:20]) <= set(new_ids)
    every_feed = {i.shot_id for items in second.feeds.values() for i in items}
    assert not every_feed & set(gone)
    exact = build(settings, shots, store, InMemoryScorer(shots))
    for name in ("top_positive", "top_negative", "borderline"):
        assert [i.shot_id for i in second.feeds[name]] == [i.shot_id for i in exact.feeds[name]], name


def test_auto_scorer_switches_at_the_threshold(digits, make_settings) -> None:
    settings, shots, store, _vectors, _ids = digits
    small = make_scorer(shots, settings.model_copy(update={"corpus_mapped_from": 10_000}))
    large = make_scorer(shots, settings.model_copy(update={"corpus_mapped_from": 1000}))
    assert build(settings, shots, store, small).extra["scoring"]["scorer"] == "memory"
    assert build(settings, shots, store, large).extra["scoring"]["scorer"] == "mapped"


def test_a_re_clustering_reaches_the_next_build(digits) -> None:
    settings, shots, store, _vectors, ids = digits
    scorer = MappedScorer(shots, settings.resolved_corpus_dir, runner=ThreadShards(shards=1))
    build(settings, shots, store, scorer)
    shots.set_cluster_ids(ids, [i % 3 for i in range(len(ids))])  # as ingest's k-means does after new shots
    mapped = build(settings, shots, store, scorer)
    exact = build(settings, shots, store, InMemoryScorer(shots))
    assert mapped.data_diversity == exact.data_diversity
