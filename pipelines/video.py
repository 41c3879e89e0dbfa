"""Probe a video and decode it ONCE, sequentially, into shots with their sample frames and thumbnail.

Seeking to scattered frames costs a decode from the previous keyframe each
time, and full-resolution RGB costs memory and conversions, so one pass at a
reduced size (just large enough for the encoder, the thumbnail and shot
detection) feeds the shot detector and keeps the frames of the open shot,
thinned as it grows. When a cut is reported, the shot closes with its
``frames_per_shot`` frames spread evenly over it, resized for the encoder, and
a JPEG thumbnail of its middle frame.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field

import cv2
import decord
import numpy as np

from pipelines.shots import CutDetector, DetectorConfig, detection_width

MAX_KEPT_FRAMES = 32  # frames of the open shot kept in memory (thinned by half when exceeded)
JPEG_QUALITY = 85
SNIFF_BYTES = 4096
TRUNCATION_TOLERANCE = 0.98  # fewer decoded frames than this share of the declared count: truncated


class VideoRefused(Exception):
    """The file is not a video we ingest (empty, not a video by content, over a limit, cannot decode)."""


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    fps: float
    width: int
    height: int
    n_frames: int


@dataclass(frozen=True)
class SampleOptions:
    """What the decode pass makes per shot; plain values so a Ray task can carry them."""

    frame_size: tuple[int, int]  # (height, width) the encoder wants
    frames_per_shot: int = 3
    thumbnail_width: int = 320
    detector: DetectorConfig = field(default_factory=DetectorConfig)


@dataclass(frozen=True)
class ShotSample:
    start_frame: int
    end_frame: int  # exclusive
    frames: np.ndarray  # uint8 [k, H, W, 3], RGB, already at the encoder's frame size
    thumbnail: bytes  # JPEG


@dataclass
class DecodeStats:
    """Seconds spent per stage of the decode pass (for the progress display and the benchmark)."""

    decode_s: float = 0.0
    detect_s: float = 0.0
    sample_s: float = 0.0
    frames: int = 0


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[-1][:200] if text else type(exc).__name__


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


def decode_size(info: VideoInfo, options: SampleOptions) -> tuple[int, int]:
    """(width, height) to decode at: the smallest that still covers the encoder, thumbnail and detector."""
    fh, fw = options.frame_size
    det_w = detection_width(info.width, options.detector.downscale)
    scale = max(fh / info.height, fw / info.width, options.thumbnail_width / info.width, det_w / info.width)
    if scale >= 1.0:
        return info.width, info.height
    return max(2, round(info.width * scale / 2) * 2), max(2, round(info.height * scale / 2) * 2)


def fit_frame(frame: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """Resize to cover ``size`` (height, width) keeping the aspect, then centre-crop (as CLIP does)."""
    h, w = frame.shape[:2]
    th, tw = size
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    if (nh, nw) != (h, w):
        interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
        frame = cv2.resize(frame, (nw, nh), interpolation=interp)
    top, left = (nh - th) // 2, (nw - tw) // 2
    return frame[top : top + th, left : left + tw]


def jpeg_thumbnail(frame: np.ndarray, width: int) -> bytes:
    h, w = frame.shape[:2]
    if w != width:
        frame = cv2.resize(frame, (width, max(1, round(h * width / w))), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise VideoRefused("could not encode a thumbnail")
    return buf.tobytes()


class _OpenShot:
    """Frames of the shot being decoded, at a stride that doubles whenever too many are kept."""

    def __init__(self, start: int) -> None:
        self.start = start
        self.stride = 1
        self.kept: list[tuple[int, np.ndarray]] = []

    def add(self, index: int, frame: np.ndarray) -> None:
        if (index - self.start) % self.stride:
            return
        self.kept.append((index, frame))
        if len(self.kept) > MAX_KEPT_FRAMES:
            self.stride *= 2
            self.kept = [(i, f) for i, f in self.kept if (i - self.start) % self.stride == 0]


def _nearest(kept: list[tuple[int, np.ndarray]], target: float) -> np.ndarray:
    return min(kept, key=lambda item: abs(item[0] - target))[1]


def _sample(start: int, end: int, kept: list[tuple[int, np.ndarray]], options: SampleOptions) -> ShotSample:
    k = options.frames_per_shot
    length = end - start
    targets = [start + (j + 0.5) * length / k for j in range(k)]
    frames = np.stack([fit_frame(_nearest(kept, t), options.frame_size) for t in targets])
    thumbnail = jpeg_thumbnail(_nearest(kept, start + length / 2), options.thumbnail_width)
    return ShotSample(start_frame=start, end_frame=end, frames=frames, thumbnail=thumbnail)


def decode_shots(path: str, info: VideoInfo, options: SampleOptions, stats: DecodeStats) -> Iterator[ShotSample]:
    """One sequential decode of ``path``: yields each shot as soon as its end is known.

    Raises VideoRefused when the decoder fails part-way or the file ends early (truncated).
    """
    width, height = decode_size(info, options)
    cv2.setNumThreads(1)  # one task per core: OpenCV's own threads would only contend with the other tasks
    try:
        reader = decord.VideoReader(path, num_threads=1, width=width, height=height)
    except (RuntimeError, decord.DECORDError) as exc:
        raise VideoRefused(f"not a video the decoder can read ({_first_line(exc)})") from None
    detector = CutDetector(options.detector, fps=info.fps, source_width=info.width)
    recent: deque[tuple[int, np.ndarray]] = deque(maxlen=detector.lag + 2)
    shot = _OpenShot(0)
    index = 0

    def split(cut: int) -> ShotSample | None:
        nonlocal shot
        if cut <= shot.start:
            return None
        before = [(i, f) for i, f in shot.kept if i < cut]
        after = dict((i, f) for i, f in [*shot.kept, *recent] if i >= cut)
        t0 = time.perf_counter()
        sample = _sample(shot.start, cut, before or shot.kept[:1], options)
        stats.sample_s += time.perf_counter() - t0
        shot = _OpenShot(cut)
        for i in sorted(after):
            shot.add(i, after[i])
        return sample

    while True:
        t0 = time.perf_counter()
        try:
            frame = reader.next().asnumpy()
        except StopIteration:
            break
        except (RuntimeError, decord.DECORDError) as exc:
            raise VideoRefused(
                f"decoding failed at frame {index} of {info.n_frames} (truncated or corrupt: {_first_line(exc)})"
            ) from None
        t1 = time.perf_counter()
        recent.append((index, frame))
        shot.add(index, frame)
        cuts = detector.process(index, frame)
        stats.decode_s += t1 - t0
        stats.detect_s += time.perf_counter() - t1
        for cut in cuts:
            if (sample := split(cut)) is not None:
                yield sample
        index += 1
    stats.frames = index
    if index < info.n_frames * TRUNCATION_TOLERANCE:
        raise VideoRefused(f"truncated: decoded {index} of {info.n_frames} frames")
    for cut in sorted(detector.finish()):
        if cut < index and (sample := split(cut)) is not None:
            yield sample
    if index > shot.start and shot.kept:
        t0 = time.perf_counter()
        yield _sample(shot.start, index, shot.kept, options)
        stats.sample_s += time.perf_counter() - t0
