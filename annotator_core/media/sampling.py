"""What a shot keeps from the decode pass: a few frames at the encoder's size and a JPEG thumbnail.

The open shot's frames are thinned as it grows (:class:`OpenShot`), so a long shot costs
no more memory than a short one; when it closes, ``frames_per_shot`` frames spread evenly
over it are resized for the encoder (:func:`fit_frame`, as CLIP crops) and its middle frame
becomes the thumbnail.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import cv2
import numpy as np

from annotator_core.media.probe import VideoInfo, VideoRefused
from annotator_core.media.shots import DetectorConfig, detection_width
from annotator_core.settings import Settings

MAX_KEPT_FRAMES = 32  # frames of the open shot kept in memory (thinned by half when exceeded)
JPEG_QUALITY = 85


@dataclass(frozen=True)
class SampleOptions:
    """What the decode pass makes per shot; plain values so a Ray task can carry them."""

    frame_size: tuple[int, int]  # (height, width) the encoder wants
    frames_per_shot: int = 3
    thumbnail_width: int = 320
    detector: DetectorConfig = field(default_factory=DetectorConfig)

    @classmethod
    def from_settings(cls, settings: Settings, *, frame_size: Sequence[int]) -> SampleOptions:
        """The options ingest and clip scoring both use, for an encoder that wants ``frame_size`` (h, w)."""
        height, width = frame_size
        return cls(
            frame_size=(int(height), int(width)),
            frames_per_shot=settings.frames_per_shot,
            thumbnail_width=settings.thumbnail_width,
            detector=DetectorConfig.from_settings(settings),
        )


@dataclass(frozen=True)
class ShotSample:
    start_frame: int
    end_frame: int  # exclusive
    frames: np.ndarray  # uint8 [k, H, W, 3], RGB, already at the encoder's frame size
    thumbnail: bytes  # JPEG


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


THUMBNAIL_MAX_ASPECT = 2.0  # a thumbnail is at most this many times as tall as the card is wide


def jpeg_thumbnail(frame: np.ndarray, width: int) -> bytes:
    """The frame as a JPEG ``width`` pixels wide; a frame taller than twice its width (a 120x1280 banner) is fitted
    into ``width`` x 2·``width`` instead (60x640 for that banner; its shape is kept, so it is narrower than the
    card) rather than becoming a 320x3413 picture in every card."""
    h, w = frame.shape[:2]
    height = max(1, round(h * width / w))
    if height > THUMBNAIL_MAX_ASPECT * width:
        height = round(THUMBNAIL_MAX_ASPECT * width)
        width = max(1, round(w * height / h))
    if (w, h) != (width, height):
        frame = cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA)
    ok, buf = cv2.imencode(".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        raise VideoRefused("could not encode a thumbnail")
    return buf.tobytes()


class OpenShot:
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


def sample_shot(start: int, end: int, kept: list[tuple[int, np.ndarray]], options: SampleOptions) -> ShotSample:
    """The shot [start, end) from its kept frames: ``frames_per_shot`` evenly spread frames and a thumbnail."""
    k = options.frames_per_shot
    length = end - start
    targets = [start + (j + 0.5) * length / k for j in range(k)]
    frames = np.stack([fit_frame(_nearest(kept, t), options.frame_size) for t in targets])
    thumbnail = jpeg_thumbnail(_nearest(kept, start + length / 2), options.thumbnail_width)
    return ShotSample(start_frame=start, end_frame=end, frames=frames, thumbnail=thumbnail)
