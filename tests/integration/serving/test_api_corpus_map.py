"""The corpus map over HTTP: a label's points with clusters, annotations and scores, and selections by lasso and
rectangle answered from the stored coordinates, paged without gaps (a served app over the digits corpus)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from serving_support import write_digit_corpus
from va_testing import assert_error, serve_annotation_app


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[httpx.Client, dict[str, int], dict, Any]]:
    """The digits as shots with stored map coordinates: each digit's two first principal components (known and
    exact, so a selection can be checked against them), shifted apart by digit."""
    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore

    settings = Settings(data_dir=tmp_path_factory.mktemp("corpus-map"), encoder="handcrafted", session_secret="s")
    digit_of = write_digit_corpus(settings)
    store = ShotStore.from_settings(settings)
    vectors = store.vectors()
    centred = vectors.matrix - vectors.matrix.mean(axis=0)
    pcs = np.linalg.svd(centred, full_matrices=False)[2][:2]
    xy = centred @ pcs.T
    coords = {sid: (float(x), float(y)) for sid, (x, y) in zip(vectors.ids.tolist(), xy.tolist(), strict=True)}
    store.upsert_shot_map(
        [{"shot_id": s, "x": x, "y": y, "layout_version": 1, "fitted": True} for s, (x, y) in coords.items()]
    )
    users = AnnotationStore.from_settings(settings)
    token = users.users.create("ann", "annotator", password="ann-password-1")[1]
    users.db.close()
    with (
        serve_annotation_app(settings) as url,
        httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=120) as client,
    ):
        yield client, digit_of, coords, settings


def _stored(coords: dict[str, tuple[float, float]], inside: Any) -> set[str]:
    return {sid for sid, (x, y) in coords.items() if inside(np.float32(x), np.float32(y))}


def test_the_map_of_a_label_has_every_shot_with_its_cluster_annotation_and_the_cluster_outlines(served: Any) -> None:
    client, digit_of, coords, _settings = served
    client.post("/api/labels", json={"name": "map-zero"}).raise_for_status()
    zeros = [s for s, d in digit_of.items() if d == 0][:3]
    ones = [s for s, d in digit_of.items() if d == 1][:2]
    for sid, value in [*((s, True) for s in zeros), *((s, False) for s in ones)]:
        client.put(f"/api/labels/map-zero/annotations/{sid}", json={"value": value}).raise_for_status()
    body = client.get("/api/labels/map-zero/map").json()
    points = body["points"]
    assert body["total"] == len(coords) and not body["sampled"] and body["build_version"] is None
    assert set(points["shot_id"]) == set(coords)
    at = {sid: i for i, sid in enumerate(points["shot_id"])}
    for sid in zeros + ones:
        assert points["annotation"][at[sid]] == (1 if sid in zeros else 0)
        assert points["x"][at[sid]] == pytest.approx(coords[sid][0], abs=1e-4)
    assert sum(a is None for a in points["annotation"]) == len(coords) - 5
    clusters = body["clusters"]
    assert sum(c["shots"] for c in clusters) == len(coords)
    assert sum(c["positive"] for c in clusters) == 3 and sum(c["negative"] for c in clusters) == 2
    assert all(len(c["hull"]) >= 3 for c in clusters)


def test_past_max_points_the_map_is_a_sample_that_keeps_the_labelled_shots(served: Any) -> None:
    client, digit_of, _coords, _settings = served
    client.post("/api/labels", json={"name": "map-sample"}).raise_for_status()
    sid = next(iter(digit_of))
    client.put(f"/api/labels/map-sample/annotations/{sid}", json={"value": True}).raise_for_status()
    body = client.get("/api/labels/map-sample/map", params={"max_points": 100}).json()
    assert body["sampled"] and len(body["points"]["shot_id"]) == 100 and sid in body["points"]["shot_id"]


def test_a_lasso_selects_exactly_the_shots_inside_it_in_pages_without_gaps(served: Any) -> None:
    client, _digits, coords, _settings = served
    client.post("/api/labels", json={"name": "map-lasso"}).raise_for_status()
    # A triangle over the middle of the map.
    xs = np.array([c[0] for c in coords.values()])
    ys = np.array([c[1] for c in coords.values()])
    x0, x1, ym, y1 = float(np.percentile(xs, 20)), float(np.percentile(xs, 80)), float(np.median(ys)), float(ys.max())
    triangle = [[x0, ym], [x1, ym], [(x0 + x1) / 2, y1]]

    def inside(x: float, y: float) -> bool:
        from matplotlib.path import Path as MplPath  # an independent point-in-polygon

        return bool(MplPath(triangle).contains_point((x, y)))

    seen: list[str] = []
    offset: int | None = 0
    while offset is not None:
        page = client.post(
            "/api/labels/map-lasso/map/select", json={"polygon": triangle, "offset": offset, "limit": 40}
        )
        page.raise_for_status()
        body = page.json()
        seen += [item["shot_id"] for item in body["items"]]
        assert all(item["annotation"]["version"] == 0 and "title" in item for item in body["items"])
        offset = body["next_offset"]
    assert len(seen) == len(set(seen)) == body["total"]
    assert set(seen) == _stored(coords, inside)
    assert len(seen) > 40  # more than one page


def test_a_rectangle_selects_the_shots_inside_it(served: Any) -> None:
    client, _digits, coords, _settings = served
    client.post("/api/labels", json={"name": "map-rect"}).raise_for_status()
    body = client.post("/api/labels/map-rect/map/select", json={"rect": [0.0, 0.0, 0.3, 0.3], "limit": 1000}).json()
    expected = _stored(coords, lambda x, y: 0 < x < 0.3 and 0 < y < 0.3)
    assert {i["shot_id"] for i in body["items"]} == expected and body["total"] == len(expected)


@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"polygon": [[0, 0], [1, 1]]}, "polygon", "at least 3"),
        ({"polygon": [[0, 0, 1], [1, 1, 1], [0, 1, 1]]}, "polygon", "[x, y] pairs"),
        ({"rect": [0, 0, 0, 1]}, "rect", "no area"),
        ({"rect": [0, 0, 1]}, "rect", "[x0, y0, x1, y1]"),
        ({}, "polygon", "exactly one"),
        ({"polygon": [[0, 0], [1, 0], [0, 1]], "rect": [0, 0, 1, 1]}, "polygon", "exactly one"),
        ({"polygon": [[0, 0], [1, 0], [0, 1]], "limit": 0}, "limit", "limit"),
    ],
)
def test_a_bad_selection_is_a_422_naming_the_problem(served: Any, body: dict, field: str, words: str) -> None:
    client, _digits, _coords, _settings = served
    client.post("/api/labels", json={"name": "map-bad"})
    error = assert_error(client.post("/api/labels/map-bad/map/select", json=body), 422)
    assert error["field"] == field and words in error["message"], error


def test_the_map_of_an_unknown_label_is_a_404(served: Any) -> None:
    client, _digits, _coords, _settings = served
    assert_error(client.get("/api/labels/no-such-label/map"), 404)
