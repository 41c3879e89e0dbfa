"""The shot store on a real LanceDB in a temporary folder."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest

from annotator_core.errors import DimensionMismatch, NotFoundError
from annotator_core.shot_store import ShotStore


def _unit(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    x = rng.normal(size=(n, dim)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def _shots(video_id: str, vectors: np.ndarray) -> list[dict]:
    return [
        dict(
            shot_id=f"{video_id}:{i * 10}",
            video_id=video_id,
            start_frame=i * 10,
            end_frame=i * 10 + 10,
            start_s=i * 0.4,
            end_s=i * 0.4 + 0.4,
            thumbnail=b"\xff\xd8jpeg",
            cluster_id=-1,
            encoder="test",
            vector=v,
        )
        for i, v in enumerate(vectors)
    ]


def _video(video_id: str, status: str = "done", error: str = "") -> dict:
    return dict(
        video_id=video_id,
        uri=f"/videos/{video_id}.mp4",
        title=video_id,
        duration_s=4.0,
        fps=25.0,
        width=320,
        height=240,
        n_frames=100,
        n_shots=3,
        status=status,
        error=error,
        ingested_at=datetime.now(UTC),
        encoder="test",
    )


@pytest.fixture()
def store(tmp_path) -> ShotStore:
    return ShotStore(str(tmp_path / "lancedb"))


def test_upserting_the_same_rows_twice_leaves_counts_unchanged(store: ShotStore) -> None:
    vectors = _unit(np.random.default_rng(0), 30, 16)
    store.upsert_videos([_video("a"), _video("b", "failed", "not a video")])
    store.upsert_shots(_shots("a", vectors))
    store.upsert_shots(_shots("a", vectors))
    store.upsert_videos([_video("a"), _video("b", "failed", "not a video")])
    assert store.counts() == {"videos": 2, "shots": 30, "videos_failed": 1, "videos_damaged": 0}
    assert store.done_video_ids() == {"a"}
    assert store.get_video("b")["error"] == "not a video"


def test_get_shots_keeps_the_order_asked_and_skips_unknown_ids(store: ShotStore) -> None:
    store.upsert_shots(_shots("a", _unit(np.random.default_rng(1), 5, 8)))
    rows = store.get_shots(["a:20", "nope:0", "a:0"])
    assert [r["shot_id"] for r in rows] == ["a:20", "a:0"]
    assert rows[0]["start_frame"] == 20
    with pytest.raises(NotFoundError, match="no shot 'x:1'"):
        store.get_shot("x:1")
    # A quote in an id is data, never SQL.
    assert store.get_shots(["a:0' OR '1'='1"]) == []


def test_vector_matrix_is_cached_until_the_table_changes(store: ShotStore) -> None:
    vectors = _unit(np.random.default_rng(2), 12, 8)
    store.upsert_shots(_shots("a", vectors))
    first = store.vectors()
    assert first.matrix.dtype == np.float32 and first.matrix.shape == (12, 8)
    order = np.argsort(first.ids.astype(str))
    np.testing.assert_allclose(first.matrix[order][0], vectors[0], rtol=1e-6)
    assert store.vectors() is first
    store.set_cluster_ids(["a:0", "a:10"], [3, 4])
    second = store.vectors()
    assert second is not first
    assert dict(zip(second.ids.tolist(), second.cluster_ids.tolist(), strict=True))["a:10"] == 4


def test_search_by_example_finds_the_shot_itself_first_and_filters(store: ShotStore) -> None:
    vectors = _unit(np.random.default_rng(3), 40, 32)
    store.upsert_shots(_shots("a", vectors[:20]))
    store.upsert_shots(_shots("b", vectors[20:]))
    hits = store.search(vectors[5], k=5)
    assert hits[0].shot_id == "a:50" and hits[0].score == pytest.approx(1.0, abs=1e-5)
    assert all(h.score <= hits[0].score for h in hits)
    only_b = store.search(vectors[5], k=5, where="video_id = 'b'")
    assert {h.video_id for h in only_b} == {"b"}
    with pytest.raises(DimensionMismatch, match="query vector has 3 values; the shots table expects 32"):
        store.search(np.ones(3), k=1)


def test_sample_is_reproducible_and_without_replacement(store: ShotStore) -> None:
    store.upsert_shots(_shots("a", _unit(np.random.default_rng(4), 50, 8)))
    first = store.sample(20, seed=7)
    assert first == store.sample(20, seed=7)
    assert len(set(first)) == 20
    assert len(store.sample(500, seed=1)) == 50


def test_a_table_keeps_its_vector_width(store: ShotStore) -> None:
    store.upsert_shots(_shots("a", _unit(np.random.default_rng(5), 3, 8)))
    with pytest.raises(DimensionMismatch, match="holds 8-d vectors but the encoder makes 16-d"):
        store.upsert_shots(_shots("b", _unit(np.random.default_rng(6), 3, 16)))


def test_missing_table_says_how_to_fill_it(store: ShotStore) -> None:
    with pytest.raises(NotFoundError, match="run `va ingest PATH`"):
        store.vectors()
