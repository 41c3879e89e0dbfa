"""Search by example and by vector over HTTP against the real service (the digits corpus, 64-d vectors)."""

from __future__ import annotations

import numpy as np
from va_testing import assert_error


def _vector_of(service, shot_id: str) -> list[float]:
    from annotator_core.shot_store import ShotStore

    return [float(v) for v in ShotStore.from_settings(service.settings).get_shot(shot_id, columns=["vector"])["vector"]]


def test_search_by_vector_finds_the_shot_and_agrees_with_search_by_example(service) -> None:
    viewer = service.client("vic")
    seed = service.shots_of_digit(3, 1)[0]
    by_vector = viewer.post("/api/search/vector", json={"vector": _vector_of(service, seed), "limit": 21})
    assert by_vector.status_code == 200, by_vector.text
    body = by_vector.json()
    assert body["mode"] == "vector" and len(body["results"]) == 21
    first = body["results"][0]
    assert first["shot_id"] == seed and abs(first["score"] - 1.0) < 1e-4
    assert {"shot_id", "video_id", "start_s", "end_s", "score", "title"} <= set(first)
    assert first["title"].startswith("Digits reel")
    scores = [r["score"] for r in body["results"]]
    assert scores == sorted(scores, reverse=True)
    threes = sum(service.digit_of.get(r["shot_id"]) == 3 for r in body["results"])
    assert threes >= 15, threes

    like = viewer.get("/api/search", params={"like": seed, "limit": 20}).json()
    assert like["mode"] == "like"
    assert [r["shot_id"] for r in like["results"]] == [r["shot_id"] for r in body["results"][1:]]


def test_search_by_vector_filters_by_video_and_title(service) -> None:
    viewer = service.client("vic")
    seed = service.shots_of_digit(5, 1)[0]
    vector = _vector_of(service, seed)
    in_video = viewer.post("/api/search/vector", json={"vector": vector, "video": "digits04", "limit": 5}).json()
    assert len(in_video["results"]) == 5 and {r["video_id"] for r in in_video["results"]} == {"digits04"}
    by_title = viewer.post("/api/search/vector", json={"vector": vector, "title": "reel 7", "limit": 5}).json()
    assert {r["video_id"] for r in by_title["results"]} == {"digits07"}
    nothing = viewer.post("/api/search/vector", json={"vector": vector, "title": "no such title"}).json()
    assert nothing == {"mode": "none", "results": []}


def test_search_by_vector_refuses_bad_vectors_with_the_field_named(service) -> None:
    viewer = service.client("vic")
    wrong_width = assert_error(viewer.post("/api/search/vector", json={"vector": [0.5] * 3}), 422, "invalid")
    assert wrong_width["field"] == "vector" and "3 values; the shots table expects 64" in wrong_width["message"]
    zeros = assert_error(viewer.post("/api/search/vector", json={"vector": [0.0] * 64}), 422, "invalid")
    assert zeros["field"] == "vector" and "not all zero" in zeros["message"]
    too_many = {"vector": np.ones(64).tolist(), "limit": service.settings.search_limit + 1}
    assert assert_error(viewer.post("/api/search/vector", json=too_many), 422)["field"] == "limit"
    empty = assert_error(viewer.post("/api/search/vector", json={"vector": []}), 422)
    assert "vector" in str(empty.get("field"))
    assert_error(service.client().post("/api/search/vector", json={"vector": [1.0] * 64}), 401, "unauthenticated")
