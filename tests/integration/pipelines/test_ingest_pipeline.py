"""`run_ingest` end to end on local Ray with a real LanceDB in a temporary folder, on real footage."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
import ray.cloudpickle

from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from pipelines.catalog import fingerprint
from pipelines.ingest import IngestSummary, run_ingest
from pipelines.stages import DecodeJob, decode_title

pytestmark = pytest.mark.usefixtures("ray_local")

GOOD = ("bikes.mp4", "composite.mp4")
BAD = ("bad-empty.mp4", "bad-random.mp4", "bad-text.mp4", "bad-truncated.mp4")


def _settings(folder: Path, **overrides: Any) -> Settings:
    return Settings(data_dir=folder, n_clusters=3, **overrides)


def _video_id(path: Path) -> str:
    return fingerprint(str(path), path.stat().st_size)


def shot_rows(store: ShotStore) -> dict[str, tuple]:
    """Every shot as comparable values (the vector rounded), keyed by shot id."""
    table = store.db.open_table("shots").to_arrow()
    out = {}
    for row in table.to_pylist():
        out[row["shot_id"]] = (
            row["video_id"], row["start_frame"], row["end_frame"], row["start_s"], row["end_s"],
            tuple(np.round(row["vector"], 5)), row["thumbnail"], row["encoder"],
        )  # fmt: skip
    assert len(out) == table.num_rows, "a shot id appears twice"
    return out


def video_rows(store: ShotStore) -> dict[str, dict]:
    rows = store.db.open_table("videos").to_arrow().drop_columns(["ingested_at"]).to_pylist()
    out = {r["video_id"]: r for r in rows}
    assert len(out) == len(rows), "a video id appears twice"
    return out


@pytest.fixture(scope="module")
def ingested(catalog_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, IngestSummary]:
    """One ingest of the catalog folder (2 good videos, 4 broken files) with the offline encoder."""
    settings = _settings(tmp_path_factory.mktemp("store"))
    return settings, run_ingest([str(catalog_dir)], settings=settings, encoder_spec="handcrafted")


def test_good_videos_are_done_and_each_bad_file_is_one_failed_row(ingested, catalog_dir):
    settings, summary = ingested
    assert (summary.videos_done, summary.videos_failed, summary.videos_skipped) == (2, 4, 0)
    videos = video_rows(ShotStore.from_settings(settings))
    by_title = {v["title"]: v for v in videos.values()}
    assert sorted(by_title) == sorted(Path(n).stem for n in GOOD + BAD)  # the .srt sidecar is not a video
    for name in GOOD:
        video = by_title[Path(name).stem]
        assert video["status"] == "done" and video["error"] == "" and video["n_shots"] > 0
        assert video["encoder"] == "handcrafted" and video["fps"] == 25.0
    expected = {
        "bad-empty": "empty file",
        "bad-random": "unrecognised content",
        "bad-text": "a text file",
        "bad-truncated": "truncated",
    }
    for title, reason in expected.items():
        video = by_title[title]
        assert video["status"] == "failed" and reason in video["error"], video
    assert {Path(uri).stem for uri, _ in summary.failures} == set(expected)
    assert summary.shots == sum(v["n_shots"] for v in videos.values())
    assert summary.video_seconds == pytest.approx(20.0)


def test_shots_of_the_composite_match_its_cuts_and_carry_vectors_and_thumbnails(ingested, composite_video):
    settings, _ = ingested
    store = ShotStore.from_settings(settings)
    shots = store.shots_of_video(_video_id(composite_video.path))
    starts = [s["start_frame"] for s in shots]
    assert len(starts) == len(composite_video.cuts) + 1
    assert starts[0] == 0 and all(abs(a - b) <= 1 for a, b in zip(starts[1:], composite_video.cuts, strict=True))
    assert shots[-1]["end_frame"] == composite_video.n_frames
    assert shots[1]["start_s"] == pytest.approx(shots[1]["start_frame"] / 25.0)
    matrix = store.vectors().matrix
    assert matrix.shape[1] == 256 and np.allclose(np.linalg.norm(matrix, axis=1), 1.0, atol=1e-4)
    assert store.thumbnail(shots[2]["shot_id"])[:2] == b"\xff\xd8"
    assert set(store.vectors().cluster_ids.tolist()) == {0, 1, 2}  # k-means ran after the ingest


def test_search_by_example_returns_the_shot_itself_first(ingested):
    settings, _ = ingested
    store = ShotStore.from_settings(settings)
    vectors = store.vectors()
    for i in range(len(vectors)):
        hits = store.search(vectors.matrix[i], k=3)
        assert hits[0].shot_id == vectors.ids[i] and hits[0].score == pytest.approx(1.0, abs=1e-4)


def test_a_rerun_skips_done_videos_and_writes_nothing_twice(ingested, catalog_dir):
    settings, _ = ingested
    store = ShotStore.from_settings(settings)
    before_shots, before_videos = shot_rows(store), video_rows(store)
    again = run_ingest([str(catalog_dir)], settings=settings, encoder_spec="handcrafted", retry_failed=True)
    assert (again.videos_done, again.videos_skipped, again.shots) == (0, 2, 0)
    assert again.videos_failed == 4  # failed files are tried again, and fail again, as one row each
    assert shot_rows(store) == before_shots
    assert video_rows(store) == before_videos


def test_a_moved_file_keeps_its_shots_and_its_record_follows_it(sample_videos_dir, tmp_path):
    """A renamed or moved file is the same video (same fingerprint): skipped, but its stored path once stayed
    the old one, so proxies and playback failed with 'No such file'. A copy beside the original keeps the first."""
    folder = tmp_path / "catalog"
    folder.mkdir()
    first = folder / "reel 1.mp4"
    shutil.copy(sample_videos_dir / "bikes.mp4", first)
    settings = _settings(tmp_path / "store")
    run_ingest([str(folder)], settings=settings, encoder_spec="handcrafted")
    store = ShotStore.from_settings(settings)
    shots = shot_rows(store)

    renamed = folder / "archive" / "Bikes at dusk.mp4"
    renamed.parent.mkdir()
    first.rename(renamed)
    dry = run_ingest([str(folder)], settings=settings, encoder_spec="handcrafted", dry_run=True)
    assert dry.moved == [str(renamed)] and [v["uri"] for v in store.videos()] == [
        str(first)
    ]  # a dry run writes nothing
    again = run_ingest([str(folder)], settings=settings, encoder_spec="handcrafted")
    assert (again.moved, again.videos_done, again.videos_skipped) == ([str(renamed)], 0, 1)
    [video] = store.videos()
    assert (video["uri"], video["title"], video["status"]) == (str(renamed), "Bikes at dusk", "done")
    assert shot_rows(store) == shots

    shutil.copy(renamed, folder / "copy.mp4")  # both paths there: the same video, its record stays put
    assert run_ingest([str(folder)], settings=settings, encoder_spec="handcrafted").moved == []
    assert [v["uri"] for v in store.videos()] == [str(renamed)]


def test_a_run_killed_after_writing_shots_but_before_the_done_row_resumes_to_the_same_table(
    catalog_dir, ingested, tmp_path
):
    reference = ShotStore.from_settings(ingested[0])
    settings = _settings(tmp_path)
    shutil.copytree(ingested[0].resolved_lancedb_uri, settings.resolved_lancedb_uri)
    store = ShotStore.from_settings(settings)
    # The state a kill between the shots write and the videos write leaves: shots there, no done row.
    bikes = _video_id(catalog_dir / "bikes.mp4")
    store.db.open_table("videos").delete(f"video_id = '{bikes}'")
    resumed = run_ingest([str(catalog_dir)], settings=settings, encoder_spec="handcrafted", retry_failed=True)
    assert (resumed.videos_done, resumed.videos_skipped, resumed.shots) == (1, 1, 6)
    assert shot_rows(store) == shot_rows(reference)
    assert video_rows(store) == video_rows(reference)


class _Stop(Exception):
    pass


def test_an_interrupted_run_resumed_gives_the_same_table(catalog_dir, ingested, tmp_path):
    reference = ShotStore.from_settings(ingested[0])
    # Small batches, so videos complete one by one and each is written as soon as it is complete.
    settings = _settings(tmp_path, write_batch_size=1, embed_batch_size=2)

    def stop_after_first_video(summary: IngestSummary) -> None:
        if summary.videos_done + summary.videos_failed >= 1:
            raise _Stop

    with pytest.raises(_Stop):
        run_ingest([str(catalog_dir)], settings=settings, encoder_spec="handcrafted", progress=stop_after_first_video)
    store = ShotStore.from_settings(settings)
    assert 1 <= len(video_rows(store)) < len(GOOD) + len(BAD)
    run_ingest([str(catalog_dir)], settings=settings, encoder_spec="handcrafted")
    assert shot_rows(store) == shot_rows(reference)
    assert video_rows(store) == video_rows(reference)


def test_tiny_clip_ingest_supports_search_by_example_and_by_text(composite_video, sample_videos_dir, tmp_path):
    from annotator_core.encoders import load_encoder

    settings = _settings(tmp_path)
    paths = [str(composite_video.path), str(sample_videos_dir / "bikes.mp4")]
    summary = run_ingest(paths, settings=settings, encoder_spec="tiny-clip")
    assert (summary.videos_done, summary.videos_failed, summary.encoder) == (2, 0, "tiny-clip")
    store = ShotStore.from_settings(settings)
    assert store.encoder() == "tiny-clip" and len(store.shots_of_video(_video_id(composite_video.path))) == 5
    vectors = store.vectors()
    for i in range(len(vectors)):
        assert store.search(vectors.matrix[i], k=1)[0].shot_id == vectors.ids[i]
    text = load_encoder("tiny-clip").embed_texts(["a rabbit in a meadow"])[0]
    assert len(store.search(text, k=5)) == 5


def test_a_table_of_one_encoder_refuses_another(ingested, catalog_dir):
    from annotator_core.errors import ValidationFailed

    with pytest.raises(ValidationFailed, match="embedded with 'handcrafted', not 'tiny-clip'"):
        run_ingest([str(catalog_dir)], settings=ingested[0], encoder_spec="tiny-clip")


def crash_on_composite(batch: pa.Table, job: DecodeJob) -> Iterator[pa.Table]:
    """The real per-title UDF, except that the decoder 'segfaults' on the composite."""
    if any(uri.endswith("composite.mp4") for uri in batch.column("uri").to_pylist()):
        os.kill(os.getpid(), signal.SIGSEGV)
    yield from decode_title(batch, job)


def test_a_decoder_crash_fails_that_video_after_bounded_retries_and_the_job_goes_on(
    composite_video, sample_videos_dir, tmp_path
):
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import test modules
    settings = _settings(tmp_path, decode_retries=1)
    paths = [str(composite_video.path), str(sample_videos_dir / "bikes.mp4")]
    summary = run_ingest(paths, settings=settings, encoder_spec="handcrafted", decode_fn=crash_on_composite)
    assert (summary.videos_done, summary.videos_failed) == (1, 1)
    store = ShotStore.from_settings(settings)
    crashed = store.get_video(_video_id(composite_video.path))
    assert crashed["status"] == "failed" and "crashed" in crashed["error"] and "2 attempts" in crashed["error"]
    assert store.shots_of_video(crashed["video_id"]) == []
    assert store.get_video(_video_id(sample_videos_dir / "bikes.mp4"))["status"] == "done"


def without_ffmpeg(batch: pa.Table, job: DecodeJob) -> Iterator[pa.Table]:
    """The real per-title UDF on a worker whose PATH has ffprobe but no ffmpeg (as a machine without it)."""
    folder = Path(os.environ.get("TMPDIR", "/tmp")) / f"va-no-ffmpeg-{os.getpid()}"
    folder.mkdir(exist_ok=True)
    if not (folder / "ffprobe").exists():
        (folder / "ffprobe").symlink_to(shutil.which("ffprobe") or "ffprobe")
    before = os.environ["PATH"]
    os.environ["PATH"] = str(folder)
    try:
        yield from decode_title(batch, job)
    finally:
        os.environ["PATH"] = before


def test_a_title_failed_for_want_of_ffmpeg_is_tried_again_once_it_is_there(tmp_path):
    """A missing tool is the machine's fault, not the file's: the title's failed row said "ConfigError: ffmpeg is
    not installed" and stayed failed after ffmpeg was installed, until --retry-failed."""
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    transport = tmp_path / "in" / "recording.ts"  # MPEG-TS: decoded from a rewrapped copy, which ffmpeg makes
    transport.parent.mkdir()
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=d=2:s=320x240:r=25", "-c:v", "libx264",
         str(transport)],
        check=True, timeout=120,
    )  # fmt: skip
    settings = _settings(tmp_path)
    summary = run_ingest([str(transport)], settings=settings, encoder_spec="handcrafted", decode_fn=without_ffmpeg)
    assert (summary.videos_done, summary.videos_failed) == (0, 1)
    store = ShotStore.from_settings(settings)
    (row,) = store.videos()
    assert row["status"] == "failed" and row["error"].startswith("setup: ffmpeg is not installed;"), row["error"]
    again = run_ingest([str(transport)], settings=settings, encoder_spec="handcrafted")  # no --retry-failed
    assert (again.videos_done, again.videos_failed, again.failed_before) == (1, 0, 0)
    assert [v["status"] for v in store.videos()] == ["done"]
