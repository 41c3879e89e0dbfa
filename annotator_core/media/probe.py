"""What a video file is (duration, fps, size, frame count), and whether it is worth decoding at all."""

from __future__ import annotations

import os
from dataclasses import dataclass

import decord

SNIFF_BYTES = 4096


class VideoRefused(Exception):
    """The file is not a video we ingest (empty, not a video by content, over a limit, cannot decode)."""


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    fps: float
    width: int
    height: int
    n_frames: int


def describe_unreadable(path: str) -> str:
    """Why the decoder cannot open ``path``, judged from its first bytes (what a person can act on)."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if head[4:8] == b"ftyp":
        return "an MP4/MOV file without its index (moov atom): truncated, or still being written"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(c.isprintable() or c.isspace() for c in text):
        return "a text file, not a video"
    return "unrecognised content, not a video container the decoder knows"


def probe(path: str, *, max_duration_s: float, max_pixels: int) -> VideoInfo:
    """Duration, fps, size and frame count; raises VideoRefused for anything not worth decoding."""
    size = os.path.getsize(path)
    if size == 0:
        raise VideoRefused("empty file (0 bytes)")
    try:
        reader = decord.VideoReader(path, num_threads=1)
        n_frames = len(reader)
        fps = float(reader.get_avg_fps())
        height, width = reader.next().shape[:2]
    except StopIteration:
        raise VideoRefused("no decodable video frames") from None
    except (RuntimeError, decord.DECORDError):
        raise VideoRefused(f"not a readable video: {describe_unreadable(path)}") from None
    if n_frames < 2 or not fps > 0:
        raise VideoRefused(f"a still image or empty stream, not a video ({n_frames} frame(s), {fps:g} fps)")
    info = VideoInfo(duration_s=n_frames / fps, fps=fps, width=int(width), height=int(height), n_frames=n_frames)
    if info.duration_s > max_duration_s:
        raise VideoRefused(
            f"too long: {info.duration_s:.0f} s over the limit of {max_duration_s:.0f} s (VA_MAX_VIDEO_DURATION_S)"
        )
    if info.width * info.height > max_pixels:
        raise VideoRefused(
            f"too large: {info.width}x{info.height} over the limit of {max_pixels} pixels (VA_MAX_VIDEO_PIXELS)"
        )
    return info
