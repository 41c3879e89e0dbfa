"""A long title split in time across Ray tasks gives exactly the shots of one sequential pass.

The title is real footage: the composite of the sample clips (cuts at known frames) concatenated
four times with ffmpeg, 40 s, a keyframe every second, so chunks seek to a keyframe before them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from annotator_core.media.chunks import decode_chunk, decode_chunked, iter_chunk, plan_chunks
from annotator_core.media.decode import DecodeStats, decode_shots
from annotator_core.media.probe import VideoInfo, probe
from annotator_core.media.sampling import SampleOptions, ShotSample
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from pipelines.ingest import run_ingest

REPEATS = 4
OPTIONS = SampleOptions(frame_size=(224, 224))


@pytest.fixture(scope="module")
def long_title(composite_video: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[int]]:
    """(path, true cuts): the composite four times over, re-encoded with a keyframe every 25 frames."""
    folder = tmp_path_factory.mktemp("long")
    listing = folder / "list.txt"
    listing.write_text(f"file '{composite_video.path}'\n" * REPEATS)
    out = folder / "long-title.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-y", "-f", "concat", "-safe", "0", "-i", str(listing),
         "-c:v", "libx264", "-preset", "veryfast", "-crf", "20", "-g", "25", str(out)],
        check=True,
    )  # fmt: skip
    n = composite_video.n_frames
    cuts = [r * n + c for r in range(REPEATS) for c in [0, *composite_video.cuts]][1:]
    return out, cuts


def _info(path: Path) -> VideoInfo:
    return probe(str(path), max_duration_s=3600, max_pixels=10**8, max_frames=10**7, timeout_s=60)


@pytest.fixture(scope="module")
def one_pass(long_title: tuple[Path, list[int]]) -> list[ShotSample]:
    path, cuts = long_title
    single = list(decode_shots(str(path), _info(path), OPTIONS, DecodeStats()))
    starts = [s.start_frame for s in single]
    assert len(starts) == len(cuts) + 1 and all(abs(a - b) <= 1 for a, b in zip(starts[1:], cuts, strict=True))
    return single


@pytest.mark.parametrize("chunk_seconds", [2.0, 3.6, 4.4])
def test_chunks_stitched_equal_one_pass_with_cuts_on_and_shots_across_chunk_edges(long_title, one_pass, chunk_seconds):
    path, _ = long_title
    info, options, single = _info(path), OPTIONS, one_pass
    starts = [s.start_frame for s in single]
    plan = plan_chunks(n_frames=info.n_frames, fps=info.fps, chunk_seconds=chunk_seconds, min_shot_frames=8)
    edges = {c.start for c in plan[1:]}
    assert len(plan) >= REPEATS
    assert edges & set(starts), "the plan should put a chunk edge exactly on a cut"
    assert any(s.start_frame < e < s.end_frame for s in single for e in edges), "a shot should span a chunk edge"
    stats = DecodeStats()
    chunked = list(decode_chunked((decode_chunk(str(path), info, options, c) for c in plan), options, stats))
    assert [(s.start_frame, s.end_frame) for s in chunked] == [(s.start_frame, s.end_frame) for s in single]
    assert stats.frames == info.n_frames
    for a, b in zip(chunked, single, strict=True):
        assert a.frames.shape == b.frames.shape and a.thumbnail[:2] == b"\xff\xd8"


def test_the_first_chunk_streams_its_shots_before_it_is_decoded_to_its_end(long_title, one_pass):
    # The title's own task decodes its first chunk with iter_chunk: that chunk's shots must leave as they close
    # (to be embedded while it decodes), and the stitched result must still equal the single pass.
    path, _ = long_title
    info = _info(path)
    plan = plan_chunks(n_frames=info.n_frames, fps=info.fps, chunk_seconds=10.0, min_shot_frames=8)
    first_end = plan[1].start
    decoded: list[int] = []  # frames of the first chunk decoded when each shot came out

    def results() -> Any:
        first = iter_chunk(str(path), info, OPTIONS, plan[0])

        def watched() -> Any:
            while True:
                try:
                    piece = next(first)
                except StopIteration as done:
                    return done.value
                decoded.append(piece.end)
                yield piece

        yield watched()
        yield from (decode_chunk(str(path), info, OPTIONS, c) for c in plan[1:])

    shots = []
    for shot in decode_chunked(results(), OPTIONS, DecodeStats()):
        shots.append((shot.start_frame, shot.end_frame, max(decoded)))
    assert [(a, b) for a, b, _ in shots] == [(s.start_frame, s.end_frame) for s in one_pass]
    early = [a for a, b, seen in shots if seen < first_end]
    assert len(early) >= 2, f"the first chunk's shots came out only at its end ({shots[:4]})"


def _shots(settings: Settings) -> dict[str, tuple[Any, ...]]:
    table = ShotStore.from_settings(settings).db.open_table("shots").to_arrow()
    rows = {r["shot_id"]: (r["start_frame"], r["end_frame"], r["start_s"], r["end_s"]) for r in table.to_pylist()}
    assert len(rows) == table.num_rows, "a shot id appears twice"
    return rows


@pytest.mark.usefixtures("ray_local")
def test_a_chunked_ingest_equals_the_single_pass_one_and_a_rerun_writes_nothing(long_title, tmp_path):
    path, cuts = long_title
    single = Settings(data_dir=tmp_path / "single", n_clusters=3, chunk_seconds=0)
    chunked = Settings(data_dir=tmp_path / "chunked", n_clusters=3, chunk_seconds=9)  # 5 chunks, 4 on Ray tasks
    one = run_ingest([str(path)], settings=single, encoder_spec="handcrafted")
    split = run_ingest([str(path)], settings=chunked, encoder_spec="handcrafted")
    assert (one.videos_done, split.videos_done, split.videos_failed) == (1, 1, 0)
    assert split.shots == one.shots == len(cuts) + 1
    shots = _shots(chunked)
    assert shots == _shots(single)  # the same ids (video_id:start_frame), spans and times
    edges = [c.start for c in plan_chunks(n_frames=1000, fps=25.0, chunk_seconds=9, min_shot_frames=8)[1:]]
    assert any(start < e < end for start, end, *_ in shots.values() for e in edges)  # whole across an edge
    assert any(start in edges for start, *_ in shots.values())  # a cut exactly on an edge
    (video,) = ShotStore.from_settings(chunked).videos()
    assert (video["status"], video["n_shots"], video["n_frames"]) == ("done", len(cuts) + 1, 1000)
    again = run_ingest([str(path)], settings=chunked, encoder_spec="handcrafted")
    assert (again.videos_done, again.videos_skipped, again.shots) == (0, 1, 0)
    assert _shots(chunked) == shots
