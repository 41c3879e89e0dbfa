"""The chunk plan and the stitching of a long title's chunks (pure: no video is decoded here)."""

from __future__ import annotations

import numpy as np
import pytest

from annotator_core.media.chunks import Piece, Stitcher, plan_chunks, shot_sample, warmup_frames
from annotator_core.media.sampling import SampleOptions


def test_a_title_no_longer_than_a_chunk_or_chunking_off_is_one_chunk() -> None:
    for n_frames, seconds in [(250, 10.0), (100, 10.0), (10_000, 0.0)]:
        (only,) = plan_chunks(n_frames=n_frames, fps=25.0, chunk_seconds=seconds, min_shot_frames=8)
        assert (only.start, only.end, only.warmup_from) == (0, None, 0)


def test_chunks_tile_the_title_and_warm_up_before_their_start() -> None:
    plan = plan_chunks(n_frames=1000, fps=25.0, chunk_seconds=4.0, min_shot_frames=8)
    assert [(c.start, c.end) for c in plan] == [(i * 100, (i + 1) * 100 if i < 9 else None) for i in range(10)]
    warm = warmup_frames(fps=25.0, min_shot_frames=8)
    assert warm >= 4 * 8 and warm >= 50
    assert [c.warmup_from for c in plan] == [max(0, c.start - warm) for c in plan]


def test_a_short_last_chunk_joins_the_one_before() -> None:
    plan = plan_chunks(n_frames=1010, fps=25.0, chunk_seconds=4.0, min_shot_frames=8)
    assert plan[-1].start == 900 and plan[-1].end is None and len(plan) == 10


def test_a_negative_chunk_length_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="chunk_seconds"):
        plan_chunks(n_frames=10, fps=25.0, chunk_seconds=-1.0, min_shot_frames=8)


def _piece(start: int, end: int, opens: bool) -> Piece:
    frame = np.full((36, 64, 3), start % 255, np.uint8)
    return Piece(start=start, end=end, opens_shot=opens, kept=[(start, frame)])


def _spans(shots: list[list[Piece]]) -> list[tuple[int, int]]:
    return [(s[0].start, s[-1].end) for s in shots]


def test_pieces_join_across_chunk_edges_until_a_piece_opens_a_shot() -> None:
    stitcher = Stitcher()
    shots = stitcher.add([_piece(0, 40, True), _piece(40, 100, True)])  # chunk [0, 100): a cut at 40
    shots += stitcher.add([_piece(100, 130, False), _piece(130, 200, True)])  # a shot spans the edge at 100
    shots += stitcher.add([_piece(200, 300, True)])  # a cut exactly on the edge at 200
    shots += stitcher.add([_piece(300, 400, False)])  # a shot over a whole chunk
    shots += stitcher.add([_piece(400, 420, False), _piece(420, 450, True)])
    shots += stitcher.finish()
    assert _spans(shots) == [(0, 40), (40, 130), (130, 200), (200, 420), (420, 450)]


def test_stitching_refuses_a_gap_or_an_unopened_title() -> None:
    with pytest.raises(ValueError, match="does not continue at frame 100"):
        Stitcher().add([_piece(0, 100, True), _piece(110, 200, True)])
    with pytest.raises(ValueError, match="frame 0"):
        Stitcher().add([_piece(0, 100, False)])


def test_a_joined_shot_is_sampled_over_its_whole_span() -> None:
    options = SampleOptions(frame_size=(32, 32), frames_per_shot=3, thumbnail_width=64)
    sample = shot_sample([_piece(100, 160, False), _piece(160, 200, False)], options)
    assert (sample.start_frame, sample.end_frame) == (100, 200)
    assert sample.frames.shape == (3, 32, 32, 3) and sample.thumbnail[:2] == b"\xff\xd8"
    # The first third's frame comes from the first piece, the last third's from the second.
    assert sample.frames[0, 0, 0, 0] == 100 and sample.frames[2, 0, 0, 0] == 160
