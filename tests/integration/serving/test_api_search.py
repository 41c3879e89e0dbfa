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


def test_search_over_the_compressed_corpus_answers_as_the_table_does(tmp_path) -> None:
    """With builds on the mapped corpus (catalog scale), search probes the corpus; probing every partition it
    must return what exact search over the table returns: the same shots, scores, spans and titles."""
    from serving_support import add_users, client, write_digit_corpus
    from va_testing import serve_annotation_app

    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore

    settings = Settings(
        data_dir=tmp_path / "data", encoder="handcrafted", session_secret="s", corpus_scorer="mapped",
        corpus_partitions=12, search_nprobes=12, corpus_search_rerank=50,
    )  # fmt: skip
    write_digit_corpus(settings)
    token = add_users(settings)["ann"]
    table = ShotStore.from_settings(settings)  # 1,797 shots: below the ANN index threshold, so exact
    seed = "digits03:250"
    with serve_annotation_app(settings) as url, client(url, token) as ann:
        like = ann.get("/api/search", params={"like": seed, "limit": 15}).json()["results"]
        want = table.search_like(seed, k=15)
        assert [r["shot_id"] for r in like] == [h.shot_id for h in want]
        np.testing.assert_allclose([r["score"] for r in like], [h.score for h in want], atol=1e-5)
        assert [(r["video_id"], r["start_s"], r["end_s"]) for r in like] == [
            (h.video_id, h.start_s, h.end_s) for h in want
        ]
        assert all(r["title"] == f"Digits reel {int(r['video_id'][-2:])}" for r in like)
        vector = [float(v) for v in table.get_shot(seed, columns=["vector"])["vector"]]
        by_vector = ann.post("/api/search/vector", json={"vector": vector, "limit": 5}).json()["results"]
        assert [r["shot_id"] for r in by_vector] == [seed] + [h.shot_id for h in want[:4]]
        # no build ran: the corpus files exist because the searches synced and probed them
        assert (settings.resolved_corpus_dir / "manifest.json").exists()


def test_search_like_a_labels_positives_leaves_labelled_shots_out_and_finds_more_of_them(service) -> None:
    """ "More like my positives": the unlabelled shots a model fitted to the label's annotations (as a build
    fits it) ranks highest, i.e. those nearest the direction of its weights."""
    ann = service.client("ann")
    label = "six-like"
    assert ann.post("/api/labels", json={"name": label}).status_code == 201
    none_yet = assert_error(ann.get("/api/search", params={"like_label": label}), 422, "no_positives")
    assert none_yet["field"] == "like_label" and "no positive annotation yet" in none_yet["message"]

    positives, negatives = service.shots_of_digit(6, 3), service.shots_of_digit(5, 3) + service.shots_of_digit(0, 3)
    items = [{"shot_id": s, "value": True} for s in positives] + [{"shot_id": s, "value": False} for s in negatives]
    assert (
        ann.post(f"/api/labels/{label}/annotations:batch", json={"items": items, "source": "search"}).json()["ok"] == 9
    )
    got = ann.get("/api/search", params={"like_label": label, "label": label, "limit": 30})
    assert got.status_code == 200, got.text
    body = got.json()
    assert body["mode"] == "positives" and len(body["results"]) == 30
    shown = [r["shot_id"] for r in body["results"]]
    assert not set(shown) & set(positives + negatives)  # what is labelled is left out
    assert all(r["annotation"]["version"] == 0 for r in body["results"])  # never annotated
    sixes = sum(service.digit_of[s] == 6 for s in shown)
    assert sixes >= 25, sixes  # 10% of the corpus is sixes

    # the same ranking as the query computed here from the stored vectors, over every unlabelled shot
    from annotator_core.relevance import like_positives

    pos = np.array([_vector_of(service, s) for s in positives])
    neg = np.array([_vector_of(service, s) for s in negatives])
    query = like_positives(pos, neg, C=service.settings.classifier_c)
    want = ann.post("/api/search/vector", json={"vector": query.tolist(), "limit": 39}).json()["results"]
    assert shown == [r["shot_id"] for r in want if r["shot_id"] not in set(positives + negatives)][:30]

    both = assert_error(ann.get("/api/search", params={"like_label": label, "q": "six"}), 422, "invalid")
    assert "not several" in both["message"]
    assert_error(ann.get("/api/search", params={"like_label": "no-such-label"}), 404)
