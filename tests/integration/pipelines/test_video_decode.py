"""The one-pass decode of a title: probe, shot detection and frame sampling, on real footage (no Ray)."""

from __future__ import annotations

import itertools
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest

from annotator_core.media.decode import DecodeStats, decode_shots
from annotator_core.media.probe import VideoRefused, probe
from annotator_core.media.sampling import SampleOptions
from annotator_core.media.shots import DetectorConfig
from pipelines.catalog import fingerprint, list_videos

LIMITS = {"max_duration_s": 3600.0, "max_pixels": 3840 * 2160}


def _shots(path: Path, **options):
    info = probe(str(path), **LIMITS)
    opts = SampleOptions(frame_size=options.pop("frame_size", (224, 224)), **options)
    stats = DecodeStats()
    return info, list(decode_shots(str(path), info, opts, stats)), stats


@pytest.mark.parametrize("detector", ["adaptive", "content"])
def test_detected_cuts_match_the_truth_within_one_frame(composite_video, detector):
    info, shots, stats = _shots(composite_video.path, detector=DetectorConfig(detector=detector))
    found = [s.start_frame for s in shots[1:]]
    assert len(found) == len(composite_video.cuts), (found, composite_video.cuts)
    for got, truth in zip(found, composite_video.cuts, strict=True):
        assert abs(got - truth) <= 1, (found, composite_video.cuts)
    assert info.n_frames == composite_video.n_frames and stats.frames == composite_video.n_frames
    # The shots tile the video: each starts where the previous ended.
    assert shots[0].start_frame == 0 and shots[-1].end_frame == composite_video.n_frames
    assert all(a.end_frame == b.start_frame for a, b in itertools.pairwise(shots))


def test_bikes_has_its_six_shots(sample_videos_dir):
    _, shots, _ = _shots(sample_videos_dir / "bikes.mp4")
    assert len(shots) == 6


def test_each_shot_has_k_encoder_sized_frames_from_inside_it_and_a_jpeg_thumbnail(composite_video):
    _, shots, _ = _shots(composite_video.path, frame_size=(144, 256), frames_per_shot=4, thumbnail_width=160)
    for shot in shots:
        assert shot.frames.shape == (4, 144, 256, 3) and shot.frames.dtype == np.uint8
        thumb = cv2.imdecode(np.frombuffer(shot.thumbnail, np.uint8), cv2.IMREAD_COLOR)
        assert shot.thumbnail[:2] == b"\xff\xd8" and thumb.shape[1] == 160
    # The second segment is grey-free colour footage of a different clip than the first: frames differ.
    assert np.abs(shots[0].frames.astype(int).mean() - shots[1].frames.astype(int).mean()) > 1
    # The fourth segment was made grey (hue=s=0): its sampled frames have no colour.
    grey = shots[3].frames.astype(int)
    assert np.abs(grey[..., 0] - grey[..., 2]).mean() < 3


def test_probe_reads_duration_fps_size_and_frames(sample_videos_dir):
    info = probe(str(sample_videos_dir / "bigbuckbunny.mp4"), **LIMITS)
    assert (info.width, info.height, info.fps, info.n_frames) == (1280, 720, 25.0, 132)
    assert info.duration_s == pytest.approx(5.28)


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("empty", "empty file"),
        ("truncated", "truncated"),
        ("random", "unrecognised content"),
        ("text", "a text file"),
    ],
)
def test_probe_refuses_what_is_not_a_video_by_its_content(bad_videos, name, reason):
    with pytest.raises(VideoRefused, match=reason):
        probe(str(bad_videos[name]), **LIMITS)


def test_probe_refuses_videos_over_the_limits(sample_videos_dir):
    path = str(sample_videos_dir / "bigbuckbunny.mp4")
    with pytest.raises(VideoRefused, match=r"too long: 5 s over the limit of 4 s \(VA_MAX_VIDEO_DURATION_S\)"):
        probe(path, max_duration_s=4.0, max_pixels=10**8)
    with pytest.raises(VideoRefused, match=r"too large: 1280x720 .*VA_MAX_VIDEO_PIXELS"):
        probe(path, max_duration_s=60.0, max_pixels=640 * 480)


def test_a_file_cut_short_after_its_index_fails_while_decoding(composite_video, tmp_path):
    # With the index at the front (faststart), the decoder opens the file and fails where the data stops.
    import subprocess

    faststart = tmp_path / "faststart.mp4"
    subprocess.run(
        ["ffmpeg", "-v", "error", "-i", str(composite_video.path), "-c", "copy", "-movflags", "+faststart",
         str(faststart)],
        check=True,
    )  # fmt: skip
    data = faststart.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(VideoRefused, match="truncated"):
        _shots(cut)


def test_fingerprint_follows_content_not_name(sample_videos_dir, tmp_path):
    moved = tmp_path / "renamed" / "other name.mp4"
    moved.parent.mkdir()
    shutil.copy(sample_videos_dir / "bikes.mp4", moved)
    original = sample_videos_dir / "bikes.mp4"
    size = original.stat().st_size
    assert fingerprint(str(original), size) == fingerprint(str(moved), size)
    other = sample_videos_dir / "carphone_pristine.mp4"
    assert fingerprint(str(other), other.stat().st_size) != fingerprint(str(original), size)


def test_catalog_lists_folders_recursively_and_globs_but_only_video_files(catalog_dir):
    found = [Path(e.uri).name for e in list_videos([str(catalog_dir)])]
    assert "composite.mp4" in found and "bikes.mp4" in found and "composite.srt" not in found
    assert [Path(e.uri).name for e in list_videos([str(catalog_dir / "bad-*.mp4")])] == sorted(
        f"bad-{n}.mp4" for n in ("empty", "random", "text", "truncated")
    )
    # A file named explicitly is taken whatever its name, and judged by content later.
    assert len(list_videos([str(catalog_dir / "reel" / "composite.srt")])) == 1
