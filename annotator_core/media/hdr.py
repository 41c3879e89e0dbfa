"""HDR footage brought to SDR: which streams are HDR, and the ffmpeg filters that tone map them.

The ingest decoder (decord) and browsers given an 8-bit proxy both treat HDR frames as SDR, so a PQ (HDR10, Dolby
Vision's HDR10 base) or HLG (phones' default HDR) picture comes out dark and flat. Ingest decodes a tone-mapped
copy (:func:`annotator_core.media.remux.transcoded`) and proxies are made through the same filters
(:mod:`annotator_core.media.proxy`).
"""

from __future__ import annotations

import shutil
import subprocess
from functools import cache

# The transfers (ffprobe's color_transfer) of HDR streams. Decoded as they are, a PQ clip made from an SDR one came
# out 44.5/255 (mean absolute difference) from the SDR frames.
HDR_TRANSFERS = {"smpte2084": "HDR10/PQ", "arib-std-b67": "HLG"}
TONE_MAP_FILTERS = ("zscale", "tonemap")


@cache
def can_tone_map() -> bool:
    """Whether the local ffmpeg has the filters the HDR tone map needs (zimg's zscale and tonemap). Without them an
    HDR title is decoded as it is, dark and flat, rather than refused."""
    ffmpeg = shutil.which("ffmpeg")
    if ffmpeg is None:
        return False
    try:
        listed = subprocess.run([ffmpeg, "-hide_banner", "-filters"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    names = {line.split()[1] for line in listed.stdout.splitlines() if len(line.split()) > 2}
    return all(name in names for name in TONE_MAP_FILTERS)


# HDR to SDR BT.709: the signal to linear light (100 nits as 1.0), the BT.2020 primaries to BT.709, and Möbius's
# curve, which leaves the SDR range nearly as it is and rolls off the highlights above it (Hable's darkens the
# whole picture: on a PQ clip made from an SDR one, mean absolute difference from the SDR frames 6 with Möbius,
# 46 with Hable, 45 decoded as it is).
TONE_MAP = "zscale=t=linear:npl=100,format=gbrpf32le,zscale=p=bt709,tonemap=mobius:desat=0,zscale=t=bt709:m=bt709:r=tv"
UNSPECIFIED = {"", "unknown", "unspecified", "reserved"}  # ffprobe's words for a colour property not given


def tone_map_filter(primaries: str = "", matrix: str = "") -> str:
    """:data:`TONE_MAP` for a stream with these colour primaries and matrix (ffprobe's names). zscale refuses a
    frame whose primaries or matrix are not given (its own ``pin``/``min`` options did not help), so where the
    stream does not say, BT.2100's are set on the frames first (BT.2020 primaries, its non-constant-luminance
    matrix): a PQ-tagged file without them was refused outright."""
    unset = ["color_primaries=bt2020"] if primaries in UNSPECIFIED else []
    unset += ["colorspace=bt2020nc"] if matrix in UNSPECIFIED else []
    return f"setparams={':'.join(unset)},{TONE_MAP}" if unset else TONE_MAP


# What a caller that decodes an HDR file as it is is told to run first.
TONE_MAP_HINT = f"e.g. ffmpeg -i IN -vf {TONE_MAP},format=yuv420p -c:v libx264 -crf 18 OUT.mp4"
# The tone map's output is BT.709 YUV, tagged so: the decoder converts by the tag (BT.601 where there is none, which
# is what ffmpeg converts RGB sources such as QuickTime Animation with, so those copies carry no tag).
BT709_TAGS = ("-color_primaries", "bt709", "-color_trc", "bt709", "-colorspace", "bt709")
