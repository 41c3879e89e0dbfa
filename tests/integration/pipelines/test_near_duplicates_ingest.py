"""Near-duplicate groups written by `run_ingest` on real footage: a title and its re-encode, together and later."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from annotator_core.status import collect_status
from pipelines.catalog import fingerprint
from pipelines.ingest import run_ingest
from pipelines.near_duplicates import find_duplicates

pytestmark = pytest.mark.usefixtures("ray_local")


def reencoded(source: Path, out: Path) -> Path:
    """``source`` re-encoded at half the width and 150 kb/s, as benchmarks/near_duplicates.py's "reencoded" copy."""
    vf = "scale=trunc(iw/4)*2:-2,format=yuv420p"
    command = ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-vf", vf, "-an", "-c:v", "libx264", "-preset",
               "veryfast", "-b:v", "150k", str(out)]  # fmt: skip
    subprocess.run(command, check=True)
    return out


@pytest.fixture(scope="module")
def footage(sample_videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """bikes (six shots), its re-encode at a quarter of the bitrate and half the size, and two distinct clips."""
    folder = tmp_path_factory.mktemp("dup-footage")
    out = {}
    for name in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4"):
        out[name] = Path(shutil.copy(sample_videos_dir / name, folder / name))
    copies = tmp_path_factory.mktemp("dup-copies")
    out["copy"] = reencoded(sample_videos_dir / "bikes.mp4", copies / "bikes-reencoded.mp4")
    return out


def _settings(folder: Path) -> Settings:
    return Settings(data_dir=folder, encoder="handcrafted", n_clusters=2)


def _video_id(path: Path) -> str:
    return fingerprint(str(path), path.stat().st_size)


def _groups(store: ShotStore) -> dict[str, tuple[str, bool]]:
    return {r["shot_id"]: (r["group_id"], r["representative"]) for r in store.read_duplicates().to_pylist()}


def _check_copy_grouped_with_original(store: ShotStore, footage: dict[str, Path]) -> None:
    groups = _groups(store)
    original = store.shots_of_video(_video_id(footage["bikes.mp4"]))
    copy = store.shots_of_video(_video_id(footage["copy"]))
    assert len(original) >= 5 and len(copy) >= 5
    for shot in copy:
        mid = (shot["start_s"] + shot["end_s"]) / 2
        source = next(s for s in original if s["start_s"] <= mid < s["end_s"])
        assert shot["shot_id"] in groups, f"copy shot {shot['shot_id']} is in no group"
        assert groups[shot["shot_id"]][0] == groups[source["shot_id"]][0], (shot, source)
    # distinct shots are never grouped: no two shots of the original share a group, nor do the other clips
    original_groups = [groups[s["shot_id"]][0] for s in original if s["shot_id"] in groups]
    assert len(original_groups) == len(set(original_groups))
    for name in ("bigbuckbunny.mp4", "carphone_pristine.mp4"):
        assert not any(s["shot_id"] in groups for s in store.shots_of_video(_video_id(footage[name])))
    # one representative per group, named by its own id
    reps = {g for g, is_rep in groups.values() if is_rep}
    assert reps == {g for g, _ in groups.values()} and all(groups[g] == (g, True) for g in reps)


def test_a_title_and_its_reencode_ingested_together_are_grouped(footage: dict[str, Path], tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    summary = run_ingest([str(p) for p in footage.values()], settings=settings)
    assert summary.videos_done == 4
    store = ShotStore.from_settings(settings)
    _check_copy_grouped_with_original(store, footage)
    # `va status` counts the copies (every grouped shot but one per group)
    groups = _groups(store)
    reported = collect_status(settings)["duplicates"]
    assert reported["groups"] == len({g for g, _ in groups.values()}) >= 5
    assert reported["duplicate_shots"] == len(groups) - reported["groups"]


def test_a_copy_ingested_later_joins_the_existing_groups_and_a_rerun_changes_nothing(
    footage: dict[str, Path], tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    originals = [str(footage[n]) for n in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")]
    run_ingest(originals, settings=settings)
    store = ShotStore.from_settings(settings)
    assert _groups(store) == {}  # distinct shots only: nothing grouped

    run_ingest([*originals, str(footage["copy"])], settings=settings)
    _check_copy_grouped_with_original(store, footage)
    before = _groups(store)
    version = store.db.open_table("duplicates").version

    rerun = run_ingest([*originals, str(footage["copy"])], settings=settings)
    assert rerun.videos_skipped == 4 and rerun.shots == 0
    report = find_duplicates(store, settings=settings)  # the detection step itself, run again
    assert report.new_shots == 0 and report.rows_written == 0 and report.rows_deleted == 0
    assert _groups(store) == before
    assert store.db.open_table("duplicates").version == version  # not one write


def test_detection_off_writes_no_groups(footage: dict[str, Path], tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, encoder="handcrafted", n_clusters=2, duplicates=False)
    run_ingest([str(footage["bikes.mp4"]), str(footage["copy"])], settings=settings)
    assert _groups(ShotStore.from_settings(settings)) == {}
