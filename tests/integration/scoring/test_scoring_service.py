"""The scoring service as clients see it: a real `bentoml serve` on a port, real models, real footage."""

from __future__ import annotations

import io
import json
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pyarrow as pa
import pytest
from scoring_support import ENCODER, add_version, make_store, start_server, stop_server, wait_ready

pytestmark = pytest.mark.slow


def classifier(settings, label):
    from annotator_core.classifier import Classifier
    from annotator_core.store import AnnotationStore

    store = AnnotationStore.from_settings(settings)
    try:
        return Classifier.from_bytes(store.versions.get(label).model)
    finally:
        store.db.close()


def probe_vectors(corpus, n_random=20):
    rng = np.random.default_rng(7)
    return np.vstack([corpus.vectors, rng.standard_normal((n_random, corpus.vectors.shape[1]))]).astype(np.float32)


def test_served_scores_equal_the_classifier_on_every_route(scoring_server, corpus, sample_videos_dir):
    server, settings = scoring_server
    wait_ready(server.url)
    x = probe_vectors(corpus)
    want = np.stack([classifier(settings, lbl).predict_proba(x) for lbl in ("bikes", "bunny")], axis=1)

    resp = httpx.post(f"{server.url}/v1/score/embeddings", json={"vectors": x.tolist()}, timeout=30)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["labels"] == ["bikes", "bunny"] and body["encoder"] == ENCODER
    assert body["versions"] == {"bikes": 1, "bunny": 1}
    np.testing.assert_allclose(np.array(body["scores"]), want, atol=1e-5)

    raw = httpx.post(
        f"{server.url}/v1/score/embeddings/binary?labels=bunny",
        content=x.astype("<f4").tobytes(),
        headers={"content-type": "application/octet-stream"},
    )
    assert raw.status_code == 200, raw.text
    assert json.loads(raw.headers["x-va-labels"]) == ["bunny"]
    np.testing.assert_allclose(np.frombuffer(raw.content, "<f4"), want[:, 1], atol=1e-5)

    table = pa.table({"vector": pa.FixedSizeListArray.from_arrays(pa.array(x.ravel()), x.shape[1])})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    arrow = httpx.post(
        f"{server.url}/v1/score/embeddings/binary",
        content=sink.getvalue(),
        headers={"content-type": "application/vnd.apache.arrow.stream"},
    )
    assert arrow.status_code == 200, arrow.text
    got = pa.ipc.open_stream(arrow.content).read_all()
    np.testing.assert_allclose(got.column("bikes").to_numpy(), want[:, 0], atol=1e-5)

    shots = httpx.post(f"{server.url}/v1/score/shots", json={"shot_ids": corpus.ids[::-1]}, timeout=30)
    assert shots.status_code == 200, shots.text
    np.testing.assert_allclose(np.array(shots.json()["scores"]), want[: len(corpus.ids)][::-1], atol=1e-5)

    with open(sample_videos_dir / "bikes.mp4", "rb") as clip:
        scored = httpx.post(
            f"{server.url}/v1/score/clip", files={"clip": ("bikes.mp4", clip, "video/mp4")}, timeout=120
        )
    assert scored.status_code == 200, scored.text
    result = scored.json()
    assert len(result["shots"]) >= 2  # bikes.mp4 has several cuts
    assert result["shots"][0]["start_frame"] == 0 and result["shots"][-1]["end_frame"] == 250
    assert set(result["clip"]) == {"bikes", "bunny"}
    # Real footage of bikes scores higher for "bikes" than for "bunny" on the whole clip.
    assert result["clip"]["bikes"] > result["clip"]["bunny"]

    listing = httpx.post(f"{server.url}/v1/labels").json()
    assert listing["ready"] is True and [m["label"] for m in listing["labels"]] == ["bikes", "bunny"]


def _dim_vectors(n, dim=256):
    return np.full((n, dim), 0.1, dtype=np.float32).tolist()


BAD_JSON = [
    ({"vectors": [[0.1] * 255]}, 422, "vectors[0]", 256),
    ({"vectors": [[0.1] * 256, [0.1] * 3]}, 422, "vectors[1]", 256),
    ({"vectors": []}, 422, "vectors", "[n >= 1, 256]"),
    ({"vectors": _dim_vectors(301)}, 413, "vectors", "at most 300 vectors"),
    ({"vectors": "not a list"}, 422, "vectors", None),
    ({"vectors": [[0.1] * 256], "labels": ["no such label"]}, 404, "labels", ["bikes", "bunny"]),
    ({"vectors": [[0.1] * 256], "encoder": "tiny-clip"}, 422, "encoder", ["handcrafted"]),
]


@pytest.mark.parametrize(("payload", "status", "field", "expected"), BAD_JSON)
def test_bad_embeddings_get_a_4xx_naming_the_field(scoring_server, payload, status, field, expected):
    server, _ = scoring_server
    resp = httpx.post(f"{server.url}/v1/score/embeddings", json=payload, timeout=30)
    assert resp.status_code == status, resp.text
    error = resp.json()["error"]
    assert error["field"] == field
    if expected is not None:
        assert error["expected"] == expected
    assert error["message"]


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_refused_with_their_position(scoring_server, bad):
    server, _ = scoring_server
    values = ["0.1"] * 256
    values[17] = bad
    body = '{"vectors": [[' + ",".join(["0.1"] * 256) + "], [" + ",".join(values) + "]]}"
    resp = httpx.post(f"{server.url}/v1/score/embeddings", content=body, headers={"content-type": "application/json"})
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["field"] == "vectors[1][17]"


def test_bad_binary_payloads_and_shot_ids_get_a_4xx(scoring_server):
    server, _ = scoring_server
    route = f"{server.url}/v1/score/embeddings/binary"
    raw = {"content-type": "application/octet-stream"}
    cases = [
        (httpx.post(route, content=b"\0" * 1000, headers=raw), 422, "body"),
        (httpx.post(route, content=b"", headers=raw), 422, "vectors"),
        (httpx.post(route, content=np.full((1, 256), np.nan, "<f4").tobytes(), headers=raw), 422, "vectors[0][0]"),
        (httpx.post(route, content=np.zeros((301, 256), "<f4").tobytes(), headers=raw), 413, "vectors"),
        (
            httpx.post(route, content=b"junk", headers={"content-type": "application/vnd.apache.arrow.stream"}),
            422,
            "body",
        ),
        (httpx.post(route, content=b"1,2", headers={"content-type": "text/csv"}), 415, "Content-Type"),
        (httpx.post(f"{server.url}/v1/score/shots", json={"shot_ids": []}), 422, "shot_ids"),
        (httpx.post(f"{server.url}/v1/score/shots", json={"shot_ids": ["bikes:0", "nope:1"]}), 404, "shot_ids[1]"),
        (httpx.post(f"{server.url}/v1/score/shots", json={"shot_ids": ["bikes:0"], "labels": ["x"]}), 404, "labels"),
        (
            httpx.post(
                f"{server.url}/v1/score/shots", content=b"{not json", headers={"content-type": "application/json"}
            ),
            422,
            "body",
        ),
    ]
    for resp, status, field in cases:
        assert resp.status_code == status, resp.text
        assert resp.json()["error"]["field"] == field, resp.text


def test_bad_clips_get_a_4xx(scoring_server, tmp_path):
    server, _ = scoring_server
    not_video = tmp_path / "notes.mp4"
    not_video.write_bytes(b"this is not a video" * 100)
    with open(not_video, "rb") as f:
        resp = httpx.post(f"{server.url}/v1/score/clip", files={"clip": ("notes.mp4", f, "video/mp4")}, timeout=60)
    assert resp.status_code == 422, resp.text
    assert resp.json()["error"]["field"] == "clip"
    missing = httpx.post(f"{server.url}/v1/score/clip", files={"other": ("a.txt", b"x")}, timeout=60)
    assert missing.status_code == 422, missing.text
    assert missing.json()["error"]["field"] == "clip"


def test_load_is_shed_with_429_while_probes_stay_up(scoring_server, sample_videos_dir):
    """A burst of clip requests over the concurrency limit (2): some are served, the rest get 429, and /livez and
    /readyz answer 200 while the served ones are still being worked on."""
    server, _ = scoring_server
    clip = (sample_videos_dir / "bikes.mp4").read_bytes()

    def score_clip() -> tuple[int, float, float]:
        started = time.monotonic()
        resp = httpx.post(f"{server.url}/v1/score/clip", files={"clip": ("b.mp4", clip, "video/mp4")}, timeout=120)
        return resp.status_code, started, time.monotonic()

    probes: list[tuple[int, int, float, float]] = []  # (livez, readyz, sent, answered)
    with ThreadPoolExecutor(max_workers=8) as pool:
        burst = [pool.submit(score_clip) for _ in range(8)]
        deadline = time.monotonic() + 180
        while not all(f.done() for f in burst):  # probe for as long as the burst is in flight
            assert time.monotonic() < deadline, "the burst of clip requests did not finish within 180 s"
            sent = time.monotonic()
            live, ready = (httpx.get(f"{server.url}{path}", timeout=10).status_code for path in ("/livez", "/readyz"))
            probes.append((live, ready, sent, time.monotonic()))
            time.sleep(0.1)
        clips = [f.result() for f in burst]
    statuses = sorted(code for code, _, _ in clips)
    assert 429 in statuses and 200 in statuses, statuses
    assert all(live == ready == 200 for live, ready, _, _ in probes), probes
    # The probes that count: sent after a request that was then served had been sent, answered before it finished.
    served = [(start, end) for code, start, end in clips if code == 200]
    during = [p for p in probes if any(start < p[2] and p[3] < end for start, end in served)]
    assert len(during) >= 2, (served, probes)


def test_a_new_publish_is_served_without_a_restart(scoring_server, corpus):
    from serving.model_store import publish

    server, settings = scoring_server
    version = add_version(settings, corpus, "bikes", positive="bikes", C=0.05)
    published = publish("bikes", settings=settings)
    assert published.version == version == 2
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        versions = {m["label"]: m["version"] for m in httpx.post(f"{server.url}/v1/labels").json()["labels"]}
        if versions["bikes"] == 2:
            break
        time.sleep(0.2)
    assert versions == {"bikes": 2, "bunny": 1}
    x = corpus.vectors[:10]
    resp = httpx.post(f"{server.url}/v1/score/embeddings", json={"vectors": x.tolist(), "labels": ["bikes"]})
    np.testing.assert_allclose(
        np.array(resp.json()["scores"])[:, 0], classifier(settings, "bikes").predict_proba(x), atol=1e-5
    )
    assert resp.json()["versions"] == {"bikes": 2}


def test_a_corrupt_model_leaves_the_service_up_and_not_ready(tmp_path, corpus):
    from serving.model_store import publish

    settings = make_store(tmp_path / "va-data", corpus)
    publish("bikes", settings=settings)
    broken = publish("bunny", settings=settings)
    Path(broken.path, "model.onnx").write_bytes(b"\x08\x01garbage that is not a protobuf graph")
    server = start_server(tmp_path / "va-data", tmp_path / "serve.log")
    try:
        assert httpx.get(f"{server.url}/livez").status_code == 200
        assert httpx.get(f"{server.url}/readyz").status_code == 503
        listing = httpx.post(f"{server.url}/v1/labels").json()
        assert listing["ready"] is False and [m["label"] for m in listing["labels"]] == ["bikes"]
        assert any(broken.tag in line and "corrupt" in line for line in listing["problems"])
        resp = httpx.post(f"{server.url}/v1/score/embeddings", json={"vectors": [[0.1] * 256], "labels": ["bunny"]})
        assert resp.status_code == 503 and resp.json()["error"]["field"] == "labels"
        ok = httpx.post(f"{server.url}/v1/score/embeddings", json={"vectors": [[0.1] * 256], "labels": ["bikes"]})
        assert ok.status_code == 200
    finally:
        stop_server(server.process)
    assert f"model {broken.tag} label 'bunny'" in server.log_text()
