"""The catalog on object storage: an S3 prefix on the suite's real moto S3 server (tests/conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from va_testing import S3Server

from annotator_core.errors import ValidationFailed
from pipelines.catalog import fingerprint, list_videos, local_copy


@pytest.fixture()
def s3_bucket(monkeypatch: pytest.MonkeyPatch, sample_videos_dir: Path, s3_server: S3Server) -> str:
    """A bucket with two clips and a sidecar under reel/, reached through AWS_ENDPOINT_URL as a user would."""
    for name, value in s3_server.environment().items():
        monkeypatch.setenv(name, value)
    s3 = s3_server.client()
    s3.create_bucket(Bucket="catalog")
    for name in ("bikes.mp4", "carphone_pristine.mp4"):
        s3.put_object(Bucket="catalog", Key=f"reel/{name}", Body=(sample_videos_dir / name).read_bytes())
    s3.put_object(Bucket="catalog", Key="reel/bikes.srt", Body=b"1\n00:00:00,000 --> 00:00:01,000\nhi\n")
    return "catalog"


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
