"""Real videos in the formats a catalog holds, made with ffmpeg from a real clip (issue 17's test footage).

An H.264 MP4 (browsers play it as it is), an MPEG-4 Part 2 AVI, an HEVC MP4 (when the local ffmpeg has
libx265) and a ProRes MOV (browsers play none of these three). Each is cut from a different span of
bikes.mp4 so their fingerprints and shots differ.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

# name -> (file name, ffmpeg video options, start second in bikes.mp4)
FORMATS = {
    "h264": ("h264.mp4", ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p", "-g", "25"], 0.0),
    "mpeg4-avi": ("mpeg4.avi", ["-c:v", "mpeg4", "-q:v", "4", "-g", "25"], 2.0),
    "hevc": ("hevc.mp4", ["-c:v", "libx265", "-preset", "ultrafast", "-x265-params", "log-level=error"], 4.0),
    "prores": ("prores.mov", ["-c:v", "prores_ks", "-profile:v", "0"], 5.0),
}
SPAN_S = 5.0


def has_encoder(name: str) -> bool:
    listed = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [name] for line in listed.splitlines() if line.strip())


def make_format_clips(source: Path, folder: Path) -> dict[str, Path]:
    """The clips above in ``folder`` (made once, reused); HEVC is left out when libx265 is missing."""
    folder.mkdir(parents=True, exist_ok=True)
    made = {}
    for name, (file_name, options, start) in FORMATS.items():
        if name == "hevc" and not has_encoder("libx265"):
            continue
        out = folder / file_name
        if not out.is_file():
            tmp = out.with_name(f"part-{out.name}")
            args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-ss", str(start), "-i", str(source), "-t", str(SPAN_S)]
            subprocess.run([*args, *options, "-an", str(tmp)], check=True, capture_output=True)
            tmp.replace(out)
        made[name] = out
    return made


def skip_reason_hevc() -> str | None:
    return None if has_encoder("libx265") else "the local ffmpeg has no libx265, so no HEVC file can be made"


def require_hevc() -> None:
    reason = skip_reason_hevc()
    if reason:
        pytest.skip(reason)
