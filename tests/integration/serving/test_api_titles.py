"""A title's label timeline over HTTP (the title page's one request): every shot of the title in time order, per
label the latest build's scores (the classifier's own probabilities) or, once published, the ``scores`` table's,
and the caller's annotations (a served app over the digits corpus)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from serving_support import write_digit_corpus
from va_testing import assert_error, serve_annotation_app

VIDEO = "digits03"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, dict[str, int], Any]]:
    from annotator_core.settings import Settings
    from annotator_core.store import AnnotationStore

    settings = Settings(data_dir=tmp_path_factory.mktemp("titles"), encoder="handcrafted", session_secret="s")
    digit_of = write_digit_corpus(settings)
    users = AnnotationStore.from_settings(settings)
    token = users.users.create("ann", "annotator", password="ann-password-1")[1]
    users.db.close()
    with (
        serve_annotation_app(settings) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client,
    ):
        yield client, digit_of, settings


def _save_version(settings: Any, label: str, digit_of: dict[str, int]) -> Any:
    """Train a real classifier on every digit ("is it a zero?") and save it as the label's next version."""
    from annotator_core.classifier import Classifier, train
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore

    vectors = ShotStore.from_settings(settings).vectors()
    ids = vectors.ids.tolist()
    y = np.array([digit_of[s] == 0 for s in ids])
    clf = train(vectors.matrix, y, encoder="handcrafted")
    store = AnnotationStore.from_settings(settings)
    info = store.versions.save(
        label,
        model=clf.to_bytes(),
        encoder="handcrafted",
        dim=clf.dim,
        n_pos=int(y.sum()),
        n_neg=int((~y).sum()),
        model_quality=0.9,
        data_diversity=0.5,
        snapshot=[],
        snapshot_event_id=0,
    )
    store.db.close()
    return info.version, Classifier.from_bytes(clf.to_bytes())


def test_timeline_has_every_shot_in_time_order_with_build_scores_then_published_scores(served: Any) -> None:
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore

    client, digit_of, settings = served
    client.post("/api/labels", json={"name": "zero"}).raise_for_status()
    store = ShotStore.from_settings(settings)
    shots = store.shots_of_video(VIDEO)
    ids = [s["shot_id"] for s in shots]
    first_zero = next(s for s in ids if digit_of[s] == 0)
    client.put(f"/api/labels/zero/annotations/{first_zero}", json={"value": True}).raise_for_status()

    body = client.get(f"/api/videos/{VIDEO}/timeline").json()
    assert body["title"] == "Digits reel 3" and body["shot_ids"] == ids
    assert body["start_s"] == [round(float(s["start_s"]), 3) for s in shots]
    (track,) = body["tracks"]
    assert track["label"] == "zero" and track["source"] == "none" and set(track["scores"]) == {None}
    assert track["mine"][ids.index(first_zero)] is True and sum(m is not None for m in track["mine"]) == 1
    assert track["mine_versions"][ids.index(first_zero)] == 1

    version, clf = _save_version(settings, "zero", digit_of)
    track = client.get(f"/api/videos/{VIDEO}/timeline", params={"labels": "zero"}).json()["tracks"][0]
    assert (track["source"], track["version"]) == ("build", version)
    want = clf.predict_proba(store.vectors_of(ids)[1])
    np.testing.assert_allclose(track["scores"], want, atol=1e-4)
    zeros = [i for i, s in enumerate(ids) if digit_of[s] == 0]
    assert min(track["scores"][i] for i in zeros) > np.median(track["scores"])  # the zeros stand out

    # Published, with the catalog's scores written: the track is the scores table's, shots without a row are null.
    annotations = AnnotationStore.from_settings(settings)
    annotations.versions.mark_published("zero", version)
    annotations.db.close()
    scored = ids[:-1]
    store.upsert_scores(
        [{"shot_id": s, "label": "zero", "version": version, "score": 0.25, "model_tag": "zero:v1"} for s in scored]
    )
    track = client.get(f"/api/videos/{VIDEO}/timeline", params={"labels": "zero"}).json()["tracks"][0]
    assert (track["source"], track["version"]) == ("scores", version)
    assert track["scores"] == [0.25] * len(scored) + [None]


def test_bad_timeline_requests_are_4xx_naming_the_field(served: Any) -> None:
    client, _digit_of, _settings = served
    client.post("/api/labels", json={"name": "other"})
    assert assert_error(client.get("/api/videos/nope/timeline"), 404)["field"] == "video_id"
    assert assert_error(client.get(f"/api/videos/{VIDEO}/timeline?labels=zero,,other"), 422)["field"] == "labels"
    assert assert_error(client.get(f"/api/videos/{VIDEO}/timeline?labels=unknown"), 404)["field"] == "labels[0]"
    assert httpx.get(f"{client.base_url}/api/videos/{VIDEO}/timeline").status_code == 401
