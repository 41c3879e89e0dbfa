"""The corpus map step over a real LanceDB table: a full layout fitted on a sample, new shots placed beside
their kind without a refit, shots that left the corpus forgotten, and `va map` (issue 15)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from annotator_core.records import shot_id
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from pipelines.corpus_map import map_shots
from va_cli.main import cli

DIM = 32


def _blobs(n: int, *, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Unit vectors around four well-separated centres, with their centre."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 4
    x = np.eye(DIM, dtype=np.float32)[labels] * 3 + rng.standard_normal((n, DIM)).astype(np.float32) * 0.3
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32), labels


def _rows(vectors: np.ndarray, *, video: str) -> list[dict]:
    return [
        {"shot_id": shot_id(video, i * 10), "video_id": video, "start_frame": i * 10, "end_frame": i * 10 + 10,
         "start_s": i * 0.4, "end_s": i * 0.4 + 0.4, "thumbnail": b"", "cluster_id": -1, "encoder": "synthetic",
         "vector": v.tolist()}
        for i, v in enumerate(vectors)
    ]  # fmt: skip


def _places(store: ShotStore) -> dict[str, dict]:
    return {r["shot_id"]: r for r in store.read_shot_map().to_pylist()}


@pytest.mark.timeout(900)  # the first UMAP call in a process compiles numba code (minutes on a loaded machine)
def test_full_then_incremental_then_removal(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, map_fit_sample=150)
    store = ShotStore.from_settings(settings)
    first, first_kind = _blobs(200, seed=0)
    store.upsert_shots(_rows(first, video="a"))

    report = map_shots(store, settings=settings)
    assert (report.mode, report.placed, report.fitted, report.layout_version) == ("full", 200, 150, 1)
    places = _places(store)
    assert len(places) == 200 and sum(p["fitted"] for p in places.values()) == 150
    assert map_shots(store, settings=settings).placed == 0  # nothing new: nothing written
    assert _places(store) == places

    # Ten new shots are placed among the fitted shots of their own kind; the old places do not move.
    new, new_kind = _blobs(12, seed=9)
    store.upsert_shots(_rows(new, video="b"))
    report = map_shots(store, settings=settings)
    assert (report.mode, report.placed, report.layout_version) == ("incremental", 12, 1)
    after = _places(store)
    assert {k: after[k] for k in places} == places
    old = [places[shot_id("a", i * 10)] for i in range(200)]
    anchors = np.array([[p["x"], p["y"]] for p in old if p["fitted"]])
    kinds = np.array([first_kind[i] for i, p in enumerate(old) if p["fitted"]])
    for i, kind in enumerate(new_kind):
        p = after[shot_id("b", i * 10)]
        assert not p["fitted"]
        nearest = np.linalg.norm(anchors - np.array([p["x"], p["y"]]), axis=1).argsort()[:5]
        assert (kinds[nearest] == kind).sum() >= 3  # a majority of its nearest fitted neighbours

    # A removed video's shots leave the map; --full lays it out again as layout 2.
    store.delete_video_shots("b")
    assert map_shots(store, settings=settings).removed == 12
    assert set(_places(store)) == set(places)
    result = CliRunner().invoke(cli, ["map", "--full"], env={"VA_DATA_DIR": str(tmp_path), "VA_MAP_FIT_SAMPLE": "150"})
    assert result.exit_code == 0, result.output
    assert "full: 200 shots placed" in result.output and "layout 2" in result.output
    assert {p["layout_version"] for p in _places(store).values()} == {2}


def test_map_on_an_empty_store_and_the_cli_says_what_to_do(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    assert map_shots(ShotStore.from_settings(settings), settings=settings).mode == "none"
    result = CliRunner().invoke(cli, ["map"], env={"VA_DATA_DIR": str(tmp_path)})
    assert result.exit_code != 0 and "va ingest" in result.output
