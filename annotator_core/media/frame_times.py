"""Each frame's time from the container's index, where index / fps is not it.

Nothing here decodes a frame: decord's frame index holds each packet's timestamps. A variable-rate title (phone
and screen recordings) gets its frames' own times; an MP4/MOV cut without re-encoding gets the frame count its edit
list shows; a Matroska file's last frame says where the track really ends.
"""

from __future__ import annotations

import decord
import numpy as np

# The longest stretch before an edit list's start that it may skip: a GOP or two, never more.
MAX_PREROLL_S = 30.0
# A frame more than this share of a frame's duration away from index / fps makes the stream variable-rate.
VFR_TOLERANCE_FRAMES = 0.5
NOMINAL_TIME_TOLERANCE_S = 0.001  # a frame this close to index / fps keeps that time (see variable_frame_times)


def frame_stamps(reader: decord.VideoReader, n_frames: int) -> np.ndarray | None:
    """Each frame's (start, end) in seconds from decord's frame index (the container's timestamps; nothing is
    decoded), or None where the index gives none."""
    try:
        return np.asarray(reader.get_frame_timestamp(np.arange(n_frames)), dtype=np.float64)
    except (RuntimeError, decord.DECORDError, IndexError):
        return None


def variable_frame_times(stamps: np.ndarray | None, n_frames: int, fps: float) -> np.ndarray | None:
    """Each frame's start (and the last frame's end) in seconds where the frame rate varies, else None.

    From :func:`frame_stamps`. On a variable-rate stream index / average fps drifts from the frames' real times by
    seconds, and a shot's start and end are where the browser seeks to play it.
    """
    if stamps is None or stamps.shape != (n_frames, 2) or not np.all(np.isfinite(stamps)):
        return None
    # Containers without per-frame times (AVI, MPEG program streams) give placeholders: FFmpeg's "no timestamp"
    # (about -3.7e17 s or -1.0e14 s) for some or all frames. Times that start before zero are not times.
    if np.any(stamps < -VFR_TOLERANCE_FRAMES / fps):
        return None
    starts = stamps[:, 0]
    steps = np.diff(starts)
    # a last frame given no length (FLV) lasts as long as the frames before it did
    end = stamps[-1, 1] if stamps[-1, 1] > starts[-1] or not steps.size else starts[-1] + float(np.median(steps))
    times = np.append(starts, end) - starts[0]
    if np.any(np.diff(times) <= 0):  # out of order or repeated (a broken index): no better than index / fps
        return None
    nominal = np.arange(n_frames + 1) / fps
    # Far longer or shorter than frames / average rate: not times (a wrong time base), unless the frames do run at
    # that rate and a few long steps make up the rest: a recording with a dropout (10 s without signal), whose
    # later frames play, and are sought, at their own times.
    steady = abs(float(np.median(np.diff(times))) * fps - 1.0) <= 0.1
    if not 0.5 <= times[-1] / nominal[-1] <= 2.0 and not (steady and times[-1] > nominal[-1]):
        return None
    off = np.abs(times - nominal) > VFR_TOLERANCE_FRAMES / fps
    if not off.any():
        return None
    # Frames within a millisecond of index / fps keep that time (a constant-rate stretch stays exact where the
    # container rounds to the millisecond, as Matroska does); the rest take the container's. Half a frame at the
    # average rate, as above, is too loose here: with 25 and 8 fps parts (13.9 fps on average) frame 1 at 0.040 s
    # took 1 / 13.9 = 0.072 s. Both rise with the index, so the mix does.
    return np.where(np.abs(times - nominal) > min(VFR_TOLERANCE_FRAMES / fps, NOMINAL_TIME_TOLERANCE_S), times, nominal)


def edited_frame_count(stamps: np.ndarray | None, n_frames: int, fps: float, duration_s: float | None) -> int:
    """The frames a player shows of a file whose edit list starts after its first keyframe, else ``n_frames``.

    An MP4/MOV cut with ``ffmpeg -ss T -i IN -c copy`` (or trimmed by an editor that keeps the packets) starts its
    edit at T but keeps the packets from the keyframe before it. decord skips those frames yet counts them (their
    times start below zero by as much) and hands over as many copies of the last frame at the end, so the title
    ran that much past its (edited) duration, which the container gives.
    """
    if stamps is None or duration_s is None or stamps.shape != (n_frames, 2) or not np.isfinite(stamps[0, 0]):
        return n_frames
    early_s = -float(stamps[0, 0])
    if not 0.5 / fps <= early_s <= MAX_PREROLL_S:  # no pre-roll (or FFmpeg's "no timestamp" placeholder)
        return n_frames
    shown = int(duration_s * fps + 1e-6)
    return shown if abs((n_frames - shown) - early_s * fps) <= 2 else n_frames


def last_frame_end_s(stamps: np.ndarray | None, n_frames: int, fps: float) -> float:
    """When the last frame ends, in seconds from the stream's first (from :func:`frame_stamps`). n_frames / fps
    where the container gives no usable time."""
    if stamps is None:
        return n_frames / fps
    ends = stamps[np.isfinite(stamps)]
    return float(ends.max()) if ends.size and ends.max() > 0 else n_frames / fps
