"""A copy the decoder reads frame by frame correctly, for the files it does not: MPEG-TS, and Matroska/WebM
with no duration.

decord reads an MPEG transport stream (broadcast recordings, HLS segments, AVCHD ``.mts``/``.m2ts``) one
GOP late: its frame 0 is the stream's frame 12 or 25, so every shot, thumbnail and vector is off by half a
second or more; and ffprobe cannot size an H.264 one without decoding. A Matroska/WebM file written as a
stream (a browser's MediaRecorder, ``ffmpeg ... -f matroska -`` into a pipe) has no duration or index, and
decord refuses what it cannot count. Rewrapped into Matroska with its packets copied (no re-encoding: as fast
as the disk), the same frames decode from the first, and the copy has its duration. Only the video streams
are copied; the original file is what the catalog keeps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import replace
from typing import Any

from annotator_core.errors import ConfigError
from annotator_core.media.probe import DEFAULT_PROBE_TIMEOUT_S, VideoInfo, VideoRefused, probe, run_ffprobe

TS_PACKET, M2TS_PACKET = 188, 192  # M2TS (Blu-ray, AVCHD) puts a 4-byte timecode before each TS packet
TS_SYNC = 0x47
SNIFF_PACKETS = 4  # sync bytes this many packets apart: a transport stream, not chance
EBML_MAGIC = b"\x1a\x45\xdf\xa3"  # the first four bytes of every Matroska and WebM file
REMUX_BYTES_PER_S = 20e6  # the slowest disk the remux timeout allows for, on top of a fixed minute


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
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ConfigError(f"ffmpeg is not installed; ingesting {reason} needs it (apt-get install ffmpeg).")
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
            why = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
            raise VideoRefused(f"{reason} whose video could not be rewrapped for the decoder ({why})")
        yield out


@contextmanager
def probed(path: str, *, timeout_s: float = DEFAULT_PROBE_TIMEOUT_S, **limits: Any) -> Iterator[tuple[str, VideoInfo]]:
    """A path the decoder reads (:func:`decodable`) and its :func:`probe` (``limits``: its keyword arguments).

    Where the decoder would read a smaller video stream than the file's largest (a preview stored first, one
    angle of several), the path is a copy of the largest alone, and the info keeps that stream's index so that
    other readers of the file (a long title's chunk tasks) read the same one: ``decodable(path, stream=...)``.
    """
    with ExitStack() as stack:
        readable = stack.enter_context(decodable(path, timeout_s=timeout_s))
        info = probe(readable, timeout_s=timeout_s, **limits)
        if info.stream is not None:
            chosen = info.stream
            readable = stack.enter_context(decodable(path, timeout_s=timeout_s, stream=chosen))
            info = replace(probe(readable, timeout_s=timeout_s, **limits), stream=chosen)
        yield readable, info
