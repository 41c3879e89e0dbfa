"""A copy the decoder reads frame by frame correctly, for the one container family it does not: MPEG-TS.

decord reads an MPEG transport stream (broadcast recordings, HLS segments, AVCHD ``.mts``/``.m2ts``) one
GOP late: its frame 0 is the stream's frame 12 or 25, so every shot, thumbnail and vector is off by half a
second or more; and ffprobe cannot size an H.264 one without decoding. Rewrapped into Matroska with its
packets copied (no re-encoding: as fast as the disk), the same frames decode from the first. Only the
video streams are copied; the original file is what the catalog keeps.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager

from annotator_core.errors import ConfigError
from annotator_core.media.probe import VideoRefused

TS_PACKET, M2TS_PACKET = 188, 192  # M2TS (Blu-ray, AVCHD) puts a 4-byte timecode before each TS packet
TS_SYNC = 0x47
SNIFF_PACKETS = 4  # sync bytes this many packets apart: a transport stream, not chance
REMUX_BYTES_PER_S = 20e6  # the slowest disk the remux timeout allows for, on top of a fixed minute


def is_transport_stream(path: str) -> bool:
    """Whether ``path`` holds an MPEG transport stream (188-byte packets, or M2TS's 192), by its first bytes."""
    with open(path, "rb") as f:
        head = f.read(M2TS_PACKET * SNIFF_PACKETS + 4)
    for size, offset in ((TS_PACKET, 0), (M2TS_PACKET, 4)):
        spots = [offset + i * size for i in range(SNIFF_PACKETS)]
        if len(head) > spots[-1] and all(head[i] == TS_SYNC for i in spots):
            return True
    return False


@contextmanager
def decodable(path: str) -> Iterator[str]:
    """``path`` itself, or for a transport stream a temporary Matroska copy of its video (removed afterwards).

    Raises :class:`VideoRefused` when ffmpeg cannot rewrap it (no video stream, damaged beyond reading).
    """
    if not is_transport_stream(path):
        yield path
        return
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        raise ConfigError("ffmpeg is not installed; ingesting MPEG-TS footage needs it (apt-get install ffmpeg).")
    timeout_s = 60.0 + os.path.getsize(path) / REMUX_BYTES_PER_S
    with tempfile.TemporaryDirectory(prefix="va-remux-") as folder:
        out = os.path.join(folder, "video.mkv")
        args = ["-nostdin", "-v", "error", "-i", path, "-map", "0:v", "-c", "copy", "-f", "matroska", out]
        try:
            done = subprocess.run([ffmpeg, *args], capture_output=True, text=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise VideoRefused(f"an MPEG-TS file that took over {timeout_s:.0f} s to rewrap for the decoder") from None
        if done.returncode != 0 or not os.path.exists(out) or os.path.getsize(out) == 0:
            why = (done.stderr.strip().splitlines() or ["no output"])[-1][:200]
            raise VideoRefused(f"an MPEG-TS file whose video could not be rewrapped for the decoder ({why})")
        yield out
