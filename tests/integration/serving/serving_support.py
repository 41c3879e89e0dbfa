"""Helpers for annotation-service tests that need a service of their own (a corpus of n shots, two users)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from va_testing import serve_annotation_app


def write_shots(settings: Any, n: int, *, dim: int = 8) -> list[str]:
    """``n`` shots of one video with random unit vectors: enough rows for an import to take a while."""
    from datetime import UTC, datetime

    from annotator_core.shot_store import ShotStore

    store = ShotStore.from_settings(settings)
    store.ensure_tables(dim)
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(n, dim)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    store.upsert_videos(
        [dict(video_id="reel", uri="/nonexistent/reel.mp4", title="Reel", duration_s=float(n), fps=25.0, width=8,
              height=8, n_frames=25 * n, n_shots=n, status="done", error="", ingested_at=datetime.now(UTC),
              encoder="handcrafted")]
    )  # fmt: skip
    ids = [f"reel:{25 * i}" for i in range(n)]
    store.upsert_shots(
        [dict(shot_id=sid, video_id="reel", start_frame=25 * i, end_frame=25 * i + 25, start_s=float(i),
              end_s=float(i + 1), thumbnail=b"", cluster_id=0, encoder="handcrafted", vector=v.tolist())
         for i, (sid, v) in enumerate(zip(ids, vectors, strict=True))]
    )  # fmt: skip
    return ids


def add_users(settings: Any) -> dict[str, str]:
    """An admin and an annotator, each with password '<name>-password-1'; returns their tokens."""
    from annotator_core.store import AnnotationStore

    store = AnnotationStore.from_settings(settings)
    try:
        return {
            name: store.users.create(name, role, password=f"{name}-password-1")[1]
            for name, role in (("ada", "admin"), ("ann", "annotator"))
        }
    finally:
        store.db.close()


@contextmanager
def own_service(tmp_path: Path, n_shots: int = 20, **overrides: Any) -> Iterator[tuple[str, Any, dict[str, str]]]:
    """A service of its own (these tests lock names out and fill tables): (url, settings, tokens)."""
    from annotator_core.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", encoder="handcrafted", session_secret="s", **overrides)
    write_shots(settings, n_shots)
    tokens = add_users(settings)
    with serve_annotation_app(settings) as url:
        yield url, settings, tokens


def client(url: str, token: str | None = None) -> httpx.Client:
    return httpx.Client(base_url=url, headers={"Authorization": f"Bearer {token}"} if token else {}, timeout=120)
