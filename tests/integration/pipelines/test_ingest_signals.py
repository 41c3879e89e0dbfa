"""`va ingest` killed mid-run (SIGTERM, SIGINT) leaves none of the local Ray processes it started behind."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[3]
# Ray processes of a local session: the ones a killed driver used to leave running.
RAY_PROCESS_MARKS = (
    "raylet",
    "gcs_server",
    "dashboard",
    "agent",
    "runtime_env",
    "log_monitor",
    "ray::",
    "default_worker",
)


def _titles(sample_videos_dir: Path, folder: Path, n: int) -> None:
    """``n`` distinct titles (a different tail, so a different fingerprint) of the real bikes clip."""
    folder.mkdir(parents=True)
    data = (sample_videos_dir / "bikes.mp4").read_bytes()
    for i in range(n):
        (folder / f"title{i}.mp4").write_bytes(data + bytes([i]) * 16)


def _ray_descendants(process: psutil.Process) -> dict[int, str]:
    found = {}
    try:
        children = process.children(recursive=True)
    except psutil.NoSuchProcess:
        return found
    for child in children:
        try:
            line = " ".join(child.cmdline()) or child.name()
        except (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            continue
        if any(mark in line for mark in RAY_PROCESS_MARKS):
            found[child.pid] = line[:160]
    return found


def _alive(pids: dict[int, str]) -> dict[int, str]:
    out = {}
    for pid, line in pids.items():
        try:
            if psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
                out[pid] = line
        except psutil.NoSuchProcess:
            pass
    return out


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_killed_ingest_shuts_its_local_ray_down(sample_videos_dir, tmp_path, signum):
    _titles(sample_videos_dir, tmp_path / "catalog", 6)
    env = {
        **os.environ,
        "VA_DATA_DIR": str(tmp_path / "va-data"),
        "VA_ENCODER": "handcrafted",
        "RAY_USAGE_STATS_ENABLED": "0",
    }
    cmd = [sys.executable, "-m", "va_cli.main", "ingest", str(tmp_path / "catalog"), "--json"]
    log = (tmp_path / "ingest.log").open("w")
    # A suite started as a background job inherits SIGINT ignored, and `va` would then ignore it too (its run
    # went on to the end in such a CI run): the child starts with the default disposition, as from a terminal.
    va = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )  # fmt: skip
    process = psutil.Process(va.pid)
    seen: dict[int, str] = {}
    try:
        # Mid-run: the raylet is up and a worker has started on the titles.
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline and va.poll() is None:
            seen.update(_ray_descendants(process))
            if any("raylet" in line for line in seen.values()) and any(
                "ray::" in line or "default_worker" in line for line in seen.values()
            ):
                break
            time.sleep(0.2)
        assert va.poll() is None, (
            "the ingest ended before it could be interrupted: " + (tmp_path / "ingest.log").read_text()[-2000:]
        )
        assert any("raylet" in line for line in seen.values()), f"no raylet seen within 180 s: {seen}"
        time.sleep(1.0)
        seen.update(_ray_descendants(process))
        va.send_signal(signum)
        code = va.wait(timeout=120)
        assert code != 0, "an interrupted ingest must not report success"
        deadline = time.monotonic() + 30  # Ray's own graceful stop of its processes
        while _alive(seen) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not _alive(seen), f"left running after {signal.Signals(signum).name}: {_alive(seen)}"
    finally:
        if va.poll() is None:
            va.kill()
        for pid in _alive(seen):  # only processes this test's own `va ingest` started
            with contextlib.suppress(psutil.NoSuchProcess):
                psutil.Process(pid).kill()
        log.close()
