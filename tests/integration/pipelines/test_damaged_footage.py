"""A title with a damaged stretch ingests around it; one damaged throughout is refused.

The footage is real H.264 made with ffmpeg (three 4 s scenes, a keyframe every second) whose bytes are then
overwritten inside one frame's packet, as a bad sector or a dropped network packet leaves a file: ffmpeg's
decoder reports the error there and conceals it; decord stops decoding at that frame for good.
"""

from __future__ import annotations

import itertools
import json
import random
import re
import subprocess
from pathlib import Path

import decord
import pyarrow as pa
import pytest
from click.testing import CliRunner

from annotator_core.encoders import load_encoder
from annotator_core.media.chunks import decode_chunk, decode_chunked, plan_chunks
from annotator_core.media.decode import MAX_LOST_SHARE, DecodeStats, decode_shots
from annotator_core.media.probe import VideoInfo, VideoRefused, probe
from annotator_core.media.sampling import SampleOptions
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from pipelines.stages import DecodeJob, decode_title
from va_cli.main import cli

FPS, SCENE_S, GOP = 25, 4, 25
N_FRAMES = 3 * SCENE_S * FPS
OPTIONS = SampleOptions.from_settings(Settings(), frame_size=load_encoder("handcrafted").frame_size)


def _packets(path: Path) -> list[dict[str, str]]:
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "packet=pos,size,flags", "-of", "json",
         str(path)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    packets: list[dict[str, str]] = json.loads(done.stdout)["packets"]
    return packets


def _damage(source: Path, out: Path, packets: list[int]) -> Path:
    """``source`` with the payload of the given packets (decode order) overwritten with random bytes."""
    data = bytearray(source.read_bytes())
    found = _packets(source)
    rng = random.Random(0)
    for i in packets:
        pos, size = int(found[i]["pos"]), int(found[i]["size"])
        data[pos + 4 : pos + size] = bytes(rng.randrange(256) for _ in range(size - 4))  # keep the NAL length
    out.write_bytes(bytes(data))
    return out


def _decoder_gives_up(path: Path) -> int:
    """The frame at which decord's sequential decode first fails (-1 when it never does)."""
    reader = decord.VideoReader(str(path), num_threads=1)
    for index in range(len(reader)):
        try:
            reader.next()
        except decord.DECORDError:
            return index
    return -1


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("damaged")
    scenes = [
        a for i, p in enumerate(["testsrc", "smptebars", "testsrc2"])
        for a in ("-f", "lavfi", "-i", f"{p}=d={SCENE_S}:s=320x240:r={FPS}")
    ]  # fmt: skip
    out = folder / "whole.mp4"
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-y", *scenes, "-filter_complex",
         "[0:v][1:v][2:v]concat=n=3:v=1:a=0,format=yuv420p[v]", "-map", "[v]", "-c:v", "libx264", "-preset",
         "veryfast", "-g", str(GOP), "-keyint_min", str(GOP), "-sc_threshold", "0", str(out)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    return out


def _info(path: Path) -> VideoInfo:
    return probe(str(path), max_duration_s=3600.0, max_pixels=10**8)


def _record(path: Path) -> tuple[dict, list[dict]]:
    """The video record and shot rows the ingest decode task makes of one file (no Ray: one pass)."""
    job = DecodeJob(
        options=OPTIONS, max_duration_s=3600.0, max_pixels=10**8, max_frames=10**6, probe_timeout_s=60.0,
        encoder="handcrafted",
    )  # fmt: skip
    batch = pa.Table.from_pylist([{"uri": str(path), "size": path.stat().st_size, "video_id": path.stem}])
    rows = [row for table in decode_title(batch, job) for row in table.to_pylist()]
    return json.loads(rows[-1]["video"])["record"], [r for r in rows if r["kind"] == "shot"]


def test_a_damaged_frame_skips_to_the_next_keyframe_and_the_title_ingests(whole: Path, tmp_path: Path) -> None:
    """One damaged packet in the middle scene refused the whole title ("decoding failed at frame 158 of 300")."""
    path = _damage(whole, tmp_path / "one-bad-packet.mp4", [160])
    failed_at = _decoder_gives_up(path)
    assert 2 * GOP < failed_at < N_FRAMES - 2 * GOP, "the damage should stop a plain decode mid-title"
    video, shots = _record(path)
    assert video.get("status", "done") == "done" and video["n_frames"] == N_FRAMES, video
    # the shots tile the whole title, and both cuts (one each side of the damage) are where they were
    assert shots[0]["start_frame"] == 0 and shots[-1]["end_frame"] == N_FRAMES
    assert all(a["end_frame"] == b["start_frame"] for a, b in itertools.pairwise(shots))
    assert [s["start_frame"] for s in shots] == [0, SCENE_S * FPS, 2 * SCENE_S * FPS]
    # what was lost is said, in seconds of the title: from the damaged frame to the next keyframe. Where the damage
    # starts is found to within the decoder's delay and its decoding thread's lead (a few frames; more on a loaded
    # machine), always inside the damaged packet's GOP (packet 160 of GOPs of 25: frames 150 to 175).
    damaged_gop = (160 // GOP) * GOP
    lost_to = damaged_gop + GOP
    said = re.fullmatch(
        rf"damaged: (\d+) of {N_FRAMES} frames could not be decoded \((\d+\.\d\d)–{lost_to / FPS:.2f} s\) .*",
        video["error"],
    )
    assert said is not None, video["error"]
    lost_from = lost_to - int(said[1])
    assert damaged_gop <= lost_from <= 160 and float(said[2]) == pytest.approx(lost_from / FPS), said[0]


def test_damage_at_the_very_start_loses_its_first_second_not_the_title(whole: Path, tmp_path: Path) -> None:
    """The first keyframe damaged: the probe's first frame failed, and the title was refused with decord's internal
    check text ("threaded_decoder.cc:104: Check failed: run_.load()") for 25 of 300 frames."""
    path = _damage(whole, tmp_path / "bad-start.mp4", [0])
    assert _decoder_gives_up(path) == 0, "the damage should stop a plain decode at once"
    video, shots = _record(path)
    assert video.get("status", "done") == "done" and video["n_frames"] == N_FRAMES, video
    assert video["error"].startswith(f"damaged: {GOP} of {N_FRAMES} frames could not be decoded (0.00–1.00 s)")
    assert [s["start_frame"] for s in shots] == [0, SCENE_S * FPS, 2 * SCENE_S * FPS]
    assert shots[-1]["end_frame"] == N_FRAMES


def test_the_chunked_decode_skips_the_same_stretch_once(whole: Path, tmp_path: Path) -> None:
    path = _damage(whole, tmp_path / "one-bad-packet.mp4", [160])
    info = _info(path)
    one = DecodeStats()
    single = [(s.start_frame, s.end_frame) for s in decode_shots(str(path), info, OPTIONS, one)]
    for seconds in (2.0, 3.0):  # the damage inside a chunk, and inside the warm-up of the one after it
        plan = plan_chunks(n_frames=info.n_frames, fps=info.fps, chunk_seconds=seconds, min_shot_frames=8)
        chunked = DecodeStats()
        shots = decode_chunked((decode_chunk(str(path), info, OPTIONS, c) for c in plan), OPTIONS, chunked)
        assert [(s.start_frame, s.end_frame) for s in shots] == single
        # one stretch each, to the same keyframe, from inside the damaged GOP (where exactly may differ by the
        # decoder's few frames of delay)
        [(start, end)], [(one_start, one_end)] = chunked.lost, one.lost
        assert end == one_end == 175 and min(start, one_start) >= 150 and chunked.frames == N_FRAMES


def test_damage_on_a_chunk_edge_is_one_stretch(whole: Path, tmp_path: Path) -> None:
    """The keyframe at 6 s damaged, chunks of 6 s: the chunk before the edge lost the frames the decoder held back
    before it, the chunk after lost its first GOP, and the note listed "5.92–6.00 s, 6.00–7.00 s"."""
    path = _damage(whole, tmp_path / "bad-edge.mp4", [150])
    info = _info(path)
    plan = plan_chunks(n_frames=info.n_frames, fps=info.fps, chunk_seconds=6.0, min_shot_frames=8)
    assert [c.start for c in plan] == [0, 150]
    stats = DecodeStats()
    shots = list(decode_chunked((decode_chunk(str(path), info, OPTIONS, c) for c in plan), OPTIONS, stats))
    [(start, end)] = stats.lost
    assert 125 <= start <= 150 and end == 175 and shots[-1].end_frame == N_FRAMES


def test_a_title_damaged_throughout_is_refused_with_where_and_how_much(whole: Path, tmp_path: Path) -> None:
    every_gop = list(range(2 * GOP, N_FRAMES, GOP))  # one packet after each keyframe from 2 s on
    path = _damage(whole, tmp_path / "bad-throughout.mp4", [i + 5 for i in every_gop])
    with pytest.raises(VideoRefused, match=r"^decoding failed at frame \d+ of 300: the file is damaged there") as err:
        list(decode_shots(str(path), _info(path), OPTIONS, DecodeStats()))
    assert f"more than the {MAX_LOST_SHARE:.0%} ingest skips; re-encode it or copy it again" in str(err.value)
    video, shots = _record(path)
    assert video["status"] == "failed" and video["error"].startswith("decoding failed at frame") and not shots


@pytest.mark.usefixtures("ray_local")
def test_va_ingest_says_what_it_left_out_and_keeps_the_title(whole: Path, tmp_path: Path) -> None:
    folder = tmp_path / "footage"
    folder.mkdir()
    path = _damage(whole, folder / "recording.mp4", [160])
    env = {"VA_DATA_DIR": str(tmp_path / "data"), "VA_ENCODER": "handcrafted", "VA_N_CLUSTERS": "2"}
    result = CliRunner().invoke(cli, ["ingest", str(folder)], env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "ingested 1 video(s), 3 shots" in result.output and "0 failed" in result.output
    assert f"ingested with damage: {path}: damaged: " in result.stderr
    store = ShotStore.from_settings(Settings(data_dir=tmp_path / "data"))
    (video,) = store.videos()
    assert video["status"] == "done" and video["n_shots"] == 3 and video["error"].startswith("damaged: ")
    counts = store.counts()  # what `va status` prints
    assert (counts["videos"], counts["videos_failed"], counts["videos_damaged"]) == (1, 0, 1)
