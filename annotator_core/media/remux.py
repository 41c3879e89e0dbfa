"""A copy the decoder reads frame by frame correctly, for the files it does not: MPEG-TS, and Matroska/WebM
with no duration.

decord reads an MPEG transport stream (broadcast recordings, HLS segments, AVCHD ``.mts``/``.m2ts``) one
GOP late: its frame 0 is the stream's frame 12 or 25, so every shot, thumbnail and vector is off by half a
second or more; and ffprobe cannot size an H.264 one without decoding. A Matroska/WebM file written as a
stream (a browser's MediaRecorder, ``ffmpeg ... -f matroska -`` into a pipe) has no duration or index, and
decord refuses what it cannot count. Rewrapped into Matroska with its packets copied (no re-encoding: as fast
as the disk), the same frames decode from the first, and the copy has its duration. Only the video streams
are copied; the original file is what the catalog keeps.

A stream the decoder cannot read at all (AV1: decord's FFmpeg has no decoder for it) or reads wrongly
(:data:`~annotator_core.media.probe.MISREAD_CODECS`, and HDR, which it shows dark and flat:
:data:`~annotator_core.media.hdr.HDR_TRANSFERS`) is transcoded instead (:func:`transcoded`): ffmpeg decodes it
and writes H.264, each frame with its own timestamp, at most :data:`TRANSCODE_SHORT_SIDE` pixels on the short
side (ingest decodes far smaller: the encoder's input, a 320-pixel thumbnail, the detector's frame).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from typing import Any

from annotator_core.errors import ConfigError
from annotator_core.media.hdr import BT709_TAGS, tone_map_filter
from annotator_core.media.probe import (
    DEFAULT_PROBE_TIMEOUT_S,
    NeedsTranscode,
    VideoInfo,
    VideoRefused,
    probe,
    refuse_if_cut_short,
    run_ffprobe,
)

TS_PACKET, M2TS_PACKET = 188, 192  # M2TS (Blu-ray, AVCHD) puts a 4-byte timecode before each TS packet
TS_SYNC = 0x47
SNIFF_PACKETS = 4  # sync bytes this many packets apart: a transport stream, not chance
EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # the first four bytes of every Matroska and WebM file
REMUX_BYTES_PER_S = 20e6  # the slowest disk the remux timeout allows for, on top of a fixed minute
# The transcoded copy's short side, at most: above the largest encoder input (336) and a portrait thumbnail's
# width (320), and the temporary copy stays small: 0.5 MB a second of 1080p footage (benchmarks/transcode_cost.py),
# against 1.2 MB with a short side of 720.
TRANSCODE_SHORT_SIDE = 480
# ffmpeg's line for each packet its decoder rejected (a damaged stretch left out or concealed in the copy).
DECODE_ERROR = re.compile(r"^Error while decoding stream", re.MULTILINE)
# The transcode's timeout: a fixed two minutes plus this many seconds per second of video (30 s of 1080p AV1 took
# ~3 s on the dev machine; 4K on one decoding thread was not measured); without a duration, a second per megabyte.
TRANSCODE_S_PER_S = 4.0


def is_transport_stream(path: str) -> bool:
    """Whether ``path`` holds an MPEG transport stream (188-byte packets, or M2TS's 192), by its first bytes."""
    try:
        with open(path, "rb") as f:
            head = f.read(M2TS_PACKET * SNIFF_PACKETS + 4)
    except OSError:
        return False  # unreadable: the probe says why
    for size, offset in ((TS_PACKET, 0), (M2TS_PACKET, 4)):
        spots = [offset + i * size for i in range(SNIFF_PACKETS)]
        if len(head) > spots[-1] and all(head[i] == TS_SYNC for i in spots):
            return True
    return False


def is_streamed_matroska(path: str, *, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> bool:
    """Whether ``path`` is a Matroska/WebM file whose container gives no duration (written as a stream).

    Its first bytes first; only a Matroska file costs an ``ffprobe`` of the container's header (no frame read).
    False where ffprobe cannot read it: the probe then says why.
    """
    try:
        with open(path, "rb") as f:
            if f.read(len(EBML_MAGIC)) != EBML_MAGIC:
                return False
    except OSError:
        return False  # unreadable: the probe says why
    args = ["-v", "error", "-show_entries", "format=duration,format_name", "-of", "json"]
    try:
        returncode, found = run_ffprobe(args, path, timeout_s=timeout_s)
    except subprocess.TimeoutExpired:
        return False
    container = found.get("format") or {}
    return returncode == 0 and "matroska" in str(container.get("format_name")) and not container.get("duration")


def rewrap_reason(path: str, *, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S) -> str | None:
    """What makes ``path`` need a rewrapped copy ("an MPEG-TS file", ...), or None where the decoder reads it as is."""
    if is_transport_stream(path):
        return "an MPEG-TS file"
    if is_streamed_matroska(path, timeout_s=timeout_s):
        return "a Matroska/WebM file with no duration (a live or piped recording)"
    return None


@contextmanager
def decodable(path: str, *, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S, stream: int | None = None) -> Iterator[str]:
    """``path`` itself, or where :func:`rewrap_reason` gives one a temporary Matroska copy of its video (removed
    afterwards). ``timeout_s`` bounds the container check (the probe_timeout_s setting). ``stream`` (an index
    among the video streams, :attr:`VideoInfo.stream`): a copy of that stream alone, whatever the container.

    Raises :class:`VideoRefused` when ffmpeg cannot rewrap it (no video stream, damaged beyond reading).
    """
    several = f"a file with several video streams (its largest, v:{stream}, read alone)"
    reason = rewrap_reason(path, timeout_s=timeout_s) if stream is None else several
    if reason is None:
        yield path
        return
    ffmpeg = _ffmpeg(reason)
    remux_timeout_s = 60.0 + os.path.getsize(path) / REMUX_BYTES_PER_S
    with tempfile.TemporaryDirectory(prefix="va-remux-") as folder:
        out = os.path.join(folder, "video.mkv")
        picked = "0:v" if stream is None else f"0:v:{stream}"
        args = ["-nostdin", "-v", "error", "-i", path, "-map", picked, "-c", "copy", "-f", "matroska", out]
        try:
            done = subprocess.run([ffmpeg, *args], capture_output=True, text=True, timeout=remux_timeout_s)
        except subprocess.TimeoutExpired:
            raise VideoRefused(f"{reason} that took over {remux_timeout_s:.0f} s to rewrap for the decoder") from None
        if done.returncode != 0 or not os.path.exists(out) or os.path.getsize(out) == 0:
            raise VideoRefused(
                f"{reason} whose video could not be rewrapped for the decoder ({_last_error(done.stderr)})"
            )
        yield out


def _last_error(stderr: str) -> str:
    """ffmpeg's last error line, not its "Last message repeated N times" (at most 200 characters)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    said = [line for line in lines if not line.startswith("Last message repeated")]
    return (said or ["no output"])[-1][:200]


def _ffmpeg(reason: str) -> str:
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ConfigError(f"ffmpeg is not installed; ingesting {reason} needs it (apt-get install ffmpeg).")
    return ffmpeg


@dataclass(frozen=True)
class Copy:
    """A transcoded copy: where it is, and how many decode errors ffmpeg reported making it."""

    path: str
    errors: int


@contextmanager
def transcoded(path: str, need: NeedsTranscode) -> Iterator[Copy]:
    """A temporary H.264 copy of ``path``'s video that the decoder reads right (removed afterwards).

    Every frame is kept with its own timestamp (``-fps_mode passthrough`` in the input's time base: a
    variable-rate title stays one, to the tick), turned upright as players show it, and scaled down to
    :data:`TRANSCODE_SHORT_SIDE` pixels on its short side where larger (even sides, as H.264 needs). The input is
    decoded on one thread: with frame threads ffmpeg 5.1's dav1d stopped at the first damaged packet of an AV1
    stream and still exited 0, keeping 102 of 147 frames. Raises :class:`VideoRefused` naming ffmpeg's reason
    where it cannot.
    """
    ffmpeg = _ffmpeg(f"a file the decoder cannot read as it is ({need.problem})")
    length = need.header.duration_s if need.header.duration_s else os.path.getsize(path) / 1e6
    timeout_s = 120.0 + TRANSCODE_S_PER_S * length
    factor = f"min(1\\,{TRANSCODE_SHORT_SIDE}/min(iw\\,ih))"
    scale = f"scale=w=trunc(iw*{factor}/2)*2:h=trunc(ih*{factor}/2)*2"
    if need.tone_map:  # scaled first: the tone map runs in float, on a quarter of a 1080p frame's pixels
        scale += f",{tone_map_filter(need.header.primaries, need.header.matrix)}"
    stream = need.header.largest_stream
    picked = "0:V:0" if stream is None else f"0:v:{stream}"  # V: not a cover picture
    with tempfile.TemporaryDirectory(prefix="va-transcode-") as folder:
        out = os.path.join(folder, "video.mp4")
        args = [
            "-nostdin", "-v", "error", "-threads", "1", "-i", path, "-map", picked, "-an", "-sn", "-dn",
            "-map_metadata", "-1", "-vf", scale, "-fps_mode", "passthrough", "-enc_time_base", "-1",
            "-c:v", "libx264", "-preset", "ultrafast", "-crf", "18", "-pix_fmt", "yuv420p",
            *(BT709_TAGS if need.tone_map else ()), out,
        ]  # fmt: skip
        try:
            done = subprocess.run([ffmpeg, *args], capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise VideoRefused(f"{need.problem}, and ffmpeg took over {timeout_s:.0f} s to transcode it") from None
        if done.returncode != 0 or not os.path.exists(out) or os.path.getsize(out) == 0:
            raise VideoRefused(f"{need.problem}, and ffmpeg could not transcode it either ({_last_error(done.stderr)})")
        yield Copy(out, errors=len(DECODE_ERROR.findall(done.stderr)))


def _from_copy(
    stack: ExitStack, path: str, need: NeedsTranscode, *, timeout_s: float, limits: dict[str, Any]
) -> tuple[str, VideoInfo]:
    """The transcoded copy of ``path`` (held open by ``stack``) and its info, as the file itself would give it."""
    copy = stack.enter_context(transcoded(path, need))
    try:
        info = probe(copy.path, timeout_s=timeout_s, **limits)
    except VideoRefused as refused:
        if str(refused).startswith(("too ", "a still image")):  # said of the frames ffmpeg decoded, as of any file
            raise
        # The copy holds what ffmpeg could decode: none of the frames, or too few, of a damaged stream.
        raise VideoRefused(
            f"{need.problem}, and ffmpeg decoded no usable video from it either (its copy: {refused})"
        ) from None
    header = need.header
    if header.duration_s:  # the copy's own header is whole however much of the file was missing: check the file's
        refuse_if_cut_short(header.duration_s, info.duration_s, info.n_frames, path=path, timeout_s=timeout_s)
    width, height = header.shown if all(header.shown) else (info.width, info.height)
    note = (
        f"damaged: ffmpeg reported {copy.errors} decode error(s) while transcoding it for the decoder; the frames it "
        "could not decode are left out or concealed (where is not known). Re-encode or copy the file again"
        if copy.errors
        else ""
    )
    return copy.path, replace(info, width=width, height=height, transcoded=True, note=note)


@contextmanager
def probed(path: str, *, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S, **limits: Any) -> Iterator[tuple[str, VideoInfo]]:
    """A path the decoder reads (:func:`decodable`) and its :func:`probe` (``limits``: its keyword arguments).

    Where the decoder would read a smaller video stream than the file's largest (a preview stored first, one
    angle of several), the path is a copy of the largest alone, and the info keeps that stream's index so that
    other readers of the file (a long title's chunk tasks) read the same one: ``decodable(path, stream=...)``.

    Where the decoder cannot read the stream right (:class:`NeedsTranscode`), the path is a transcoded copy
    (:func:`transcoded`) and the info says so (``transcoded``), with the size the file shows, not the copy's.
    """
    with ExitStack() as stack:
        readable = stack.enter_context(decodable(path, timeout_s=timeout_s))
        try:
            info = probe(readable, timeout_s=timeout_s, **limits)
        except NeedsTranscode as need:
            readable, info = _from_copy(stack, readable, need, timeout_s=timeout_s, limits=limits)
        if info.stream is not None:
            chosen = info.stream
            readable = stack.enter_context(decodable(path, timeout_s=timeout_s, stream=chosen))
            try:
                info = replace(probe(readable, timeout_s=timeout_s, **limits), stream=chosen)
            except NeedsTranscode as need:  # the largest is one the decoder cannot read (AV1 beside an H.264 preview)
                readable, info = _from_copy(stack, readable, need, timeout_s=timeout_s, limits=limits)
        yield readable, info
