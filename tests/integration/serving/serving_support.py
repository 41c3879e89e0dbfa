"""Helpers for annotation-service tests that need a service of their own (a corpus of n shots, two users)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import numpy as np
from va_testing import serve_annotation_app

DIGIT_VIDEOS = 9  # the digits are spread over this many "videos" of ~200 shots


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


def _thumbnail(image: np.ndarray) -> bytes:
    from PIL import Image

    pixels = (255 - image * 16).clip(0, 255).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(pixels).resize((32, 32)).convert("RGB").save(out, format="JPEG")
    return out.getvalue()


def write_digit_corpus(settings: Any) -> dict[str, int]:
    """Write the digits as shots (vector = centred, L2-normalised pixels; k-means cluster ids)."""
    from datetime import UTC, datetime

    from sklearn.cluster import KMeans
    from sklearn.datasets import load_digits

    from annotator_core.encoders import l2_normalise
    from annotator_core.shot_store import ShotStore

    digits = load_digits()
    x = l2_normalise(digits.data - digits.data.mean(axis=0))
    clusters = KMeans(n_clusters=10, n_init=3, random_state=0).fit_predict(x)
    store = ShotStore.from_settings(settings)
    per_video = -(-len(x) // DIGIT_VIDEOS)
    shots, videos, digit_of = [], [], {}
    for v in range(DIGIT_VIDEOS):
        video_id = f"digits{v:02d}"
        members = range(v * per_video, min(len(x), (v + 1) * per_video))
        videos.append(
            dict(video_id=video_id, uri=f"/nonexistent/{video_id}.mp4", title=f"Digits reel {v}",
                 duration_s=float(len(members)), fps=25.0, width=8, height=8, n_frames=25 * len(members),
                 n_shots=len(members), status="done", error="", ingested_at=datetime.now(UTC), encoder="handcrafted")
        )  # fmt: skip
        for j, i in enumerate(members):
            sid = f"{video_id}:{j * 25}"
            digit_of[sid] = int(digits.target[i])
            shots.append(
                dict(shot_id=sid, video_id=video_id, start_frame=j * 25, end_frame=(j + 1) * 25, start_s=float(j),
                     end_s=float(j + 1), thumbnail=_thumbnail(digits.images[i]), cluster_id=int(clusters[i]),
                     encoder="handcrafted", vector=x[i].tolist())
            )  # fmt: skip
    store.upsert_videos(videos)
    store.upsert_shots(shots)
    return digit_of
