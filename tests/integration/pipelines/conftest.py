"""Fixtures for the ingest pipeline: local Ray, real footage with known cuts, and broken files."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

# Segments of the composite: (clip, first frame, frames, extra filter). Each segment is one shot; the
# filters make neighbouring segments of the same clip look different, as a cut between scenes does.
COMPOSITE_SEGMENTS = [
    ("bigbuckbunny.mp4", 0, 50, "null"),
    ("carphone_pristine.mp4", 0, 40, "null"),
    ("bigbuckbunny.mp4", 60, 60, "hflip"),
    ("carphone_pristine.mp4", 50, 45, "hue=s=0"),
    ("bigbuckbunny.mp4", 20, 55, "hue=h=150"),
]
COMPOSITE_FPS = 25
COMPOSITE_SIZE = (320, 180)


@dataclass(frozen=True)
class Composite:
    path: Path
    cuts: list[int]  # first frame of every shot but the first
    n_frames: int
    fps: float


@pytest.fixture(scope="session")
def ray_local() -> Iterator[None]:
    """One local Ray for the whole session: starting Ray takes seconds, so the pipeline tests share it."""
    import ray

    from pipelines.ray_session import start_ray

    if ray.is_initialized():
        yield
        return
    start_ray(num_cpus=2)
    yield
    ray.shutdown()


def build_composite(sample_videos_dir: Path, out: Path) -> Composite:
    """Concatenate segments of the real sample clips with ffmpeg; write the true cut frames next to it."""
    if shutil.which("ffmpeg") is None:
        pytest.fail("ffmpeg is required to build the test footage (apt-get install -y ffmpeg)")
    w, h = COMPOSITE_SIZE
    inputs: list[str] = []
    chains: list[str] = []
    clips: dict[str, int] = {}
    for i, (clip, start, length, extra) in enumerate(COMPOSITE_SEGMENTS):
        if clip not in clips:
            clips[clip] = len(clips)
            inputs += ["-i", str(sample_videos_dir / clip)]
        chains.append(
            f"[{clips[clip]}:v]fps={COMPOSITE_FPS},scale={w}:{h},setsar=1,"
            f"trim=start_frame={start}:end_frame={start + length},{extra},setpts=PTS-STARTPTS[s{i}]"
        )
    n = len(COMPOSITE_SEGMENTS)
    graph = ";".join(chains) + ";" + "".join(f"[s{i}]" for i in range(n)) + f"concat=n={n}:v=1:a=0,format=yuv420p[v]"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", *inputs, "-filter_complex", graph, "-map", "[v]",
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", "250", str(out)],
        check=True,
    )  # fmt: skip
    lengths = [length for _, _, length, _ in COMPOSITE_SEGMENTS]
    cuts = [int(c) for c in np.cumsum(lengths)[:-1]]
    composite = Composite(path=out, cuts=cuts, n_frames=sum(lengths), fps=COMPOSITE_FPS)
    out.with_suffix(".json").write_text(
        json.dumps({"cuts": cuts, "n_frames": composite.n_frames, "fps": COMPOSITE_FPS, "segments": COMPOSITE_SEGMENTS})
    )
    return composite


@pytest.fixture(scope="session")
def composite_video(sample_videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Composite:
    """A 10 s composite of real footage with cuts at known frames (the ground truth is composite.json)."""
    return build_composite(sample_videos_dir, tmp_path_factory.mktemp("composite") / "composite.mp4")


@pytest.fixture(scope="session")
def bad_videos(sample_videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Files a catalog really contains by mistake, each named .mp4: only their content says what they are."""
    folder = tmp_path_factory.mktemp("bad")
    bikes = (sample_videos_dir / "bikes.mp4").read_bytes()
    files = {
        "empty": b"",
        "truncated": bikes[: len(bikes) // 2],  # its index (moov) is at the end, so half the file has none
        "random": np.random.default_rng(0).bytes(64_000),
        "text": b"Shot list for reel 3\nINT. KITCHEN - DAY\n" * 50,
    }
    out = {}
    for name, data in files.items():
        path = folder / f"{name}.mp4"
        path.write_bytes(data)
        out[name] = path
    return out


@pytest.fixture(scope="session")
def catalog_dir(
    sample_videos_dir: Path, composite_video: Composite, bad_videos: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:  # fmt: skip
    """A catalog folder: two real videos, the broken files, and a sidecar that is not a video file."""
    folder = tmp_path_factory.mktemp("catalog")
    shutil.copy(sample_videos_dir / "bikes.mp4", folder / "bikes.mp4")
    (folder / "reel").mkdir()
    shutil.copy(composite_video.path, folder / "reel" / "composite.mp4")
    for name, path in bad_videos.items():
        shutil.copy(path, folder / f"bad-{name}.mp4")
    (folder / "reel" / "composite.srt").write_text("1\n00:00:00,000 --> 00:00:01,000\nhello\n")
    return folder
