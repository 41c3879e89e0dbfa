"""The catalog on object storage: an S3 prefix served by a real moto S3 server on a free port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from annotator_core.errors import ValidationFailed
from pipelines.catalog import fingerprint, list_videos, local_copy


@pytest.fixture()
def s3_bucket(monkeypatch: pytest.MonkeyPatch, sample_videos_dir: Path) -> Iterator[str]:
    """A bucket with two clips and a sidecar under reel/, reached through AWS_ENDPOINT_URL as a user would."""
    boto3 = pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    endpoint = f"http://{host}:{port}"
    for name, value in {
        "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
    }.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    s3 = boto3.client("s3", endpoint_url=endpoint)
    s3.create_bucket(Bucket="catalog")
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        s3.put_object(Bucket="catalog", Key=f"reel/{name}", Body=(sample_videos_dir / name).read_bytes())
    s3.put_object(Bucket="catalog", Key="reel/bikes.srt", Body=b"1\n00:00:00,000 --> 00:00:01,000\nhi\n")
    try:
        yield "catalog"
    finally:
        server.stop()


def test_an_s3_prefix_lists_its_videos_with_the_same_fingerprint_as_the_local_file(s3_bucket, sample_videos_dir):
    entries = list_videos([f"s3://{s3_bucket}/reel/"])
    assert [e.uri for e in entries] == [
        f"s3://{s3_bucket}/reel/bikes.mp4",
        f"s3://{s3_bucket}/reel/carphone_pristine.mp4",
    ]
    assert [e.uri for e in list_videos([f"s3://{s3_bucket}/reel/bike*"])] == [f"s3://{s3_bucket}/reel/bikes.mp4"]
    local = sample_videos_dir / "bikes.mp4"
    assert entries[0].size == local.stat().st_size
    assert fingerprint(entries[0].uri, entries[0].size) == fingerprint(str(local), local.stat().st_size)
    with local_copy(entries[0].uri) as path:
        assert Path(path).read_bytes() == local.read_bytes()
    assert not os.path.exists(path)  # the temporary download is gone


def test_a_missing_bucket_is_one_clear_error(s3_bucket):
    with pytest.raises(ValidationFailed, match="cannot list 's3://no-such-bucket/x/'"):
        list_videos(["s3://no-such-bucket/x/"])
