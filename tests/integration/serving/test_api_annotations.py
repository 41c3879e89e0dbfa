"""Several annotators at once: conflicts, idempotent repeats, disagreements, agreement; search modes."""

from __future__ import annotations

import numpy as np
from va_testing import assert_error


def test_put_is_idempotent_and_stale_versions_conflict(service) -> None:
    ann = service.client("ann")
    other_tab = service.client("ann")
    label = "conflicts"
    ann.post("/api/labels", json={"name": label})
    shot = service.shots_of_digit(5, 1)[0]
    url = f"/api/labels/{label}/annotations/{shot}"

    first = ann.put(url, json={"value": True, "expected_version": 0})
    assert (first.json()["value"], first.json()["version"]) == (True, 1)
    again = ann.put(url, json={"value": True, "expected_version": 0})  # the same request repeated
    assert again.status_code == 200 and again.json()["version"] == 1
    assert len(ann.get(f"/api/labels/{label}/events").json()["events"]) == 1

    # Two tabs loaded version 1; the first change wins, the second is told what is there now.
    assert other_tab.put(url, json={"value": False, "expected_version": 1}).json()["version"] == 2
    conflict = assert_error(ann.put(url, json={"value": True, "expected_version": 1}), 409, "conflict")
    assert conflict["current"] == {"value": False, "version": 2}
    assert conflict["field"] == "expected_version"
    assert "version 1" in conflict["message"]
    assert ann.get(f"/api/shots/{shot}", params={"label": label}).json()["mine"] == {"value": False, "version": 2}

    stale_delete = ann.delete(url, params={"expected_version": 1})
    assert_error(stale_delete, 409, "conflict")
    withdrawn = ann.delete(url, params={"expected_version": 2})
    assert (withdrawn.json()["value"], withdrawn.json()["version"]) == (None, 3)
    assert ann.delete(url, params={"expected_version": 2}).json()["version"] == 3  # repeat: nothing changes
    assert ann.get(f"/api/labels/{label}").json()["counts"] == {"positive": 0, "negative": 0}
    events = ann.get(f"/api/labels/{label}/events").json()["events"]
    assert [(e["old_value"], e["new_value"]) for e in events] == [(None, True), (True, False), (False, None)]

    # Another annotator's annotation of the same shot is their own row: no conflict with ann's.
    ben = service.client("ben")
    assert ben.put(url, json={"value": True, "expected_version": 0}).json()["version"] == 1


def test_disagreements_and_agreement(service) -> None:
    from sklearn.metrics import cohen_kappa_score

    ann, ben = service.client("ann"), service.client("ben")
    label = "agree"
    ann.post("/api/labels", json={"name": label})
    zeros = service.shots_of_digit(0, 14)
    others = [s for d in (1, 2, 3, 4, 6) for s in service.shots_of_digit(d, 3)]
    ann_votes = {s: True for s in zeros[:12]} | {s: False for s in others[:12]}
    ben_votes = {zeros[0]: True, zeros[1]: True, zeros[2]: False, others[0]: False, others[1]: False}
    for client, votes in ((ann, ann_votes), (ben, ben_votes)):
        items = [{"shot_id": s, "value": v} for s, v in votes.items()]
        assert client.post(f"/api/labels/{label}/annotations:batch", json={"items": items}).json()["ok"] == len(items)

    agreement = ann.get(f"/api/labels/{label}/agreement").json()
    assert agreement["annotators"] == ["ann", "ben"]
    assert agreement["shots_with_several_annotators"] == 5
    assert agreement["agreement"] == 4 / 5
    common = list(ben_votes)
    expected = cohen_kappa_score([ann_votes[s] for s in common], [ben_votes[s] for s in common])
    assert np.isclose(agreement["cohen_kappa"], expected)
    assert agreement["fleiss_kappa"] is not None and agreement["fleiss_kappa"] < 1

    dis = ann.get(f"/api/labels/{label}/disagreements").json()
    assert dis["annotators"] == [{"shot_id": zeros[2], "votes": {"ann": True, "ben": False}}]
    assert dis["model"] == [] and dis["model_version"] is None

    built = ann.post(f"/api/labels/{label}/build").json()
    confident = [i for i in built["feeds"]["top_positive"] if i["labeled"] is None and i["score"] > 0.8]
    assert confident, built["feeds"]["top_positive"][:5]
    wrong = confident[0]["shot_id"]
    ben.put(f"/api/labels/{label}/annotations/{wrong}", json={"value": False})
    dis = ann.get(f"/api/labels/{label}/disagreements").json()
    assert dis["model_version"] == built["version"]
    flagged = {m["shot_id"]: m for m in dis["model"]}
    assert wrong in flagged and flagged[wrong]["consensus"] is False and flagged[wrong]["score"] > 0.8

    by_ben = ann.get(f"/api/labels/{label}/annotations", params={"annotator": "ben", "value": "false"}).json()
    assert {a["shot_id"] for a in by_ben["annotations"]} == {zeros[2], others[0], others[1], wrong}


def test_search_by_video_title_and_example_with_filters(service) -> None:
    viewer = service.client("vic")
    by_video = viewer.get("/api/search", params={"video": "digits03", "limit": 7}).json()
    assert by_video["mode"] == "video" and len(by_video["results"]) == 7
    assert [r["start_s"] for r in by_video["results"]] == [float(i) for i in range(7)]
    by_title = viewer.get("/api/search", params={"title": "reel 4", "limit": 3}).json()
    assert {r["video_id"] for r in by_title["results"]} == {"digits04"}
    assert by_title["results"][0]["title"] == "Digits reel 4"
    seed = service.shots_of_digit(6, 1)[0]
    like = viewer.get("/api/search", params={"like": seed, "video": "digits02", "limit": 10}).json()
    assert {r["video_id"] for r in like["results"]} == {"digits02"}
    scores = [r["score"] for r in like["results"]]
    assert scores == sorted(scores, reverse=True)
    assert viewer.get("/api/search", params={"title": "no such title"}).json()["results"] == []


def test_text_search_without_a_text_tower_says_so(service) -> None:
    error = assert_error(service.client("vic").get("/api/search", params={"q": "a zero"}), 422, "no_text_tower")
    assert "vision-language" in error["message"] and "handcrafted" in error["message"]
    assert error["field"] == "q"


def test_text_search_with_a_text_tower_ranks_by_the_text_embedding(make_settings) -> None:
    from datetime import UTC, datetime

    import httpx
    from va_testing import serve_annotation_app as serve

    from annotator_core.encoders import l2_normalise, load_encoder
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore

    settings = make_settings(encoder="tiny-clip")
    encoder = load_encoder("tiny-clip")
    vectors = l2_normalise(np.random.default_rng(1).normal(size=(40, encoder.dim)))
    store = ShotStore.from_settings(settings)
    store.upsert_videos(
        [dict(video_id="v1", uri="/nowhere.mp4", title="t", duration_s=40.0, fps=25.0, width=8, height=8,
              n_frames=1000, n_shots=40, status="done", error="", ingested_at=datetime.now(UTC), encoder="tiny-clip")]
    )  # fmt: skip
    store.upsert_shots(
        [dict(shot_id=f"v1:{i}", video_id="v1", start_frame=i, end_frame=i + 1, start_s=float(i), end_s=i + 1.0,
              thumbnail=b"", cluster_id=-1, encoder="tiny-clip", vector=v.tolist()) for i, v in enumerate(vectors)]
    )  # fmt: skip
    token = AnnotationStore.from_settings(settings).users.create("t", "viewer")[1]
    expected = np.argsort(-(vectors @ encoder.embed_texts(["a red bicycle"])[0]))[:5]
    with serve(settings) as url:
        got = httpx.get(f"{url}/api/search", params={"q": "a red bicycle", "limit": 5},
                        headers={"Authorization": f"Bearer {token}"}, timeout=120).json()  # fmt: skip
    assert got["mode"] == "text"
    assert [r["shot_id"] for r in got["results"]] == [f"v1:{i}" for i in expected]
