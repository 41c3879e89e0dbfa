"""`va ingest` as a user runs it: dry run, limit, JSON summary and the exit code of a strict run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from va_cli.main import cli

pytestmark = pytest.mark.usefixtures("ray_local")


def _run(args: list[str], data_dir: Path):
    env = {"VA_DATA_DIR": str(data_dir), "VA_ENCODER": "handcrafted", "VA_N_CLUSTERS": "2"}
    return CliRunner().invoke(cli, ["ingest", *args], env=env, catch_exceptions=False)


def test_dry_run_lists_what_would_be_ingested_and_writes_nothing(catalog_dir, tmp_path):
    result = _run([str(catalog_dir), "--dry-run"], tmp_path)
    assert result.exit_code == 0, result.output
    assert "dry run: 6 video(s) would be ingested with handcrafted" in result.output
    assert str(catalog_dir / "reel" / "composite.mp4") in result.output
    assert ShotStore.from_settings(Settings(data_dir=tmp_path)).counts()["videos"] == 0


def test_strict_run_with_a_failure_exits_1_and_a_normal_run_exits_0(catalog_dir, tmp_path):
    # The folder lists sorted: the first two files are broken, so --limit 2 ingests exactly those.
    strict = _run([str(catalog_dir), "--limit", "2", "--strict", "--json"], tmp_path)
    assert strict.exit_code == 1, strict.output
    summary = json.loads(strict.stdout)
    assert (summary["videos_total"], summary["videos_failed"], summary["videos_done"]) == (2, 2, 0)
    assert [Path(uri).name for uri, _ in summary["failures"]] == ["bad-empty.mp4", "bad-random.mp4"]
    # run again: the two are skipped as failed before, and the catalog still holds them, so still 1
    rerun = _run(
        [str(catalog_dir / "bad-empty.mp4"), str(catalog_dir / "bad-random.mp4"), "--strict", "--json"], tmp_path
    )
    assert rerun.exit_code == 1 and json.loads(rerun.stdout)["failed_before"] == 2, rerun.output

    normal = _run([str(catalog_dir / "bikes.mp4"), str(catalog_dir / "bad-text.mp4")], tmp_path)
    assert normal.exit_code == 0, normal.output
    assert "ingested 1 video(s), 6 shots" in normal.output and "1 failed" in normal.output
    assert "bad-text.mp4: not a readable video: a text file" in normal.stderr
    counts = ShotStore.from_settings(Settings(data_dir=tmp_path)).counts()
    assert (counts["videos"], counts["videos_failed"], counts["shots"]) == (4, 3, 6)


def test_a_path_that_does_not_exist_is_one_clear_error(tmp_path):
    result = _run([str(tmp_path / "nowhere")], tmp_path)
    assert result.exit_code == 2
    assert "does not exist; give video files, folders, globs" in result.output
