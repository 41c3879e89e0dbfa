"""`va status` and bad configuration, through the real console script."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

VA = [sys.executable, "-m", "va_cli.main"]


def run_va(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("VA_")}
    clean.update(env)
    return subprocess.run(VA + args, cwd=tmp_path, env=clean, capture_output=True, text=True, timeout=120)


def test_status_reports_the_embedded_default(tmp_path: Path) -> None:
    result = run_va(["status", "--json"], tmp_path)
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["database"]["ok"] is True
    assert report["database"]["url"].endswith("va-data/annotations.db")
    assert report["lancedb"]["counts"] == {"videos": 0, "shots": 0}
    assert (tmp_path / "va-data" / "annotations.db").exists()


def test_unknown_setting_is_one_line_naming_it(tmp_path: Path) -> None:
    result = run_va(["status"], tmp_path, VA_FEED_SIZ="5")
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0
    assert "unknown setting VA_FEED_SIZ" in result.stderr and "Traceback" not in result.stderr


def test_unwritable_data_folder_is_one_line_naming_it(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("x")
    result = run_va(["status"], tmp_path, VA_DATA_DIR=str(tmp_path / "file" / "data"))
    assert result.returncode == 2
    assert "VA_DATA_DIR=" in result.stderr and "not writable" in result.stderr
    assert "Traceback" not in result.stderr


def test_unreachable_database_is_reported_not_raised(tmp_path: Path) -> None:
    result = run_va(["status"], tmp_path, VA_DATABASE_URL="postgresql+psycopg://u:p@127.0.0.1:1/db")
    assert result.returncode == 1
    assert "NOT reachable" in result.stdout and "fix VA_DATABASE_URL" in result.stdout
    assert "u:p" not in result.stdout  # credentials never printed


def test_malformed_database_url_names_the_setting(tmp_path: Path) -> None:
    result = run_va(["status"], tmp_path, VA_DATABASE_URL="not a url")
    assert "VA_DATABASE_URL" in result.stdout + result.stderr
    assert "Traceback" not in result.stderr
