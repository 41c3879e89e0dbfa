"""benchmarks/gpu_check.py on a machine without a GPU: a clear message, status 0, nothing measured."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_without_a_gpu_says_so_and_exits_cleanly() -> None:
    # No device visible, even where this test runs on a GPU machine.
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "gpu_check.py")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "no NVIDIA GPU is visible to torch here" in done.stdout
    assert "nothing was measured" in done.stdout
    assert "images/s" not in done.stdout
    assert "Traceback" not in done.stderr
