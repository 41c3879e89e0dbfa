"""The label query routes as downstream apps see them: a real `bentoml serve`, a real `scores` table in LanceDB.

The scores are the published classifiers' own probabilities of real (handcrafted) embeddings of real footage,
written with ShotStore.upsert_scores as `va score-corpus` writes them.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from scoring_support import ENCODER, WINDOW, Corpus, add_version, make_store, start_server, stop_server
from va_testing import poll

pytestmark = pytest.mark.slow

FPS = 25.0
TITLES = {"bikes": "Bikes at dusk", "bigbuckbunny": "Big Buck Bunny", "carphone_pristine": "Car phone"}


def _classifier(settings: Any, label: str, version: int | None = None) -> Any:
    from annotator_core.classifier import Classifier
    from annotator_core.store import AnnotationStore

    store = AnnotationStore.from_settings(settings)
    try:
        return Classifier.from_bytes(store.versions.get(label, version).model)
    finally:
        store.db.close()


def _write_scores(settings: Any, corpus: Corpus, label: str, version: int, ids: list[str] | None = None) -> None:
    from annotator_core.shot_store import ShotStore

    pick = [i for i, s in enumerate(corpus.ids) if ids is None or s in set(ids)]
    probs = _classifier(settings, label, version).predict_proba(corpus.vectors[pick])
    rows = [
        {
            "shot_id": corpus.ids[i],
            "label": label,
            "version": version,
            "score": float(p),
            "model_tag": f"{label}:v{version}",
        }
        for i, p in zip(pick, probs, strict=True)
    ]
    ShotStore.from_settings(settings).upsert_scores(rows)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory, corpus: Corpus) -> Iterator[tuple[str, Any]]:
    """Two published labels, every shot scored by them, three titled videos with real shot times."""
    from annotator_core.shot_store import ShotStore
    from serving.model_store import publish

    folder = tmp_path_factory.mktemp("query")
    settings = make_store(folder / "va-data", corpus)
    store = ShotStore.from_settings(settings)
    from annotator_core.records import VideoRecord

    videos = [VideoRecord(video_id=v, uri=f"/footage/{v}.mp4", title=t, fps=FPS) for v, t in TITLES.items()]
    store.upsert_videos([v.model_dump() for v in videos])
    store.upsert_shots(
        [
            {
                "shot_id": sid,
                "video_id": sid.split(":")[0],
                "start_frame": int(sid.split(":")[1]),
                "end_frame": int(sid.split(":")[1]) + WINDOW,
                "start_s": int(sid.split(":")[1]) / FPS,
                "end_s": (int(sid.split(":")[1]) + WINDOW) / FPS,
                "vector": vec.tolist(),
                "thumbnail": b"",
                "cluster_id": -1,
                "encoder": ENCODER,
            }
            for sid, vec in zip(corpus.ids, corpus.vectors, strict=True)
        ]
    )
    for label in ("bikes", "bunny"):
        publish(label, settings=settings)
        _write_scores(settings, corpus, label, 1)
    server = start_server(folder / "va-data", folder / "serve.log", scoring_reload_s="0.5")
    try:
        yield server.url, settings
    finally:
        stop_server(server.process)


def _expected(settings: Any, label: str) -> list[tuple[str, np.float32]]:
    """Every scored shot of ``label`` in the order the route promises: score descending, ties by shot id."""
    from annotator_core.shot_store import ShotStore

    d = ShotStore.from_settings(settings).read_scores(label=label).to_pydict()
    pairs = [(s, np.float32(v)) for s, v in zip(d["shot_id"], d["score"], strict=True)]
    return sorted(pairs, key=lambda p: (-p[1], p[0]))


def _query(url: str, **body: Any) -> httpx.Response:
    return httpx.post(f"{url}/v1/query/shots", json=body, timeout=30)


def test_threshold_returns_exactly_the_shots_at_or_above_it_best_first(served, corpus):
    url, settings = served
    want = [s for s, v in _expected(settings, "bikes") if v >= np.float32(0.5)]
    assert 0 < len(want) < len(corpus.ids)
    resp = _query(url, labels=["bikes"], threshold=0.5, limit=1000)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert [r["shot_id"] for r in body["shots"]] == want
    assert body["next_cursor"] is None
    row = body["shots"][0]
    assert row["video_id"] == "bikes" and row["title"] == TITLES["bikes"]
    start = int(row["shot_id"].split(":")[1])
    assert (row["start_s"], row["end_s"]) == (round(start / FPS, 3), round((start + WINDOW) / FPS, 3))
    assert row["versions"] == {"bikes": 1} and row["scores"]["bikes"] >= 0.5
    assert body["labels"]["bikes"] == {
        "published_version": 1,
        "score_versions": {"1": len(corpus.ids)},
        "scored": len(corpus.ids),
        "stale": 0,
        "unscored": 0,
    }
    assert body["stale"] is False


def test_top_k_pages_without_duplicates_or_gaps(served):
    url, settings = served
    want = [s for s, _ in _expected(settings, "bunny")]
    top = _query(url, labels=["bunny"], top_k=10).json()
    assert [r["shot_id"] for r in top["shots"]] == want[:10] and top["next_cursor"] is None

    for body, expected in (({"top_k": 11}, want[:11]), ({"threshold": 0.0}, want)):
        seen: list[str] = []
        cursor = None
        pages = 0
        while True:
            page = _query(url, labels=["bunny"], limit=4, **body, **({"cursor": cursor} if cursor else {})).json()
            seen += [r["shot_id"] for r in page["shots"]]
            pages += 1
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == expected  # every shot once, in order: no duplicate, no gap
        assert pages == -(-len(expected) // 4) or pages == len(expected) // 4 + 1


def test_title_video_and_time_filters(served):
    url, settings = served
    ranked = [s for s, _ in _expected(settings, "bunny")]
    by_title = _query(url, labels=["bunny"], threshold=0.0, titles=[TITLES["carphone_pristine"]], limit=1000).json()
    assert [r["shot_id"] for r in by_title["shots"]] == [s for s in ranked if s.startswith("carphone_pristine:")]
    assert {r["title"] for r in by_title["shots"]} == {TITLES["carphone_pristine"]}

    by_id = _query(url, labels=["bunny"], threshold=0.0, video_ids=["bikes"], limit=1000).json()
    assert [r["shot_id"] for r in by_id["shots"]] == [s for s in ranked if s.startswith("bikes:")]

    window = _query(url, labels=["bunny"], threshold=0.0, from_s=1.0, to_s=2.0, limit=1000).json()
    inside = [s for s in ranked if (int(s.split(":")[1]) + WINDOW) / FPS > 1.0 and int(s.split(":")[1]) / FPS < 2.0]
    assert inside and [r["shot_id"] for r in window["shots"]] == inside


def test_several_labels_all_and_any(served, corpus):
    url, settings = served
    bikes = dict(_expected(settings, "bikes"))
    bunny = dict(_expected(settings, "bunny"))
    for mode, combine in (("all", min), ("any", max)):
        body = _query(url, labels=["bikes", "bunny"], mode=mode, threshold=0.2, limit=1000).json()
        want = sorted(
            (s for s in corpus.ids if combine(bikes[s], bunny[s]) >= np.float32(0.2)),
            key=lambda s: (-combine(bikes[s], bunny[s]), s),
        )
        assert [r["shot_id"] for r in body["shots"]] == want, mode
        assert all(set(r["scores"]) == {"bikes", "bunny"} for r in body["shots"])
        # Paged (the general path: a combined score over the candidate shots), the same rows in the same order.
        seen: list[str] = []
        cursor = None
        while True:
            extra = {"cursor": cursor} if cursor else {}
            page = _query(url, labels=["bikes", "bunny"], mode=mode, threshold=0.2, limit=5, **extra).json()
            seen += [r["shot_id"] for r in page["shots"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert seen == want, mode


def test_timeline_has_every_shot_of_the_title_in_time_order(served, corpus):
    url, settings = served
    resp = httpx.get(f"{url}/v1/videos/bikes/timeline", params={"labels": "bikes,bunny"}, timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    ids = sorted((s for s in corpus.ids if s.startswith("bikes:")), key=lambda s: int(s.split(":")[1]))
    assert body["shot_ids"] == ids
    assert body["title"] == TITLES["bikes"] and body["labels"]["bikes"]["published_version"] == 1
    bikes = dict(_expected(settings, "bikes"))
    got = body["scores"]["bikes"]
    np.testing.assert_allclose(got, [float(bikes[s]) for s in ids], atol=1e-6)
    starts = [int(s.split(":")[1]) / FPS for s in ids]
    assert body["start_s"] == [round(t, 3) for t in starts]
    assert body["end_s"] == [round(t + WINDOW / FPS, 3) for t in starts]
    every = httpx.get(f"{url}/v1/videos/bikes/timeline", timeout=30).json()
    assert set(every["labels"]) == {"bikes", "bunny"}


def _strict_json(resp: httpx.Response) -> Any:
    """The body parsed as strict JSON: a NaN or Infinity token (json.dumps writes them) fails the test."""

    def refuse(token: str) -> None:
        raise AssertionError(f"the answer holds {token}, which is not JSON")

    return json.loads(resp.content, parse_constant=refuse)


def test_timeline_and_query_scores_read_back_as_the_stored_float32(served, corpus):
    url, settings = served
    stored = {label: dict(_expected(settings, label)) for label in ("bikes", "bunny")}
    for video in TITLES:
        resp = httpx.get(f"{url}/v1/videos/{video}/timeline", params={"labels": "bikes,bunny"}, timeout=30)
        assert resp.status_code == 200, resp.text
        body = _strict_json(resp)
        assert body["shot_ids"], video
        for label, scores in stored.items():
            want = [scores[s] for s in body["shot_ids"]]
            # Each value is the float32 the scores table holds, not a rounding of it.
            assert [np.float32(v) for v in body["scores"][label]] == want, (video, label)
    rows = _strict_json(_query(url, labels=["bikes", "bunny"], mode="any", threshold=0.0, limit=1000))["shots"]
    assert len(rows) == len(corpus.ids)
    for row in rows:
        assert {k: np.float32(v) for k, v in row["scores"].items()} == {k: stored[k][row["shot_id"]] for k in stored}


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({"top_k": 5}, 422, "labels"),
        ({"labels": [], "top_k": 5}, 422, "labels"),
        ({"labels": ["bikes", 3], "top_k": 5}, 422, "labels[1]"),
        ({"labels": ["bikes"]}, 422, "threshold"),
        ({"labels": ["bikes"], "threshold": 1.5}, 422, "threshold"),
        ({"labels": ["bikes"], "threshold": "0.5"}, 422, "threshold"),
        ({"labels": ["bikes"], "top_k": 0}, 422, "top_k"),
        ({"labels": ["bikes"], "top_k": True}, 422, "top_k"),
        ({"labels": ["bikes"], "top_k": 5, "limit": 5000}, 422, "limit"),
        ({"labels": ["bikes"], "top_k": 5, "mode": "most"}, 422, "mode"),
        ({"labels": ["bikes"], "top_k": 5, "from_s": 5, "to_s": 1}, 422, "to_s"),
        ({"labels": ["bikes"], "top_k": 5, "from_s": -1}, 422, "from_s"),
        ({"labels": ["bikes"], "top_k": 5, "cursor": "not-a-cursor"}, 422, "cursor"),
        ({"labels": ["bikes"], "top_k": 5, "treshold": 0.5}, 422, "treshold"),
        ({"labels": ["car chase"], "top_k": 5}, 404, "labels[0]"),
        ({"labels": ["bikes"], "top_k": 5, "titles": ["No such film"]}, 404, "titles[0]"),
        ({"labels": ["bikes"], "top_k": 5, "video_ids": ["nope"]}, 404, "video_ids[0]"),
        ([1, 2], 422, "body"),
    ],
)
def test_bad_parameters_are_4xx_naming_the_field(served, body, status, field):
    url, _ = served
    resp = httpx.post(f"{url}/v1/query/shots", json=body, timeout=30)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["field"] == field and error["message"]


def test_bad_timeline_and_cursor_requests_are_4xx(served):
    url, _ = served
    for path, params, status, field in (
        ("/v1/videos/nope/timeline", {}, 404, "video_id"),
        ("/v1/videos/bikes/timeline", {"labels": "bikes,,bunny"}, 422, "labels"),
        ("/v1/videos/bikes/timeline", {"labels": "car chase"}, 404, "labels[0]"),
        ("/v1/videos/bikes/timeline", {"lables": "bikes"}, 422, "lables"),
    ):
        resp = httpx.get(f"{url}{path}", params=params, timeout=30)
        assert resp.status_code == status, resp.text
        assert resp.json()["error"]["field"] == field
    bad_json = httpx.post(f"{url}/v1/query/shots", content=b"{", headers={"content-type": "application/json"})
    assert bad_json.status_code == 422 and bad_json.json()["error"]["field"] == "body"
    # A cursor belongs to its query: reusing it with another threshold is refused, not misread.
    first = _query(url, labels=["bikes"], threshold=0.0, limit=3).json()
    other = _query(url, labels=["bikes"], threshold=0.1, limit=3, cursor=first["next_cursor"])
    assert other.status_code == 422 and other.json()["error"]["field"] == "cursor"


def test_publishing_a_new_version_reports_stale_scores_until_rescored(served, corpus):
    from serving.model_store import publish

    url, settings = served
    n = len(corpus.ids)
    version = add_version(settings, corpus, "bikes", positive="bikes", C=0.1)
    publish("bikes", settings=settings)

    def labels() -> dict[str, Any]:
        return _query(url, labels=["bikes"], top_k=3).json()

    body = poll(labels, until=lambda b: b["labels"]["bikes"]["published_version"] == version, timeout=30, what="v2")
    assert body["stale"] is True and body["labels"]["bikes"]["stale"] == n
    assert all(r["versions"] == {"bikes": 1} for r in body["shots"])

    half = corpus.ids[: n // 2]
    _write_scores(settings, corpus, "bikes", version, half)
    # A write is read in the background while the previous state answers (with "refreshing": true).
    body = poll(labels, until=lambda b: b["labels"]["bikes"]["stale"] < n, timeout=60, what="half rescored")
    assert body["labels"]["bikes"]["stale"] == n - len(half)
    assert body["labels"]["bikes"]["score_versions"] == {"1": n - len(half), str(version): len(half)}
    timeline = httpx.get(f"{url}/v1/videos/bikes/timeline", params={"labels": "bikes"}, timeout=30).json()
    assert timeline["stale"] is True

    _write_scores(settings, corpus, "bikes", version, corpus.ids[n // 2 :])
    body = poll(labels, until=lambda b: b["labels"]["bikes"]["stale"] == 0, timeout=60, what="all rescored")
    assert body["stale"] is False and body["labels"]["bikes"]["stale"] == 0
    assert all(r["versions"] == {"bikes": version} for r in body["shots"])
