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
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import cv2
import decord
import numpy as np

from annotator_core.errors import first_line
from annotator_core.media.probe import VideoInfo, VideoRefused, decoder_reason
from annotator_core.media.sampling import OpenShot, SampleOptions, ShotSample, decode_size, sample_shot
from annotator_core.media.shots import CutDetector

TRUNCATION_TOLERANCE = 0.98  # fewer decoded frames than this share of the declared count: truncated
# Frames the decoder cannot read are skipped to the next keyframe, up to this share of the title; past it the
# title is refused as damaged. A damaged stretch of a long recording costs a GOP or two of a title that is
# otherwise whole; a title missing a tenth of its frames is more damage than a catalog should take unseen.
MAX_LOST_SHARE = 0.1


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
    lost: list[tuple[int, int]] = field(default_factory=list)  # [start, end) stretches the decoder could not read


def add_stretch(lost: list[tuple[int, int]], start: int, end: int) -> None:
    """Note ``[start, end)`` as lost; a stretch that starts where the last one ended extends it (one stretch)."""
    if lost and lost[-1][1] == start:
        lost[-1] = (lost[-1][0], end)
    else:
        lost.append((start, end))


def frames_lost(lost: list[tuple[int, int]]) -> int:
    return sum(end - start for start, end in lost)


class Frames:
    """A title's frames in order from a decord reader, each with its index in the title.

    A frame the decoder fails on (a damaged stretch of the file) does not end the title: the damage is found,
    the frames before it are kept, and decoding goes on from the next keyframe, which decodes on its own; the
    frames in between are noted in ``lost`` (ffmpeg's own error concealment goes on the same way). More than
    ``MAX_LOST_SHARE`` of the title lost refuses the title with where it failed.

    Where the damage is takes a second look: decord's decoding thread runs ahead of the frames taken (by a
    hundred frames and more when each frame taken costs more than decoding it, as shot detection does), and a
    decoder error surfaces at the next frame taken. So a fresh reader decodes again from the frame the error
    surfaced at, taking frames as fast as they come, and holds them; a pass whose error surfaces again goes
    on with another from there, until one fails at its first frame: the damage is there, to within the
    decoder's few frames of delay. At most ``LOOKAHEAD`` frames are held, at the decode size.
    """

    LOOKAHEAD = 256
    PASSES = 8

    def __init__(self, open_reader: Callable[[], decord.VideoReader], info: VideoInfo) -> None:
        self.open_reader = open_reader
        self.reader = open_reader()
        self.info = info
        self.index = 0  # the index of the next frame (see start_at)
        self.lost: list[tuple[int, int]] = []
        self.held: deque[np.ndarray] = deque()  # frames self.index, self.index + 1, ... decoded ahead of the damage
        self._keys: list[int] | None = None
        self._gap: tuple[int, int] | None = None  # (damaged, resume): where the held frames end, where to go on

    def start_at(self, keyframe: int) -> None:
        """Begin at ``keyframe`` (a plain seek lands on a keyframe, and decodes nothing that could fail here)."""
        self.reader.seek(keyframe)
        self.index = keyframe

    def __iter__(self) -> Iterator[tuple[int, np.ndarray]]:
        return self

    def __next__(self) -> tuple[int, np.ndarray]:
        if self.index >= self.info.n_frames:  # the decoder's own count, or fewer (frame_times.edited_frame_count)
            raise StopIteration
        while True:
            if self.held:
                frame = self.held.popleft()
                break
            if self._gap is not None and self.index == self._gap[0]:
                self.index, self._gap = self._gap[1], None  # the held frames are taken: on past the damage
            try:
                frame = rgb_frame(self.reader.next().asnumpy())  # StopIteration at the end passes through
                break
            except (RuntimeError, decord.DECORDError) as exc:
                self._past_damage(exc)
        self.index += 1
        return self.index - 1, frame

    def _past_damage(self, exc: BaseException) -> None:
        """After an error surfaced at ``self.index``: hold the frames up to the damage, and resume after it."""
        n_frames = self.info.n_frames
        if self._keys is None:
            self._keys = sorted(int(k) for k in self.reader.get_key_indices())
        self.reader = _Ended()  # the old reader (and its decoding thread) goes before decoding again
        stuck_at = -1  # where a pass last failed at its first frame
        for _ in range(self.PASSES):  # each pass from where the last one's error surfaced, closer to the damage
            at = self.index + len(self.held)
            try:
                reader = self.open_reader()
                reader.seek_accurate(at)
            except (RuntimeError, decord.DECORDError) as again:  # the seek itself decoded into the damage
                exc, reader = again, None
            taken = 0
            while reader is not None and len(self.held) < self.LOOKAHEAD:
                try:
                    self.held.append(rgb_frame(reader.next().asnumpy()))
                    taken += 1
                except StopIteration:
                    self.reader = reader  # no damage after all, to its end: the held frames are the rest
                    return
                except (RuntimeError, decord.DECORDError) as again:
                    exc = again
                    break
            else:  # no damage within the look-ahead: it was further on; go on with this reader
                if reader is not None:
                    self.reader = reader
                    return
            del reader
            if taken == 0:  # the damage is here, unless the decoding thread raced to it again: look twice
                if stuck_at == at:
                    break
                stuck_at = at
        damaged = self.index + len(self.held)
        after = next((k for k in self._keys if k > damaged), None)
        resume = after if after is not None else n_frames
        lost = frames_lost(self.lost) + max(0, resume - damaged)
        if lost > MAX_LOST_SHARE * n_frames:
            raise VideoRefused(
                f"decoding failed at frame {damaged} of {n_frames}: the file is damaged there "
                f"({decoder_reason(exc)}), and {lost} of its frames ({lost / max(n_frames, 1):.0%}) cannot be read, "
                f"more than the {MAX_LOST_SHARE:.0%} ingest skips; re-encode it or copy it again"
            ) from None
        add_stretch(self.lost, damaged, resume)  # damage again where the last stretch resumed: one stretch
        self._gap = (damaged, resume)
        if after is None:  # damaged to its end: the frames before it are the title
            self.reader = _Ended()
            return
        try:
            self.reader = self.open_reader()
            self.reader.seek(after)
        except (RuntimeError, decord.DECORDError) as again:
            raise VideoRefused(
                f"decoding failed at frame {after} of {n_frames}: the file is damaged there ({decoder_reason(again)}); "
                "re-encode it or copy it again"
            ) from None


class _Ended:
    """A reader with no frames left (a title damaged to its end)."""

    def next(self) -> Any:
        raise StopIteration


def lost_note(lost: list[tuple[int, int]], info: VideoInfo) -> str:
    """What a title's ``error`` says when it ingested with damaged stretches left out (empty when none)."""
    if not lost:
        return ""
    frames = frames_lost(lost)
    where = ", ".join(f"{info.seconds(a):.2f}–{info.seconds(b):.2f} s" for a, b in lost[:5])
    more = f" and {len(lost) - 5} more" if len(lost) > 5 else ""
    return (
        f"damaged: {frames} of {info.n_frames} frames could not be decoded ({where}{more}) and are in no shot's "
        "frames; the shots around them are kept. Re-encode or copy the file again to ingest them"
    )


def cut_detector(info: VideoInfo, options: SampleOptions) -> CutDetector:
    """The shot detector for this title: its rate, width and frame times, and its slowest rate for the window."""
    return CutDetector(
        options.detector, fps=info.fps, source_width=info.width, seconds=info.seconds, slowest_fps=info.slowest_fps()
    )


def decode_shots(path: str, info: VideoInfo, options: SampleOptions, stats: DecodeStats) -> Iterator[ShotSample]:
    """One sequential decode of ``path``: yields each shot as soon as its end is known.

    Raises VideoRefused when the file ends early (truncated) or more of it is damaged than :class:`Frames` skips;
    the stretches it skipped are in ``stats.lost``.
    """
    width, height = decode_size(info, options)
    cv2.setNumThreads(1)  # one task per core: OpenCV's own threads would only contend with the other tasks
    try:
        frames = Frames(lambda: decord.VideoReader(path, num_threads=1, width=width, height=height), info)
    except (RuntimeError, decord.DECORDError) as exc:
        raise VideoRefused(f"not a video the decoder can read ({first_line(exc, limit=200)})") from None
    detector = cut_detector(info, options)
    recent: deque[tuple[int, np.ndarray]] = deque(maxlen=detector.lag + 2)
    shot = OpenShot(0)

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
            index, frame = next(frames)
        except StopIteration:
            break
        t1 = time.perf_counter()
        recent.append((index, frame))
        shot.add(index, frame)
        cuts = detector.process(index, frame)
        stats.decode_s += t1 - t0
        stats.detect_s += time.perf_counter() - t1
        for cut in cuts:
            if (sample := split(cut)) is not None:
                yield sample
    index = frames.index
    stats.frames = index
    stats.lost = frames.lost
    if index < info.n_frames * TRUNCATION_TOLERANCE:
        raise VideoRefused(f"truncated: decoded {index} of {info.n_frames} frames")
    for cut in sorted(detector.finish()):
        if cut < index and (sample := split(cut)) is not None:
            yield sample
    if index > shot.start and shot.kept:
        t0 = time.perf_counter()
        yield sample_shot(shot.start, index, shot.kept, options)
        stats.sample_s += time.perf_counter() - t0
