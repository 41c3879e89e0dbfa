"""`va ingest` as a user runs it: dry run, limit, JSON summary and the exit code of a strict run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from va_cli.main import cli

pytestmark = pytest.mark.usefixtures("ray_local")
ROOT = Path(__file__).resolve().parents[3]


def _run(args: list[str], data_dir: Path):
    env = {"VA_DATA_DIR": str(data_dir), "VA_ENCODER": "handcrafted", "VA_N_CLUSTERS": "2"}
    return CliRunner().invoke(cli, ["ingest", *args], env=env, catch_exceptions=False)


def test_dry_run_lists_what_would_be_ingested_and_writes_nothing(catalog_dir, tmp_path):
    data = tmp_path / "va-data"  # not there yet: a dry run used to make it, with a LanceDB folder and Ray's log
    result = _run([str(catalog_dir), "--dry-run"], data)
    assert result.exit_code == 0, result.output
    assert "dry run: 6 video(s) would be ingested with handcrafted" in result.output
    assert str(catalog_dir / "reel" / "composite.mp4") in result.output
    assert not data.exists()
    # with a store already there, a dry run reads it (what is done is skipped) and still writes nothing to it
    assert _run([str(catalog_dir / "bikes.mp4")], data).exit_code == 0
    before = sorted(p.relative_to(data) for p in (data / "lancedb").rglob("*"))
    again = _run([str(catalog_dir), "--dry-run"], data)
    assert "dry run: 5 video(s) would be ingested with handcrafted, 1 skipped" in again.output, again.output
    assert sorted(p.relative_to(data) for p in (data / "lancedb").rglob("*")) == before
    assert ShotStore.from_settings(Settings(data_dir=data)).counts()["videos"] == 1


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


def test_a_folder_scan_takes_dvd_rips_and_says_what_else_it_passed_over(tmp_path):
    folder = tmp_path / "VIDEO_TS"
    folder.mkdir()
    scenes = ["-f", "lavfi", "-i", "testsrc=duration=2:size=320x240:rate=25", "-f", "lavfi",
              "-i", "smptebars=duration=2:size=320x240:rate=25",
              "-filter_complex", "[0:v][1:v]concat=n=2:v=1:a=0,format=yuv420p[v]", "-map", "[v]"]  # fmt: skip
    ffmpeg = ["ffmpeg", "-v", "error", "-nostdin", *scenes]
    subprocess.run([*ffmpeg, "-c:v", "mpeg2video", "-f", "vob", str(folder / "VTS_01_1.VOB")], check=True, timeout=120)
    subprocess.run([*ffmpeg, "-t", "1", str(folder / "menu.gif")], check=True, timeout=120)
    (folder / "notes.txt").write_text("disc 1 of 2\n")
    result = _run([str(folder)], tmp_path / "va-data")
    assert result.exit_code == 0, result.output
    assert "ingested 1 video(s), 2 shots" in result.output
    assert "2 file(s) with other suffixes (.gif, .txt) were not considered" in result.output
    [video] = ShotStore.from_settings(Settings(data_dir=tmp_path / "va-data")).videos(status="done")
    assert Path(video["uri"]).name == "VTS_01_1.VOB"


def test_scripts_va_runs_in_the_callers_folder_and_keeps_the_default_data_in_the_repo(sample_videos_dir, tmp_path):
    """`scripts/va ingest ./videos` from another folder used to look for videos in the repo (it cd'd there).

    A copy of scripts/va in a repo of its own, whose bootstrap does nothing and whose .venv is this one.
    """
    repo, work = tmp_path / "repo", tmp_path / "work"
    (repo / "scripts").mkdir(parents=True)
    shutil.copy(ROOT / "scripts" / "va", repo / "scripts" / "va")
    (repo / "scripts" / "bootstrap.sh").write_text("#!/bin/sh\n")
    (repo / "scripts" / "bootstrap.sh").chmod(0o755)
    (repo / ".venv").symlink_to(ROOT / ".venv")
    (work / "videos").mkdir(parents=True)
    shutil.copy(sample_videos_dir / "bikes.mp4", work / "videos" / "bikes.mp4")
    env = {k: v for k, v in os.environ.items() if not k.startswith("VA_")} | {"VA_ENCODER": "handcrafted"}

    def va(*args: str, **more_env: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(repo / "scripts" / "va"), *args], cwd=work, env=env | more_env, capture_output=True, text=True,
            timeout=240,
        )  # fmt: skip

    listed = va("ingest", "videos", "--dry-run", "--json")
    assert listed.returncode == 0, listed.stderr[-3000:]
    assert json.loads(listed.stdout)["planned"] == [str(work / "videos" / "bikes.mp4")]
    assert not (repo / "va-data").exists() and not (work / "va-data").exists()  # a dry run makes no data folder
    assert va("status").returncode == 0 and (repo / "va-data" / "annotations.db").is_file()  # the repo's, as before
    assert not (work / "va-data").exists()
    # A data folder the caller names, in the environment or the config file, is theirs: relative to where they are.
    assert va("status", VA_DATA_DIR="mine").returncode == 0 and (work / "mine" / "annotations.db").is_file()
    (work / "va.toml").write_text('data_dir = "from-config"\n')
    assert va("--config", "va.toml", "status").returncode == 0 and (work / "from-config" / "annotations.db").is_file()


def test_a_file_that_failed_while_being_copied_leaves_no_failed_row_once_it_ingests(sample_videos_dir, tmp_path):
    """A file refused half-copied got a new fingerprint once whole and ingested, but its failed row stayed beside
    the done one: `va status` kept counting a failure that was gone."""
    folder, data = tmp_path / "in", tmp_path / "va-data"
    folder.mkdir()
    whole = (sample_videos_dir / "bikes.mp4").read_bytes()
    (folder / "bikes.mp4").write_bytes(whole[: len(whole) // 3])  # still being copied
    assert _run([str(folder)], data).exit_code == 0
    store = ShotStore.from_settings(Settings(data_dir=data))
    assert [v["status"] for v in store.videos()] == ["failed"]
    (folder / "bikes.mp4").write_bytes(whole)  # the copy finished
    assert _run([str(folder)], data).exit_code == 0
    assert [(v["uri"], v["status"]) for v in store.videos()] == [(str(folder / "bikes.mp4"), "done")]
    assert store.counts()["videos_failed"] == 0


def test_ingest_stops_without_ffprobe_and_warns_without_ffmpeg(sample_videos_dir, tmp_path):
    folder, tools = tmp_path / "in", tmp_path / "bin"
    folder.mkdir()
    tools.mkdir()
    shutil.copy(sample_videos_dir / "bikes.mp4", folder / "bikes.mp4")
    env = {"VA_DATA_DIR": str(tmp_path / "data"), "VA_ENCODER": "handcrafted", "VA_N_CLUSTERS": "2", "PATH": str(tools)}
    result = CliRunner().invoke(cli, ["ingest", str(folder)], env=env)
    assert result.exit_code == 1 and "ffprobe is not installed; ingest reads every file's header" in result.output
    assert not (tmp_path / "data").exists(), "it stopped before any work"
    (tools / "ffprobe").symlink_to(shutil.which("ffprobe"))
    result = CliRunner().invoke(cli, ["ingest", str(folder)], env=env, catch_exceptions=False)
    assert result.exit_code == 0 and "ingested 1 video(s)" in result.output, result.output
    assert "warning: ffmpeg is not installed. MPEG-TS, AV1, GIF" in result.stderr
