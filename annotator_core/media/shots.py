"""Shot boundaries with PySceneDetect, fed frame by frame from the one decode pass of a title.

PySceneDetect's own ``SceneManager.detect_scenes`` would open and decode the
video a second time; here the detector's ``process_frame`` gets the small
frames the decode pass already made, so each title is decoded once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np
from scenedetect import AdaptiveDetector, ContentDetector, FrameTimecode, ThresholdDetector
from scenedetect.detector import SceneDetector
from scenedetect.scene_manager import DEFAULT_MIN_WIDTH, compute_downscale_factor

from annotator_core.settings import Settings

# Each detector's own default threshold, used when the setting is 0.
DEFAULT_THRESHOLDS = {"adaptive": 3.0, "content": 27.0, "threshold": 12.0}


@dataclass(frozen=True)
class DetectorConfig:
    """The shot-detection settings, as plain values a Ray task can carry."""

    detector: str = "adaptive"
    threshold: float = 0.0  # 0: the detector's own default
    min_shot_seconds: float = 0.32  # 8 frames at 25 fps
    min_shot_frames: int = 0  # > 0: a fixed count of frames at every frame rate instead of min_shot_seconds
    downscale: int = 0  # 0: pick from the frame width as PySceneDetect does

    def shortest_shot(self, fps: float) -> int:
        """The shortest shot in frames at ``fps`` (at least one), for planning a chunk's warm-up and overlap.

        The shortest shot is a time, not a count of frames: 8 frames are 0.32 s at 25 fps but 8 s of a 1 fps
        timelapse, whose cuts 2 s apart were all lost, and 67 ms at 120 fps, short enough for a flash to pass
        as a shot. :class:`CutDetector` holds cuts to it by the frames' own times.
        """
        if self.min_shot_frames > 0:
            return self.min_shot_frames
        return max(1, round(self.min_shot_seconds * fps)) if fps > 0 else 8

    @classmethod
    def from_settings(cls, settings: Settings) -> DetectorConfig:
        return cls(
            detector=settings.shot_detector,
            threshold=settings.detector_threshold,
            min_shot_seconds=settings.min_shot_seconds,
            min_shot_frames=settings.min_shot_frames,
            downscale=settings.detect_downscale,
        )


ADAPTIVE_WINDOW = 2  # PySceneDetect's own: frames each side of a frame whose scores it is compared with


def adaptive_window(config: DetectorConfig, slowest_fps: float) -> int:
    """Frames each side the adaptive detector compares a frame with: its own 2, but no more than a shortest shot
    at the title's slowest rate holds less one, so the window of one cut never reaches the next. In a 1 fps
    timelapse a window of 2 frames spans 4 s and swallowed the cuts of scenes 2 s long."""
    return max(1, min(ADAPTIVE_WINDOW, config.shortest_shot(slowest_fps) - 1))


def make_detector(config: DetectorConfig, *, slowest_fps: float = 25.0) -> SceneDetector:
    """The PySceneDetect detector, with no shortest shot of its own: :class:`CutDetector` holds cuts to
    ``min_shot_seconds`` by the frames' own times, which a count of frames cannot do on a variable-rate title."""
    threshold = config.threshold or DEFAULT_THRESHOLDS.get(config.detector, 0.0)
    if config.detector == "adaptive":
        window = adaptive_window(config, slowest_fps)
        return AdaptiveDetector(adaptive_threshold=threshold, min_scene_len=1, window_width=window)
    if config.detector == "content":
        return ContentDetector(threshold=threshold, min_scene_len=1)
    if config.detector == "threshold":
        return ThresholdDetector(threshold=threshold, min_scene_len=1)
    raise ValueError(f"unknown shot detector {config.detector!r}; expected adaptive, content or threshold")


def detection_width(source_width: int, downscale: int) -> int:
    """Width of the frames the detector sees (PySceneDetect's automatic downscale unless set)."""
    factor = float(downscale) if downscale > 0 else compute_downscale_factor(source_width, DEFAULT_MIN_WIDTH)
    return max(1, round(source_width / max(factor, 1.0)))


class CutDetector:
    """Streams frames into one PySceneDetect detector and collects the cut frames.

    Cuts may be reported a few frames after they happen (``lag``); the caller
    keeps that many recent frames so a late cut still splits the right frames.
    """

    def __init__(
        self,
        config: DetectorConfig,
        *,
        fps: float,
        source_width: int,
        seconds: Callable[[int], float] | None = None,
        slowest_fps: float | None = None,
    ) -> None:
        self.detector = make_detector(config, slowest_fps=slowest_fps or fps)
        self.fps = fps
        self.width = detection_width(source_width, config.downscale)
        self.last_frame = -1
        # When each frame starts (the title's own frame times on a variable-rate stream; frame / fps else).
        self.seconds = seconds or (lambda frame: frame / fps)
        self.min_frames = config.min_shot_frames  # > 0: the shortest shot as a count of frames instead
        self.min_seconds = config.min_shot_seconds
        self.last_cut: int | None = None  # the last cut kept, or the first frame seen

    def _long_enough(self, cut: int) -> bool:
        """Whether the shot ``cut`` ends (since the last cut kept) is long enough; keeps the cut if so."""
        last = self.last_cut if self.last_cut is not None else cut
        if self.min_frames > 0:
            keep = cut - last >= self.min_frames
        else:  # a little slack for timestamps rounded to the container's timebase
            keep = self.seconds(cut) - self.seconds(last) >= self.min_seconds - 1e-6
        if keep:
            self.last_cut = cut
        return keep

    @property
    def lag(self) -> int:
        return int(self.detector.event_buffer_length)

    def process(self, index: int, rgb: np.ndarray) -> list[int]:
        """Feed frame ``index`` (RGB, any size); returns the cut frames detected so far with it."""
        h, w = rgb.shape[:2]
        if w != self.width:
            rgb = cv2.resize(rgb, (self.width, max(1, round(h * self.width / w))), interpolation=cv2.INTER_LINEAR)
        bgr = cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)  # the detectors work on OpenCV's BGR order
        self.last_frame = index
        if self.last_cut is None:
            self.last_cut = index  # as PySceneDetect does: the first shot is timed from the first frame seen
        cuts = self.detector.process_frame(FrameTimecode(index, fps=self.fps), bgr)
        return [c.frame_num for c in cuts if self._long_enough(c.frame_num)]

    def finish(self) -> list[int]:
        """Cuts a detector can only report once the last frame is known."""
        if self.last_frame < 0:
            return []
        late = self.detector.post_process(FrameTimecode(self.last_frame, fps=self.fps))
        return [c.frame_num for c in late if self._long_enough(c.frame_num)]
