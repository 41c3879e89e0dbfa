"""An uploaded clip as shots and shot embeddings, made exactly the way ingest makes them.

Probe, shot detection, frame sampling and resizing are the functions ingest uses
(:func:`annotator_core.media.probe.probe`, :func:`annotator_core.media.decode.decode_shots`,
with the shot-detection settings in effect), so a clip scored here gets the vectors
ingest would store for it. Only the limits differ: the scoring service's
``max_clip_duration_s``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from annotator_core.media.decode import DecodeStats, decode_shots
from annotator_core.media.probe import VideoRefused
from annotator_core.media.remux import probed
from annotator_core.media.sampling import SampleOptions
from annotator_core.settings import Settings
from serving.http_errors import ApiError


@dataclass(frozen=True)
class ClipShot:
    start_frame: int
    end_frame: int  # exclusive
    start_s: float
    end_s: float


@dataclass(frozen=True)
class EmbeddedClip:
    fps: float
    n_frames: int
    duration_s: float
    shots: list[ClipShot]
    vectors: np.ndarray  # float32 [n_shots, dim]


def embed_clip(path: Path, encoder: Any, *, settings: Settings) -> EmbeddedClip:
    """Shots of the clip at ``path`` and one ``encoder`` vector per shot; ApiError for a refused clip."""
    try:
        limits = {
            "max_duration_s": settings.max_clip_duration_s,
            "max_pixels": settings.max_video_pixels,
            "max_frames": settings.max_video_frames,
        }
        # rewrapped as ingest does; its largest video stream where the decoder would pick a smaller one
        with probed(str(path), timeout_s=settings.probe_timeout_s, **limits) as (readable, info):
            options = SampleOptions.from_settings(settings, frame_size=encoder.frame_size)
            samples = list(decode_shots(readable, info, options, DecodeStats()))
    except VideoRefused as exc:
        too_long = str(exc).startswith("too long")
        raise ApiError(
            413 if too_long else 422,
            "too_large" if too_long else "invalid",
            f"the uploaded clip was refused: {exc}"
            + (" (VA_MAX_CLIP_DURATION_S for the scoring service)." if too_long else "; send a video file."),
            field="clip",
            expected=f"a video of at most {settings.max_clip_duration_s:g} s" if too_long else "a decodable video file",
        ) from None
    fps = info.fps
    shots = [
        ClipShot(s.start_frame, s.end_frame, info.seconds(s.start_frame), info.seconds(s.end_frame)) for s in samples
    ]
    vectors = np.zeros((0, encoder.dim), np.float32)
    if samples:
        vectors = np.asarray(encoder.embed_shots([s.frames for s in samples]), dtype=np.float32)
    return EmbeddedClip(fps=fps, n_frames=info.n_frames, duration_s=info.duration_s, shots=shots, vectors=vectors)
