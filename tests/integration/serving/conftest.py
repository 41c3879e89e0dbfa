"""The annotation service served for real: uvicorn on a free port, real LanceDB and SQLite in a temp folder.

The corpus is scikit-learn's handwritten digits (1797 real labelled 8x8 images)
written as shots, so a label such as "zero" has a real answer and builds are
meaningful; one real video (bikes.mp4) with three shots backs the media tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from serving_support import write_digit_corpus
from va_testing import serve_annotation_app

MEDIA_VIDEO_ID = "bikes0000000000000000000000000000"


@dataclass
class Service:
    """A running annotation service and its users' tokens."""

    base_url: str
    settings: Any
    tokens: dict[str, str]
    passwords: dict[str, str]
    digit_of: dict[str, int]  # shot id -> the digit it shows
    video_path: Path
    media_shots: list[str]
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, user: str | None = None, **kwargs: Any) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[user]}"} if user else {}
        c = httpx.Client(base_url=self.base_url, headers=headers, timeout=120, **kwargs)
        self.clients.append(c)
        return c

    def shots_of_digit(self, digit: int, n: int, *, skip: int = 0) -> list[str]:
        return [s for s, d in self.digit_of.items() if d == digit][skip : skip + n]


def write_media_video(settings: Any, video: Path) -> list[str]:
    """The real video file with three shots whose vectors are random unit rows of the corpus width."""
    from datetime import UTC, datetime

    from annotator_core.encoders import l2_normalise
    from annotator_core.shot_store import ShotStore

    store = ShotStore.from_settings(settings)
    rng = np.random.default_rng(0)
    store.upsert_videos(
        [dict(video_id=MEDIA_VIDEO_ID, uri=str(video), title="Bikes", duration_s=10.0, fps=25.0, width=320,
              height=240, n_frames=250, n_shots=3, status="done", error="", ingested_at=datetime.now(UTC),
              encoder="handcrafted")]
    )  # fmt: skip
    ids = [f"{MEDIA_VIDEO_ID}:{f}" for f in (0, 75, 150)]
    store.upsert_shots(
        [dict(shot_id=sid, video_id=MEDIA_VIDEO_ID, start_frame=f, end_frame=f + 75, start_s=f / 25,
              end_s=(f + 75) / 25, thumbnail=b"", cluster_id=0, encoder="handcrafted",
              vector=l2_normalise(rng.normal(size=64)).tolist())
         for sid, f in zip(ids, (0, 75, 150), strict=True)]
    )  # fmt: skip
    return ids


@pytest.fixture(scope="session")
def service(tmp_path_factory: pytest.TempPathFactory, sample_videos_dir: Path) -> Iterator[Service]:
    """One running service for these tests (the corpus takes seconds to make); each test uses its own labels."""
    from annotator_core.settings import Settings
    from annotator_core.store import AnnotationStore

    data = tmp_path_factory.mktemp("annotation-service")
    settings = Settings(
        data_dir=data,
        encoder="handcrafted",
        max_body_bytes=64 * 1024,
        max_import_bytes=256 * 1024,
        max_batch=50,
        session_secret="test-secret",
    )
    digit_of = write_digit_corpus(settings)
    video = sample_videos_dir / "bikes.mp4"
    media_shots = write_media_video(settings, video)
    store = AnnotationStore.from_settings(settings)
    tokens, passwords = {}, {}
    for name, role in (("ada", "admin"), ("ann", "annotator"), ("ben", "annotator"), ("vic", "viewer")):
        passwords[name] = f"{name}-password-1"
        tokens[name] = store.users.create(name, role, password=passwords[name])[1]
    store.db.close()

    with serve_annotation_app(settings) as base_url:
        svc = Service(base_url, settings, tokens, passwords, digit_of, video, media_shots)
        yield svc
        for c in svc.clients:
            c.close()
