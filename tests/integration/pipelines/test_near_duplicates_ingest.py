"""Near-duplicate groups written by `run_ingest` on real footage: a title and its re-encode, together and later;
mirrored, letterboxed and brightened copies, which only the thumbnail fingerprint finds."""

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
from pipelines.near_duplicates import FINGERPRINTS_TABLE, find_duplicates

pytestmark = pytest.mark.usefixtures("ray_local")


# ffmpeg filters of the copies the embedding misses (as benchmarks/near_duplicates.py makes them)
EDITS = {
    "mirrored": "hflip",
    "letterboxed": "scale=iw:trunc(ih*0.375)*2,pad=iw:trunc(ih/0.75/2)*2:0:(oh-ih)/2",
    "brightened": "eq=brightness=0.12:contrast=1.1",
}


def encode(source: Path, out: Path, vf: str, options: list[str]) -> Path:
    command = ["ffmpeg", "-v", "error", "-y", "-i", str(source), "-vf", f"{vf},format=yuv420p", "-an", "-c:v",
               "libx264", "-preset", "veryfast", *options, str(out)]  # fmt: skip
    subprocess.run(command, check=True)
    return out


def reencoded(source: Path, out: Path) -> Path:
    """``source`` re-encoded at half the width and 150 kb/s, as benchmarks/near_duplicates.py's "reencoded" copy."""
    return encode(source, out, "scale=trunc(iw/4)*2:-2", ["-b:v", "150k"])


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


@pytest.fixture(scope="module")
def edited(sample_videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """bikes mirrored, letterboxed and brightened: copies whose embeddings sit below distinct shots' cosine."""
    folder = tmp_path_factory.mktemp("dup-edited")
    return {
        name: encode(sample_videos_dir / "bikes.mp4", folder / f"bikes-{name}.mp4", vf, ["-crf", "23"])
        for name, vf in EDITS.items()
    }


def _settings(folder: Path) -> Settings:
    return Settings(data_dir=folder, encoder="handcrafted", n_clusters=2)


def _video_id(path: Path) -> str:
    return fingerprint(str(path), path.stat().st_size)


def _groups(store: ShotStore) -> dict[str, tuple[str, bool]]:
    return {r["shot_id"]: (r["group_id"], r["representative"]) for r in store.read_duplicates().to_pylist()}


def _copy_shots_apart(store: ShotStore, original: Path, copies: tuple[Path, ...]) -> list[str]:
    """Shots of ``copies`` not in the group of the ``original`` shot that contains their midpoint."""
    groups = _groups(store)
    source_shots = store.shots_of_video(_video_id(original))
    apart = []
    for path in copies:
        copy = store.shots_of_video(_video_id(path))
        assert len(source_shots) >= 5 and len(copy) >= 5
        for shot in copy:
            mid = (shot["start_s"] + shot["end_s"]) / 2
            source = next(s for s in source_shots if s["start_s"] <= mid < s["end_s"])
            if shot["shot_id"] not in groups or groups[shot["shot_id"]][0] != groups.get(source["shot_id"], ("",))[0]:
                apart.append(f"{path.name}:{shot['start_s']:.1f}s")
    return apart


def _check_copy_grouped_with_original(
    store: ShotStore, footage: dict[str, Path], copies: tuple[Path, ...] | None = None
) -> None:
    assert _copy_shots_apart(store, footage["bikes.mp4"], copies or (footage["copy"],)) == []
    groups = _groups(store)
    original = store.shots_of_video(_video_id(footage["bikes.mp4"]))
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
    fingerprints_version = store.db.open_table(FINGERPRINTS_TABLE).version

    rerun = run_ingest([*originals, str(footage["copy"])], settings=settings)
    assert rerun.videos_skipped == 4 and rerun.shots == 0
    report = find_duplicates(store, settings=settings)  # the detection step itself, run again
    assert report.new_shots == 0 and report.rows_written == 0 and report.rows_deleted == 0
    assert _groups(store) == before
    assert store.db.open_table("duplicates").version == version  # not one write
    assert store.db.open_table(FINGERPRINTS_TABLE).version == fingerprints_version


def test_mirrored_letterboxed_and_brightened_copies_join_their_source_by_fingerprint(
    footage: dict[str, Path], edited: dict[str, Path], tmp_path: Path
) -> None:
    settings = _settings(tmp_path)
    titles = [footage[n] for n in ("bikes.mp4", "bigbuckbunny.mp4", "carphone_pristine.mp4")] + list(edited.values())
    run_ingest([str(p) for p in titles], settings=settings)
    store = ShotStore.from_settings(settings)
    _check_copy_grouped_with_original(store, footage, tuple(edited.values()))
    # the fingerprint made those pairs: the cosine rule alone leaves the copies out of their source's group
    report = find_duplicates(store, settings=settings.model_copy(update={"duplicate_fingerprint_distance": -1}))
    assert report.full and report.fingerprint_pairs == 0
    assert _copy_shots_apart(store, footage["bikes.mp4"], tuple(edited.values()))
    # and turning it back on finds them again, computing no fingerprint twice
    report = find_duplicates(store, settings=settings)
    assert report.full and report.fingerprint_pairs > 0 and report.fingerprinted == 0
    _check_copy_grouped_with_original(store, footage, tuple(edited.values()))


def test_detection_off_writes_no_groups(footage: dict[str, Path], tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, encoder="handcrafted", n_clusters=2, duplicates=False)
    run_ingest([str(footage["bikes.mp4"]), str(footage["copy"])], settings=settings)
    assert _groups(ShotStore.from_settings(settings)) == {}
