"""LanceDB on object storage for real: an S3-compatible server (moto's server mode) on loopback.

The shot store is opened on an ``s3://`` URI the way a cluster opens it — once with explicit
``storage_options`` (VA_STORAGE_OPTIONS) and once with credentials and endpoint only in the
environment (what k8s pods get from their Secret and ConfigMap). Then the whole path: ingest reads
the catalog from the bucket and writes LanceDB there, the annotation service reads it, and corpus
scoring scores it with a published label.
"""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from va_testing import S3Server

from annotator_core.errors import StoreUnavailable
from annotator_core.shot_store import ShotStore

BUCKET = "va-test"
KEYS = {"aws_access_key_id": "testing", "aws_secret_access_key": "testing"}


@pytest.fixture(scope="module")
def s3_endpoint(s3_server: S3Server) -> str:
    """The suite's S3 server (tests/conftest.py) with this module's bucket."""
    s3_server.create_bucket(BUCKET)
    return s3_server.endpoint


def storage_options(endpoint: str) -> dict[str, str]:
    return {"aws_endpoint": endpoint, "allow_http": "true", "region": "us-east-1", **KEYS}


def shot_rows(video_id: str, n: int, dim: int, *, seed: int) -> list[dict[str, Any]]:
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return [
        {
            "shot_id": f"{video_id}:{i * 25}",
            "video_id": video_id,
            "start_frame": i * 25,
            "end_frame": (i + 1) * 25,
            "start_s": float(i),
            "end_s": float(i + 1),
            "thumbnail": b"\xff\xd8jpeg",
            "cluster_id": -1,
            "encoder": "handcrafted",
            "vector": vectors[i].tolist(),
        }
        for i in range(n)
    ]


def video_row(video_id: str, n_shots: int) -> dict[str, Any]:
    return {
        "video_id": video_id,
        "uri": f"s3://{BUCKET}/videos/{video_id}.mp4",
        "title": video_id,
        "duration_s": float(n_shots),
        "fps": 25.0,
        "width": 640,
        "height": 360,
        "n_frames": 25 * n_shots,
        "n_shots": n_shots,
        "status": "done",
        "error": "",
        "ingested_at": datetime(2026, 1, 1, tzinfo=UTC),
        "encoder": "handcrafted",
    }


def test_shot_store_writes_reads_and_searches_on_s3(s3_endpoint: str) -> None:
    uri = f"s3://{BUCKET}/options/lancedb"
    store = ShotStore(uri, storage_options=storage_options(s3_endpoint))
    rows = shot_rows("vid-a", 30, 16, seed=0)
    store.upsert_videos([video_row("vid-a", 30)])
    store.upsert_shots(rows)
    store.upsert_shots(rows[:10])  # keyed: writing again adds nothing
    assert store.counts() == {"videos": 1, "shots": 30, "videos_failed": 0, "videos_damaged": 0}

    # A second process (another pod) opening the same URI sees the same data.
    reader = ShotStore(uri, storage_options=storage_options(s3_endpoint))
    assert reader.dim() == 16
    assert reader.done_video_ids() == {"vid-a"}
    assert reader.get_shot("vid-a:50")["start_s"] == 2.0
    hits = reader.search(np.asarray(rows[7]["vector"], dtype=np.float32), k=3)
    assert hits[0].shot_id == rows[7]["shot_id"] and hits[0].score == pytest.approx(1.0, abs=1e-5)
    matrix = reader.vectors()
    assert matrix.matrix.shape == (30, 16)
    np.testing.assert_allclose(matrix.matrix[matrix.index_of()["vid-a:75"]], rows[3]["vector"], rtol=1e-6)


def test_shot_store_takes_credentials_from_the_environment(s3_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """What a pod does: keys from its Secret and the endpoint from its ConfigMap as AWS_* variables."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEYS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEYS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_ALLOW_HTTP", "true")
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    store = ShotStore(f"s3://{BUCKET}/env/lancedb")
    store.upsert_shots(shot_rows("vid-b", 5, 8, seed=1))
    assert ShotStore(f"s3://{BUCKET}/env/lancedb").counts()["shots"] == 5


def test_unreachable_object_store_fails_with_one_clear_error(s3_endpoint: str) -> None:
    options = {**storage_options(s3_endpoint), "aws_endpoint": "http://127.0.0.1:9"}  # nothing listens there
    with pytest.raises(
        StoreUnavailable, match=r"VA_LANCEDB_URI='s3://va-test/nowhere/lancedb' cannot be opened"
    ) as err:
        ShotStore(f"s3://{BUCKET}/nowhere/lancedb", storage_options=options)
    assert "127.0.0.1:9" in str(err.value) and "fix the URI or VA_STORAGE_OPTIONS" in str(err.value)


@pytest.mark.slow
@pytest.mark.timeout(600)  # Ray starts twice (ingest, corpus scoring): ~4 min on a busy 2-core machine
def test_ingest_writes_to_s3_and_the_services_and_corpus_scoring_read_there(
    s3_endpoint: str, sample_videos_dir: Path, make_settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`va ingest s3://…` as on the cluster: videos listed and read from the bucket, shots written to it, read back."""
    if importlib.util.find_spec("pipelines.ingest") is None:
        pytest.skip("pipelines.ingest (the pipeline helper's run_ingest) is not in this checkout yet")
    import boto3

    from pipelines.ingest import run_ingest

    # pyarrow (the catalog) reads credentials and endpoint from the environment, as in a pod.
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", KEYS["aws_access_key_id"])
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", KEYS["aws_secret_access_key"])
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_endpoint)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    s3 = boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1", **KEYS)
    s3.upload_file(str(sample_videos_dir / "bikes.mp4"), BUCKET, "catalog/bikes.mp4")

    settings = make_settings(
        lancedb_uri=f"s3://{BUCKET}/ingest/lancedb", storage_options=storage_options(s3_endpoint), encoder="handcrafted"
    )
    summary = run_ingest([f"s3://{BUCKET}/catalog/"], settings=settings)
    assert (summary.videos_done, summary.videos_failed) == (1, 0)
    store = ShotStore.from_settings(settings)
    counts = store.counts()
    assert counts["videos"] == 1 and counts["shots"] == summary.shots >= 4  # bikes.mp4 has six shots
    (video,) = store.videos()
    assert video["uri"] == f"s3://{BUCKET}/catalog/bikes.mp4"

    # The annotation service reads the same bucket ...
    from fastapi.testclient import TestClient

    from serving.annotation.app import create_app

    with TestClient(create_app(settings)) as client:
        health = client.get("/api/health").json()
    assert health["stores"]["shots"] == counts["shots"]

    # ... and so does corpus scoring, with a label published from those very shots.
    import ray

    from annotator_core.classifier import train
    from annotator_core.store import AnnotationStore
    from pipelines.score_corpus import run_score_corpus
    from serving.model_store import publish
    from va_cli.published import published_models

    vectors = store.vectors()
    moving = np.arange(len(vectors)) % 2 == 0
    classifier = train(vectors.matrix, moving, seed=0, encoder=store.encoder() or "")
    annotations = AnnotationStore.from_settings(settings)
    annotations.labels.create("moving", created_by="test")
    annotations.versions.save(
        "moving", model=classifier.to_bytes(), encoder=classifier.encoder, dim=classifier.dim,
        n_pos=int(moving.sum()), n_neg=int((~moving).sum()), model_quality=0.5, data_diversity=0.1,
        snapshot=[], snapshot_event_id=0,
    )  # fmt: skip
    publish("moving", settings=settings)
    try:
        run_score_corpus(published_models(settings, ["moving"]), settings=settings)
    finally:
        ray.shutdown()
    scores = store.read_scores(label="moving").to_pydict()
    expected = dict(zip(vectors.ids.tolist(), classifier.predict_proba(vectors.matrix).tolist(), strict=True))
    assert sorted(scores["shot_id"]) == sorted(expected)
    for shot, score in zip(scores["shot_id"], scores["score"], strict=True):
        assert score == pytest.approx(expected[shot], abs=1e-5)
