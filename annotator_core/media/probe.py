"""What a video file is (duration, fps, size, frame count), and whether it is worth decoding at all.

A catalog and an uploaded clip are untrusted: a 750 KB H.264 file can hold 16000x16000 frames,
and decoding one takes gigabytes. So the limits are checked first on the container's own
metadata, read by ``ffprobe`` with every frame skipped (about 55 MB however large the frames),
and only a file within them is opened by the decoder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from typing import Any

import decord
import numpy as np

from annotator_core.errors import ConfigError, first_line
from annotator_core.media.frame_times import (
    edited_frame_count,
    frame_stamps,
    last_frame_end_s,
    variable_frame_times,
)
from annotator_core.media.hdr import HDR_TRANSFERS, TONE_MAP_HINT, can_tone_map

SNIFF_BYTES = 4096
DEFAULT_MAX_FRAMES = 1_000_000  # the max_video_frames setting's default
DEFAULT_PROBE_TIMEOUT_S = 60.0  # the probe_timeout_s setting's default
# Read every video stream's header without decoding a frame (skip_frame all): memory stays flat. Every stream,
# not the first: the decoder picks its own ("best") stream, and a cover picture or a small preview stream first in
# the file must neither set the video's size nor hide a stream over the limits.
FFPROBE_ARGS = (
    "-v", "error", "-skip_frame", "all", "-select_streams", "v",
    "-show_entries",
    "stream=codec_name,width,height,sample_aspect_ratio,nb_frames,avg_frame_rate,r_frame_rate,duration,start_time,"
    "color_transfer,color_primaries,color_space:stream_disposition=attached_pic:stream_side_data=rotation:stream_tags=rotate,DURATION"
    ":format=duration,format_name",
    "-of", "json",
)  # fmt: skip
# A file with fewer frames than this share of the count its container declares, or whose frames end before this
# share of the length it declares, was cut short (a download or a recording stopped part-way): a Matroska file
# keeps its header's duration and plays to where it was cut.
DECLARED_LENGTH_TOLERANCE = 0.9


class VideoRefused(Exception):
    """The file is not a video we ingest (empty, not a video by content, over a limit, cannot decode)."""


class NeedsTranscode(VideoRefused):
    """ffmpeg reads this video stream but the ingest decoder (decord) does not, or reads it wrongly.

    :func:`~annotator_core.media.remux.probed` decodes a transcoded copy instead; a caller that decodes the file as
    it is gets a plain refusal whose text names the fix (``problem`` is the text without it). ``header`` is what
    the container says (the size it shows, its length, which stream), which the copy's own header no longer
    does; ``tone_map``: HDR, to be brought to SDR (:data:`~annotator_core.media.hdr.HDR_TRANSFERS`).
    """

    def __init__(self, problem: str, *, header: StreamHeader, tone_map: bool = False) -> None:
        super().__init__(f"{problem}; transcode it, {TONE_MAP_HINT if tone_map else TRANSCODE_HINT}")
        self.problem = problem
        self.header = header
        self.tone_map = tone_map


# Codecs decord's FFmpeg decodes without an error but wrongly. Found by decoding 38 codecs both ways, decord and
# ffmpeg's own decoder, and comparing every frame (2026-12-08): QuickTime Animation puts another scene's frames
# in place of a still one's (an unchanged frame is an empty packet), QuickTime Graphics comes out in the wrong
# colours. Screen recordings and motion-graphics exports use them. Ingest decodes a transcoded copy.
MISREAD_CODECS = {"qtrle": "QuickTime Animation", "smc": "QuickTime Graphics"}
TRANSCODE_HINT = "e.g. ffmpeg -i IN -c:v libx264 -crf 18 OUT.mp4"


@dataclass(frozen=True)
class VideoInfo:
    duration_s: float
    fps: float
    width: int
    height: int
    n_frames: int
    # Variable frame rate only (phone and screen recordings): each frame's start time from the container's
    # timestamps, first frame at 0, and the end of the last frame after them (n_frames + 1 values). None for a
    # constant rate, where frame i starts at i / fps.
    frame_times: np.ndarray | None = field(default=None, compare=False, repr=False)
    # The file's video stream to decode (its index among the video streams, read from a rewrapped copy: see
    # remux.probed), where it has a larger one than the stream the decoder picks (a small preview stored
    # first); None: the one the decoder picks.
    stream: int | None = None
    # Decoded from a transcoded copy (remux.transcoded: a codec the decoder lacks or misreads). The copy lives
    # only as long as the title's own task, so such a title is decoded in one pass, never in chunks.
    transcoded: bool = False
    # What the video row's error says of damage the decode cannot see (a transcoded copy holds only the frames
    # ffmpeg could decode): empty when none.
    note: str = field(default="", compare=False)

    def slowest_fps(self) -> float:
        """The rate of the title's longest frame (on a variable-rate stream, a slow stretch); fps on a constant one."""
        if self.frame_times is None or len(self.frame_times) < 2:
            return self.fps
        return min(self.fps, 1.0 / max(float(np.diff(self.frame_times).max()), 1e-6))

    def seconds(self, frame: int) -> float:
        """When frame ``frame`` starts (``n_frames``: when the video ends), in seconds from the first frame."""
        if self.frame_times is None:
            return frame / self.fps
        return float(self.frame_times[min(max(frame, 0), len(self.frame_times) - 1)])


def _frame_after_damaged_start(
    path: str, reader: decord.VideoReader, n_frames: int, *, tries: int = 3
) -> np.ndarray | None:
    """The first frame that decodes from one of the first keyframes after the first (from ``reader``'s index, read
    when it opened), within the tenth of the title that ingest may skip as damaged; None where none does."""
    try:
        keys = [int(k) for k in reader.get_key_indices()]
    except (RuntimeError, decord.DECORDError):
        return None
    for key in [k for k in keys if 0 < k <= n_frames // 10][:tries]:
        try:
            reader = decord.VideoReader(path, num_threads=1)
            reader.seek(key)
            return np.asarray(reader.next().asnumpy())
        except (RuntimeError, decord.DECORDError, StopIteration):
            continue
    return None


_NATIVE_NOISE = re.compile(r"\[\d\d:\d\d:\d\d\] \S+\.(?:cc|h):\d+: ")  # "[22:07:03] /…/threaded_decoder.cc:218: "


def decoder_reason(exc: BaseException) -> str:
    """decord's error without its C++ log prefixes and checks: "Thread worker: Error sending packet."."""
    text = _NATIVE_NOISE.sub("", first_line(exc, limit=1000))
    if "Check failed:" in text:  # "Check failed: call(args) >= 0 (-1094995529 vs. 0) Thread worker: Error …"
        text = text.split("Check failed:", 1)[1]
        said = re.search(r"vs\. [^)]*\)\s*(.+)$", text)
        text = said.group(1) if said else text
    return " ".join(text.split())[:200] or type(exc).__name__


def describe_unreadable(path: str) -> str:
    """Why the decoder cannot open ``path``, judged from its first bytes (what a person can act on)."""
    with open(path, "rb") as f:
        head = f.read(SNIFF_BYTES)
    if head[4:8] == b"ftyp":
        return "an MP4/MOV file whose index (moov atom) or data is missing: truncated, or still being written"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        text = ""
    if text and all(c.isprintable() or c.isspace() for c in text):
        return "a text file, not a video"
    return "unrecognised content, not a video container the decoder knows"


@dataclass(frozen=True)
class StreamHeader:
    """What the container says about its video (its largest video stream that is not a cover picture), before
    any frame is decoded. ``width`` and ``height`` are the largest of any video stream's, for the limits."""

    width: int
    height: int
    duration_s: float | None  # None where the container does not say
    n_frames: int | None  # declared, or duration x frame rate; None where neither is known
    codec: str = ""  # the video codec's ffmpeg name (h264, av1, ...), "" where not given
    # The frame count the container commits to (MP4's sample count); None where it only estimates (MPEG streams
    # guess duration from bit rate). A file holding far fewer frames was cut short.
    declared_frames: int | None = None
    # Matroska/WebM: where the track ends (its DURATION, written when the file was closed), from time zero.
    track_end_s: float | None = None
    # Streams whose pixels are not square (DV, DVD, HDV: 720x480 shown 16:9): each one's size as decoded, and as shown.
    shown_sizes: tuple[tuple[tuple[int, int], tuple[int, int]], ...] = ()
    # Where the file has several moving video streams: the largest one's index among the video streams, and its
    # pixels per frame.
    largest_stream: int | None = None
    largest_area: int = 0
    # The (largest moving) stream's size as shown (turned, non-square pixels stretched); (0, 0) where not read. A
    # cover picture can be larger than the video: width and height above count it, for the limits.
    shown: tuple[int, int] = (0, 0)
    transfer: str = ""  # the stream's transfer characteristic as ffprobe names it (smpte2084: HDR10's PQ), "" unknown
    primaries: str = ""  # its colour primaries (bt2020, ...), and the matrix below, as ffprobe names them
    matrix: str = ""


def ffprobe_command() -> str:
    """The ffprobe executable; ConfigError naming the package where it is not installed."""
    ffprobe = shutil.which("ffprobe")
    if ffprobe is None:
        raise ConfigError("ffprobe is not installed; ingest and clip scoring need it (apt-get install ffmpeg).")
    return ffprobe


def run_ffprobe(args: Sequence[str], path: str, *, timeout_s: float) -> tuple[int, dict[str, Any]]:
    """ffprobe's exit status and its JSON answer (``{}`` where it wrote none) for ``args`` (``-of json`` among them)
    on ``path``; raises subprocess.TimeoutExpired after ``timeout_s``."""
    done = subprocess.run(
        [ffprobe_command(), *args, path], capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL
    )
    try:
        found = json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        found = {}
    return done.returncode, found if isinstance(found, dict) else {}


def read_header(path: str, *, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> StreamHeader:
    """The first video stream's size, duration and frame count from the container (ffprobe, no frame decoded)."""
    try:
        returncode, found = run_ffprobe(FFPROBE_ARGS, path, timeout_s=timeout_s)
    except subprocess.TimeoutExpired:
        raise VideoRefused(
            f"its metadata took over {timeout_s:g} s to read (VA_PROBE_TIMEOUT_S); not a video worth decoding"
        ) from None
    streams = found.get("streams") or []
    container = str((found.get("format") or {}).get("format_name") or "")
    if returncode == 0 and container and not streams:
        # ffprobe read the container and found no video stream in it: e.g. an audio-only MP4 or M4A.
        raise VideoRefused(
            f"no video stream: the file holds only audio or data ({container} container); nothing to ingest"
        )
    sized = [s for s in streams if _number(s.get("width")) and _number(s.get("height"))]
    if returncode != 0 or not sized:
        raise VideoRefused(f"not a readable video: {describe_unreadable(path)}")
    moving = [s for s in sized if not (s.get("disposition") or {}).get("attached_pic")] or sized
    stream = max(moving, key=lambda s: int(s["width"]) * int(s["height"]))
    stream_duration = _number(stream.get("duration"))
    duration = stream_duration or _number((found.get("format") or {}).get("duration"))
    rate = _rate(stream.get("avg_frame_rate")) or _rate(stream.get("r_frame_rate"))
    declared = _number(stream.get("nb_frames"))
    n_frames = int(declared) if declared else (round(duration * rate) if duration and rate else None)
    committed = int(declared) if declared else None
    track_end = (
        (_clock((stream.get("tags") or {}).get("DURATION")) or stream_duration) if "matroska" in container else None
    )
    width, height = max(((_turned(s), s) for s in sized), key=lambda ts: ts[0][0] * ts[0][1])[0]
    codec = str(stream.get("codec_name") or "")
    largest = streams.index(stream) if len(moving) > 1 else None
    shown = tuple((_turned(s), _shown(s)) for s in sized if _turned(s) != _shown(s))
    return StreamHeader(
        width=width,
        height=height,
        duration_s=duration,
        n_frames=n_frames,
        codec=codec,
        declared_frames=committed,
        track_end_s=track_end,
        shown_sizes=shown,
        largest_stream=largest,
        largest_area=int(stream["width"]) * int(stream["height"]),
        shown=_shown(stream),
        transfer=str(stream.get("color_transfer") or ""),
        primaries=str(stream.get("color_primaries") or ""),
        matrix=str(stream.get("color_space") or ""),
    )


def _video_start_s(path: str, *, timeout_s: float) -> float:
    """When the first video stream starts (its start_time), 0 where unknown. ffprobe reads it only by decoding
    (skip_frame hides it), so this runs after the header passed the limits."""
    args = ["-v", "error", "-select_streams", "v:0", "-show_entries", "stream=start_time", "-of", "json"]
    try:
        streams = run_ffprobe(args, path, timeout_s=timeout_s)[1].get("streams") or [{}]
    except subprocess.TimeoutExpired:
        return 0.0
    return _number(streams[0].get("start_time")) or 0.0


def _turned(stream: dict) -> tuple[int, int]:
    """A stream's (width, height) as displayed: decord hands frames over turned, and a requested size means the
    turned frame's, so with the stored width and height a phone's portrait video was decoded squashed."""
    return _shown(stream, stretch=False)


def _shown(stream: dict, *, stretch: bool = True) -> tuple[int, int]:
    """A stream's (width, height) as a player shows it: turned as :func:`_turned`, and (``stretch``) stretched by
    its sample aspect ratio (a 720x480 DVD frame of SAR 32:27 is shown 854x480, 16:9). Even sizes, as the decoder
    asks."""
    width, height = int(stream["width"]), int(stream["height"])
    sar = _rate(str(stream.get("sample_aspect_ratio") or "").replace(":", "/")) if stretch else None
    if sar and 0.25 <= sar <= 4.0 and abs(sar - 1.0) > 0.01:  # 0:1 or absent: square; beyond 4x: a broken tag
        width = max(2, round(width * sar / 2) * 2)
    return (height, width) if _quarter_turn(stream) else (width, height)


def _quarter_turn(stream: dict) -> bool:
    """Whether the stream is displayed turned by 90 or 270 degrees (a display matrix, or the older rotate tag)."""
    turns = [side.get("rotation") for side in stream.get("side_data_list") or []]
    turns.append((stream.get("tags") or {}).get("rotate"))
    for turn in turns:
        try:
            degrees = round(abs(float(str(turn))))
        except (ValueError, OverflowError):  # absent (None), or not a number
            continue
        if degrees % 180 == 90:
            return True
    return False


def _number(value: object) -> float | None:
    try:
        number = float(str(value))
    except ValueError:
        return None
    return number if number > 0 and number != float("inf") else None


def _clock(value: object) -> float | None:
    """Seconds in a Matroska tag's "HH:MM:SS.nnnnnnnnn", or None."""
    try:
        hours, minutes, seconds = str(value).split(":")
        return _number(int(hours) * 3600 + int(minutes) * 60 + float(seconds))
    except ValueError:
        return None


def _rate(value: object) -> float | None:
    try:
        rate = Fraction(str(value))
    except (ValueError, ZeroDivisionError):
        return None
    return float(rate) if rate > 0 else None


def check_limits(
    *, width: int, height: int, duration_s: float | None, n_frames: int | None,
    max_duration_s: float, max_pixels: int, max_frames: int,
) -> None:  # fmt: skip
    """Raise VideoRefused naming the first limit the video is over (and the setting that sets it)."""
    if duration_s is not None and duration_s > max_duration_s:
        raise VideoRefused(
            f"too long: {duration_s:.0f} s over the limit of {max_duration_s:.0f} s (VA_MAX_VIDEO_DURATION_S)"
        )
    if width * height > max_pixels:
        raise VideoRefused(f"too large: {width}x{height} over the limit of {max_pixels} pixels (VA_MAX_VIDEO_PIXELS)")
    if n_frames is not None and n_frames > max_frames:
        raise VideoRefused(f"too many frames: {n_frames} over the limit of {max_frames} (VA_MAX_VIDEO_FRAMES)")


def refuse_if_cut_short(declared_s: float, held_s: float, n_frames: int, *, path: str, timeout_s: float) -> None:
    """VideoRefused where the frames end (``held_s`` from the first) well before the ``declared_s`` the container
    gives from time zero: cut short. A track that starts late (its first frame at 10 s) is measured from its start."""
    if held_s >= DECLARED_LENGTH_TOLERANCE * declared_s:
        return
    declared_s -= _video_start_s(path, timeout_s=timeout_s)
    if held_s < DECLARED_LENGTH_TOLERANCE * declared_s:
        raise VideoRefused(
            f"truncated: its container declares {declared_s:.1f} s of video, the file holds {held_s:.1f} s "
            f"({n_frames} frames); copy it again, or let the recording finish"
        )


def probe(
    path: str,
    *,
    max_duration_s: float,
    max_pixels: int,
    max_frames: int = DEFAULT_MAX_FRAMES,
    timeout_s: float = DEFAULT_PROBE_TIMEOUT_S,
) -> VideoInfo:
    """Duration, fps, size and frame count; raises VideoRefused for anything not worth decoding.

    The limits are checked on the container's metadata before the decoder opens the file, and
    again on the decoder's own count (a container may under-declare).
    """
    size = os.path.getsize(path)
    if size == 0:
        raise VideoRefused("empty file (0 bytes)")
    header = read_header(path, timeout_s=timeout_s)
    limits = partial(check_limits, max_duration_s=max_duration_s, max_pixels=max_pixels, max_frames=max_frames)
    limits(width=header.width, height=header.height, duration_s=header.duration_s, n_frames=header.n_frames)
    needs_transcode = partial(NeedsTranscode, header=header)
    if header.transfer in HDR_TRANSFERS and can_tone_map():
        raise needs_transcode(
            f"HDR video ({HDR_TRANSFERS[header.transfer]}), which the ingest decoder (decord) shows dark and flat",
            tone_map=True,
        )
    if header.codec in MISREAD_CODECS:
        raise needs_transcode(
            f"its video codec ({MISREAD_CODECS[header.codec]}, {header.codec}) is decoded wrongly by the ingest "
            "decoder (decord)"
        )
    try:
        reader = decord.VideoReader(path, num_threads=1)
        n_frames = len(reader)
        fps = float(reader.get_avg_fps())
    except (RuntimeError, decord.DECORDError) as exc:
        if header.codec and "cannot find video stream" in str(exc):
            # The container holds a video stream (ffprobe read it) that decord's FFmpeg has no decoder for.
            raise needs_transcode(
                f"its video codec ({header.codec}) cannot be decoded by the ingest decoder (decord)"
            ) from None
        if header.codec and "duration/frame-count" in str(exc):
            # A stream ffprobe sized (Theora in Ogg, GIF, a raw elementary stream) that decord cannot index.
            raise needs_transcode(
                f"the ingest decoder (decord) cannot count the frames of its {header.codec} video stream"
            ) from None
        raise VideoRefused(f"not a readable video: {describe_unreadable(path)}") from None
    if n_frames < 2 or not fps > 0:
        raise VideoRefused(f"a still image or empty stream, not a video ({n_frames} frame(s), {fps:g} fps)")
    expected = header.declared_frames
    if expected and n_frames < DECLARED_LENGTH_TOLERANCE * expected:
        raise VideoRefused(
            f"truncated: its container declares {expected} frames, the file holds {n_frames}; "
            "copy it again, or let the recording finish"
        )
    # Matroska: time, not frames (a variable-rate WebM's average fps is its fastest rate: length x fps over-counts).
    stamps = frame_stamps(reader, n_frames)
    shown_frames = edited_frame_count(stamps, n_frames, fps, header.duration_s)
    if shown_frames < n_frames:  # decoded past the edit's end: a decode stops at the count (see decode.Frames)
        n_frames, stamps = shown_frames, None
    if header.track_end_s:
        held_s = last_frame_end_s(stamps, n_frames, fps)
        refuse_if_cut_short(header.track_end_s, held_s, n_frames, path=path, timeout_s=timeout_s)
    try:
        # The size of the stream the decoder reads (it picks the "best" one, not always the first); its first
        # frame as displayed. Every video stream was within the pixel limit, so this frame is too.
        first = reader.next().asnumpy()
    except (RuntimeError, decord.DECORDError, StopIteration) as exc:
        # Damage at the very start (the first keyframe) loses its GOP, as damage anywhere does (decode.Frames):
        # the size comes from the first keyframe after it that decodes.
        later = _frame_after_damaged_start(path, reader, n_frames)
        if later is None:
            raise VideoRefused(f"its first frame cannot be decoded ({decoder_reason(exc)})") from None
        first = later
    height, width = first.shape[:2]
    # A file with several video streams (a small preview first, several angles): the decoder may pick a smaller
    # one than the largest, which the limits were checked on; the caller reads that one from a rewrapped copy.
    smaller = header.largest_stream is not None and width * height < header.largest_area
    stream = header.largest_stream if smaller else None
    # Non-square pixels: decode at the size a player shows (decord scales to a requested size), so thumbnails and
    # the encoder see the picture as it is meant to be seen, not squeezed.
    width, height = dict(header.shown_sizes).get((width, height), (width, height))
    times = variable_frame_times(stamps, n_frames, fps)
    duration = n_frames / fps if times is None else float(times[-1])
    info = VideoInfo(
        duration_s=duration, fps=fps, width=width, height=height, n_frames=n_frames, frame_times=times, stream=stream
    )
    limits(width=info.width, height=info.height, duration_s=info.duration_s, n_frames=info.n_frames)
    return info
