"""Decode a title ONCE, sequentially, into shots with their sample frames and thumbnail.

Seeking to scattered frames costs a decode from the previous keyframe each
time, and full-resolution RGB costs memory and conversions, so one pass at a
reduced size (just large enough for the encoder, the thumbnail and shot
detection) feeds the shot detector and keeps the frames of the open shot,
thinned as it grows. When a cut is reported, the shot closes with its
``frames_per_shot`` frames spread evenly over it, resized for the encoder, and
a JPEG thumbnail of its middle frame.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import decord
import numpy as np

from annotator_core.errors import first_line
from annotator_core.media.probe import VideoInfo, VideoRefused, decoder_reason
from annotator_core.media.sampling import OpenShot, SampleOptions, ShotSample, decode_size, sample_shot
from annotator_core.media.shots import CutDetector

TRUNCATION_TOLERANCE = 0.98  # fewer decoded frames than this share of the declared count: truncated


def rgb_frame(frame: np.ndarray) -> np.ndarray:
    """A decoded frame as [height, width, 3] RGB.

    decord hands some small frames (16x16 and 48x48 among those measured) over with their row padding
    counted as extra channels, e.g. [48, 48, 4]: each row is its RGB bytes followed by the padding.
    Dropping the padding gives exactly the pixels ffmpeg decodes (tests/integration/pipelines/test_odd_footage.py).
    """
    if frame.ndim == 3 and frame.shape[2] != 3:
        height, width = frame.shape[:2]
        frame = np.ascontiguousarray(frame.reshape(height, -1)[:, : width * 3]).reshape(height, width, 3)
    return frame


@dataclass
class DecodeStats:
    """Seconds spent per stage of the decode pass (for the progress display and the benchmark)."""

    decode_s: float = 0.0
    detect_s: float = 0.0
    sample_s: float = 0.0
    frames: int = 0


def decode_shots(path: str, info: VideoInfo, options: SampleOptions, stats: DecodeStats) -> Iterator[ShotSample]:
    """One sequential decode of ``path``: yields each shot as soon as its end is known.

    Raises VideoRefused when the decoder fails part-way or the file ends early (truncated).
    """
    width, height = decode_size(info, options)
    cv2.setNumThreads(1)  # one task per core: OpenCV's own threads would only contend with the other tasks
    try:
        reader = decord.VideoReader(path, num_threads=1, width=width, height=height)
    except (RuntimeError, decord.DECORDError) as exc:
        raise VideoRefused(f"not a video the decoder can read ({first_line(exc, limit=200)})") from None
    detector = CutDetector(options.detector, fps=info.fps, source_width=info.width, seconds=info.seconds)
    recent: deque[tuple[int, np.ndarray]] = deque(maxlen=detector.lag + 2)
    shot = OpenShot(0)
    index = 0

    def split(cut: int) -> ShotSample | None:
        nonlocal shot
        if cut <= shot.start:
            return None
        before = [(i, f) for i, f in shot.kept if i < cut]
        after = dict((i, f) for i, f in [*shot.kept, *recent] if i >= cut)
        t0 = time.perf_counter()
        sample = sample_shot(shot.start, cut, before or shot.kept[:1], options)
        stats.sample_s += time.perf_counter() - t0
        shot = OpenShot(cut)
        for i in sorted(after):
            shot.add(i, after[i])
        return sample

    while True:
        t0 = time.perf_counter()
        try:
            frame = rgb_frame(reader.next().asnumpy())
        except StopIteration:
            break
        except (RuntimeError, decord.DECORDError) as exc:
            raise VideoRefused(
                f"decoding failed at frame {index} of {info.n_frames}: the file is damaged there "
                f"({decoder_reason(exc)}); re-encode or copy it again"
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
        yield sample_shot(shot.start, index, shot.kept, options)
        stats.sample_s += time.perf_counter() - t0
