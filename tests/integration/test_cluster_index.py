"""k-means cluster ids and the ANN index over a real LanceDB table in a temporary folder."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from annotator_core.records import shot_id
from annotator_core.shot_store import ShotStore
from pipelines.cluster import cluster_shots, fit_clusters
from pipelines.index import MIN_PARTITION_ROWS, ensure_index, partitions_for

DIM = 64


def _shot_rows(vectors: np.ndarray, *, first: int = 0, per_video: int = 100) -> list[dict]:
    rows = []
    for i, vector in enumerate(vectors, start=first):
        video = f"vid{i // per_video:04d}"
        frame = (i % per_video) * 10
        rows.append(
            {
                "shot_id": shot_id(video, frame),
                "video_id": video,
                "start_frame": frame,
                "end_frame": frame + 10,
                "start_s": frame / 25,
                "end_s": (frame + 10) / 25,
                "thumbnail": b"",
                "cluster_id": -1,
                "encoder": "synthetic",
                "vector": vector.tolist(),
            }
        )
    return rows


def _blobs(n: int, *, centres: int, seed: int, spread: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around ``centres`` random directions (fixed by seed 0) and which centre each came from."""
    centre = np.random.default_rng(0).standard_normal((centres, DIM)).astype(np.float32)
    rng = np.random.default_rng(seed)
    truth = rng.integers(0, centres, n)
    x = centre[truth] + spread * rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True), truth


def _same_partition(a: np.ndarray, b: np.ndarray) -> bool:
    """True when the two labelings group the items identically (cluster numbers may differ)."""
    pairs = set(zip(a.tolist(), b.tolist(), strict=True))
    return len(pairs) == len(set(a.tolist())) == len(set(b.tolist()))


def test_cluster_shots_writes_the_clusters_of_real_footage(sample_videos_dir: Path, tmp_path: Path) -> None:
    import decord

    from annotator_core.encoders import load_encoder

    encoder = load_encoder("handcrafted")
    shots, titles = [], []
    for title, name in enumerate(["bikes.mp4", "bigbuckbunny.mp4"]):
        reader = decord.VideoReader(str(sample_videos_dir / name), width=256, height=144)
        for start in range(0, 120, 12):
            shots.append(reader.get_batch([start, start + 4, start + 8]).asnumpy())
            titles.append(title)
    vectors = encoder.embed_shots(shots)
    store = ShotStore(str(tmp_path / "lancedb"))
    store.upsert_shots(_shot_rows(vectors, per_video=10))

    report = cluster_shots(store, k=2, seed=0)
    assert report.shots == len(shots) and sorted(report.sizes) == [10, 10]
    written = store.vectors()
    order = np.argsort([int(s.split(":")[0][3:]) * 1000 + int(s.split(":")[1]) for s in written.ids])
    assert _same_partition(written.cluster_ids[order], np.array(titles))
    again = cluster_shots(store, k=2, seed=0)  # same seed, same ids; the keyed write adds no rows
    assert again.sizes == report.sizes and store.counts()["shots"] == len(shots)
    np.testing.assert_array_equal(store.vectors().cluster_ids, written.cluster_ids)


def test_fit_clusters_recovers_blobs_and_is_seeded() -> None:
    x, truth = _blobs(3000, centres=8, seed=1, spread=0.3)
    labels = fit_clusters(x, k=8, seed=3)
    assert _same_partition(labels, truth)
    np.testing.assert_array_equal(labels, fit_clusters(x, k=8, seed=3))
    np.testing.assert_array_equal(fit_clusters(x[:3], k=8), [0, 1, 2])  # fewer shots than clusters


def test_cluster_shots_on_an_empty_store(tmp_path: Path) -> None:
    report = cluster_shots(ShotStore(str(tmp_path / "lancedb")), k=10)
    assert report.shots == 0 and report.sizes == []


def test_partitions_follow_the_table_size() -> None:
    assert partitions_for(1_000_000) == 1000
    assert partitions_for(5000) == 5
    assert partitions_for(5000, configured=64) == 64


@pytest.mark.parametrize("index_type", ["IVF_SQ", "IVF_FLAT"])
def test_index_lifecycle_and_recall(tmp_path: Path, make_settings, index_type: str) -> None:
    settings = make_settings(index_threshold=4000, index_type=index_type, search_nprobes=4, search_refine_factor=4)
    store = ShotStore(str(tmp_path / "lancedb"), nprobes=settings.search_nprobes, refine_factor=4)
    assert ensure_index(store, settings=settings).action == "exact"  # no table yet

    x, _ = _blobs(3000, centres=20, seed=1)
    store.upsert_shots(_shot_rows(x))
    report = ensure_index(store, settings=settings)
    assert report.action == "exact" and report.rows == 3000
    indices = store.db.open_table("shots").list_indices()
    assert not [i for i in indices if list(i.columns) == ["vector"]]  # exact search below the threshold
    assert {tuple(i.columns) for i in indices} == {("shot_id",), ("video_id",)}  # keys are always indexed

    more, _ = _blobs(2000, centres=20, seed=2)
    store.upsert_shots(_shot_rows(more, first=3000))
    report = ensure_index(store, settings=settings)
    assert (report.action, report.rows, report.partitions) == ("created", 5000, 5000 // MIN_PARTITION_ROWS)
    assert ensure_index(store, settings=settings).action == "current"

    everything = np.concatenate([x, more])
    all_ids = [r["shot_id"] for r in _shot_rows(everything)]
    queries, _ = _blobs(30, centres=20, seed=9)
    recalls = []
    for q in queries:
        exact = {all_ids[i] for i in np.argsort(-(everything @ q))[:10]}
        hits = store.search(q, k=10)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        recalls.append(len(exact & {h.shot_id for h in hits}) / 10)
    assert np.mean(recalls) >= 0.9

    # A shot searched by example finds itself first, with the index in place.
    hit = store.search(everything[1234], k=1)[0]
    assert hit.shot_id == all_ids[1234] and hit.score == pytest.approx(1.0, abs=1e-3)

    # A filter still applies with the index in place (prefiltered, so all k come from that video).
    filtered = store.search(everything[0], k=5, where="video_id = 'vid0042'")
    assert len(filtered) == 5 and {h.video_id for h in filtered} == {"vid0042"}

    few, _ = _blobs(300, centres=20, seed=3)  # under REBUILD_FRACTION of the indexed rows: appended
    store.upsert_shots(_shot_rows(few, first=5000))
    report = ensure_index(store, settings=settings)
    assert report.action == "extended"
    stats = store.db.open_table("shots").index_stats("vector_idx")
    assert stats.num_unindexed_rows == 0 and stats.num_indexed_rows == 5300
    assert store.search(few[7], k=1)[0].shot_id == shot_id("vid0050", 70)

    many, _ = _blobs(2000, centres=20, seed=4)  # far more new rows: partitions retrained
    store.upsert_shots(_shot_rows(many, first=5300))
    report = ensure_index(store, settings=settings)
    assert (report.action, report.rows) == ("rebuilt", 7300)
    stats = store.db.open_table("shots").index_stats("vector_idx")
    assert stats.num_indexed_rows == 7300 and stats.distance_type == "cosine"
