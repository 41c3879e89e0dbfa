"""`va ingest` in a terminal shows the project's progress and summary; Ray's own lines go to the log it names."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

# Lines Ray itself prints on a newcomer's run (none of them the project's).
RAY_NOISE = (
    "Token authentication is enabled",  # ray.init on a local Ray, auth left at its default
    "Started a local Ray instance",
    "Progress bars disabled",
    "streaming_executor",  # "Dataset ... execution finished in ... seconds"
    "core_worker.cc",  # the C++ core: "Actor ... has constructor arguments in the object store"
)


def _va_ingest(video: Path, data_dir: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_AUTH_MODE", "PYTEST"))}
    env.update({"VA_DATA_DIR": str(data_dir), "VA_N_CLUSTERS": "2", "RAY_USAGE_STATS_ENABLED": "0"})
    command = [sys.executable, "-m", "va_cli.main", "ingest", str(video), "--encoder", "handcrafted", *extra]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=900, check=False)


@pytest.mark.timeout(900)  # two `va` processes, each starting and stopping its own local Ray
def test_ray_lines_go_to_the_log_the_summary_names_and_verbose_shows_them(sample_videos_dir, tmp_path):
    quiet = _va_ingest(sample_videos_dir / "bikes.mp4", tmp_path / "quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "ingested 1 video(s), 6 shots" in quiet.stdout
    shown = quiet.stdout + quiet.stderr
    assert [line for line in RAY_NOISE if line in shown] == [], shown
    (named,) = re.findall(r"Ray's own messages: (\S+)", quiet.stdout)
    log = Path(named)
    assert log.parent == (tmp_path / "quiet" / "logs").resolve()
    text = log.read_text()
    assert "Started a local Ray instance" in text and "streaming_executor" in text and "Token authentication" in text

    verbose = _va_ingest(sample_videos_dir / "bikes.mp4", tmp_path / "verbose", "--verbose", "--dry-run")
    assert verbose.returncode == 0, verbose.stderr
    assert "Started a local Ray instance" in verbose.stderr and "Ray's own messages" not in verbose.stdout
