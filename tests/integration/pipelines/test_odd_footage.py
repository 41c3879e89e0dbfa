"""Real footage that is valid but unusual: variable frame rate, tiny frames, no video stream, a codec decord lacks.

Each file is made with ffmpeg from the real sample clips and goes through the decode task ingest runs
(``decode_title``, without Ray), so what is asserted is what lands in the shots table. Expected times come
from ffprobe's own reading of each frame's timestamp, not from our code.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import cv2
import decord
import numpy as np
import pyarrow as pa
import pytest
from click.testing import CliRunner
from proxy_formats import has_encoder

from annotator_core.encoders import load_encoder
from annotator_core.media.chunks import plan_chunks
from annotator_core.media.decode import rgb_frame
from annotator_core.media.hdr import can_tone_map
from annotator_core.media.probe import VideoRefused, decoder_reason, probe
from annotator_core.media.remux import decodable, is_transport_stream, probed, rewrap_reason
from annotator_core.media.sampling import SampleOptions
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from pipelines.chunked import _decode_chunk
from pipelines.stages import DecodeJob, decode_title
from serving.scoring.clips import embed_clip
from va_cli.main import cli

FFMPEG = ["ffmpeg", "-nostdin", "-v", "error", "-y"]
FIRST_PART_S, FIRST_FPS, SLOW = 4.0, 25, 3  # 4 s at 25 fps, then bigbuckbunny with each frame held 3x as long


def _make(args: list[str], out: Path) -> Path:
    subprocess.run([*FFMPEG, *args, str(out)], check=True, capture_output=True, timeout=300)
    return out


@pytest.fixture(scope="module")
def footage(sample_videos_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("odd-footage")
    bikes, bunny = sample_videos_dir / "bikes.mp4", sample_videos_dir / "bigbuckbunny.mp4"
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    # A phone-like variable-rate file: a hard cut from bikes (25 fps) to bigbuckbunny at a third of the rate.
    graph = (
        f"[0:v]trim=0:{FIRST_PART_S},setpts=PTS-STARTPTS,scale=480:270,setsar=1[a];"
        f"[1:v]trim=0:3,setpts=(PTS-STARTPTS)*{SLOW},scale=480:270,setsar=1[b];[a][b]concat=n=2:v=1[v]"
    )
    made = {
        "vfr": _make(
            ["-i", str(bikes), "-i", str(bunny), "-filter_complex", graph, "-map", "[v]", "-fps_mode", "passthrough",
             *x264],
            folder / "vfr.mp4",
        ),
        "audio": _make(["-f", "lavfi", "-i", "sine=frequency=440:duration=3", "-c:a", "aac"], folder / "audio.mp4"),
    }  # fmt: skip
    # A phone's portrait recording: frames stored one way, shown turned a quarter (a display matrix of 90 degrees).
    upright = _make(["-i", str(bikes), "-t", "3", "-vf", "transpose=1", *x264], folder / "upright.mp4")
    made["turned"] = _make(["-i", str(upright), "-c", "copy", "-metadata:s:v:0", "rotate=90"], folder / "turned.mp4")
    # Containers whose frames carry no timestamps for the decoder ("no timestamp": about -3.7e17 s).
    clip = ["-i", str(bikes), "-t", "3", "-vf", "scale=320:136"]
    made["mp4"] = _make([*clip, *x264], folder / "plain.mp4")
    made["h264.avi"] = _make([*clip, *x264], folder / "h264.avi")
    made["xvid.avi"] = _make([*clip, "-c:v", "mpeg4", "-bf", "2", "-q:v", "3"], folder / "xvid.avi")
    made["mpeg1.mpg"] = _make([*clip, "-c:v", "mpeg1video", "-q:v", "3"], folder / "mpeg1.mpg")
    made["flv1.flv"] = _make([*clip, "-c:v", "flv"], folder / "flv1.flv")  # Sorenson: no frame has a length
    # A small preview stream first, the picture second: the decoder reads the larger one.
    split = "[0:v]split[a][b];[a]scale=160:90,setsar=1[small]"
    made["two-streams"] = _make(
        [*clip[:4], "-filter_complex", f"{split};[b]scale=320:136[big]", "-map", "[small]", "-map", "[big]", *x264],
        folder / "two-streams.mp4",
    )
    made["h264.ts"] = _make([*clip, *x264], folder / "h264.ts")
    made["mpeg2.ts"] = _make([*clip, "-c:v", "mpeg2video", "-q:v", "3"], folder / "mpeg2.ts")
    made["h264.m2ts"] = _make([*clip, *x264, "-f", "mpegts", "-mpegts_m2ts_mode", "1"], folder / "h264.m2ts")
    made["gif"] = _make([*clip[:4], "-vf", "scale=80:34"], folder / "moving.gif")
    made["mkv"] = _make([*clip, *x264], folder / "whole.mkv")
    made["late.mkv"] = _make([*clip, *x264, "-output_ts_offset", "10"], folder / "late.mkv")  # starts at 10 s
    cut = (folder / "whole.mkv").read_bytes()
    made["cut.mkv"] = folder / "cut.mkv"  # a download stopped at 60%: Matroska keeps the whole length in its header
    made["cut.mkv"].write_bytes(cut[: int(len(cut) * 0.6)])
    for side in (16, 48):  # decord hands these sizes over with row padding counted as channels
        made[f"tiny{side}"] = _make(["-i", str(bikes), "-t", "3", "-vf", f"scale={side}:{side}", *x264],
                                    folder / f"tiny{side}.mp4")  # fmt: skip
    return made


def _frame_times(path: Path) -> list[float]:
    """Each frame's presentation time from ffprobe, first frame at 0 (the reference, independent of our code)."""
    done = subprocess.run(
        ["ffprobe", "-v", "error", "-select_streams", "v:0", "-show_entries", "frame=pts_time", "-of", "json",
         str(path)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    times = sorted(float(f["pts_time"]) for f in json.loads(done.stdout)["frames"])
    return [t - times[0] for t in times]


def _decode(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The video record and shot rows the ingest decode task makes of one file."""
    options = SampleOptions.from_settings(Settings(), frame_size=load_encoder("handcrafted").frame_size)
    job = DecodeJob(
        options=options, max_duration_s=3600.0, max_pixels=3840 * 2160, max_frames=1_000_000, probe_timeout_s=60.0,
        encoder="handcrafted",
    )  # fmt: skip
    batch = pa.Table.from_pylist([{"uri": str(path), "size": path.stat().st_size, "video_id": path.stem}])
    rows = [row for table in decode_title(batch, job) for row in table.to_pylist()]
    video = json.loads(rows[-1]["video"])["record"]
    return video, [r for r in rows if r["kind"] == "shot"]


def test_shot_times_on_a_variable_frame_rate_title_follow_its_timestamps(footage: dict[str, Path]) -> None:
    path = footage["vfr"]
    truth = _frame_times(path)
    info = probe(str(path), max_duration_s=3600.0, max_pixels=10**8)
    assert info.frame_times is not None, "a stream whose frames run at two rates is variable-rate"
    video, shots = _decode(path)
    assert "error" not in video and video["n_shots"] == len(shots), video
    n = len(truth)
    frame = 1.0 / FIRST_FPS
    for shot in shots:
        assert shot["start_s"] == pytest.approx(truth[shot["start_frame"]], abs=1e-3), shot["start_frame"]
        end = truth[shot["end_frame"]] if shot["end_frame"] < n else video["duration_s"]
        assert shot["end_s"] == pytest.approx(end, abs=1e-3), shot["end_frame"]
    # The cut to bigbuckbunny is frame 100, at 4.0 s; index / average fps would put it at ~7.4 s.
    cut = min(shots, key=lambda s: abs(s["start_frame"] - FIRST_PART_S * FIRST_FPS))
    assert abs(cut["start_frame"] - FIRST_PART_S * FIRST_FPS) <= 1
    assert cut["start_s"] == pytest.approx(FIRST_PART_S, abs=1.5 * frame)
    assert cut["start_frame"] / info.fps > FIRST_PART_S + 2.0, "the average rate alone would misplace this cut"
    # The title ends when its last frame does: after that frame starts, at most one (slow) frame later.
    assert truth[-1] < video["duration_s"] <= truth[-1] + SLOW * frame + 1e-3


def test_a_constant_rate_title_keeps_frame_over_fps_times(sample_videos_dir: Path) -> None:
    path = sample_videos_dir / "bikes.mp4"
    info = probe(str(path), max_duration_s=3600.0, max_pixels=10**8)
    assert info.frame_times is None
    _video, shots = _decode(path)
    assert len(shots) >= 2
    assert all(s["start_s"] == s["start_frame"] / info.fps and s["end_s"] == s["end_frame"] / info.fps for s in shots)


@pytest.mark.parametrize("kind", ["h264.avi", "xvid.avi", "mpeg1.mpg", "flv1.flv"])
def test_containers_without_frame_times_keep_constant_rate_times(footage: dict[str, Path], kind: str) -> None:
    """AVI, MPEG program streams and FLV give the decoder placeholder or partial frame times: they once read as
    a variable rate, so an AVI landed with every shot at 0.0 s and an .mpg was refused as 3.7e17 s long."""
    path = footage[kind]
    info = probe(str(path), max_duration_s=3600.0, max_pixels=10**8)
    assert info.frame_times is None and info.fps == 25.0
    assert info.duration_s == pytest.approx(3.0, abs=2 / 25)  # 75 frames; packed B-frames may hide 2
    video, shots = _decode(path)
    assert "error" not in video and video["duration_s"] == pytest.approx(info.duration_s)
    assert all(s["start_s"] == s["start_frame"] / 25.0 and s["end_s"] == s["end_frame"] / 25.0 for s in shots)
    # the same three seconds in MP4: the same cuts, give or take the frames a packed B-frame stream hides
    _, reference = _decode(footage["mp4"])
    cuts = [s["start_frame"] for s in shots[1:]]
    assert len(cuts) == len(reference) - 1 and len(cuts) >= 1
    assert all(abs(a - b["start_frame"]) <= 2 for a, b in zip(cuts, reference[1:], strict=True)), (cuts, reference)


@pytest.mark.parametrize("kind", ["h264.ts", "mpeg2.ts", "h264.m2ts"])
def test_a_transport_stream_decodes_from_its_first_frame(footage: dict[str, Path], kind: str) -> None:
    """decord read MPEG-TS one GOP late (its frame 0 was the stream's 12th or 25th), and ffprobe could not size
    H.264 in TS: ingest rewraps a transport stream into Matroska first (annotator_core.media.remux)."""
    path = footage[kind]
    assert is_transport_stream(str(path)) and not is_transport_stream(str(footage["mp4"]))
    raw = subprocess.run(
        [*FFMPEG[:-1], "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    with decodable(str(path)) as readable:
        assert readable != str(path)
        first = decord.VideoReader(readable, num_threads=1).next().asnumpy().astype(int)
    reference = np.frombuffer(raw, np.uint8).reshape(first.shape).astype(int)
    assert np.abs(first - reference).mean() < 2.0  # the same picture (decoders round colours a little differently)
    video, shots = _decode(path)
    assert "error" not in video and video["n_frames"] == 75 and (video["width"], video["height"]) == (320, 136)
    _, mp4_shots = _decode(footage["mp4"])
    assert [s["start_frame"] for s in shots] == [s["start_frame"] for s in mp4_shots]


def test_a_stream_the_decoder_cannot_index_is_transcoded_and_named_to_other_callers(footage: dict[str, Path]) -> None:
    """An animated GIF (or Theora, or a raw elementary stream) once read "unrecognised content, not a video
    container the decoder knows", though ffprobe names its codec. Ingest decodes it from a transcoded copy."""
    with pytest.raises(
        VideoRefused, match=r"cannot count the frames of its gif video stream; transcode it, e\.g\. ffmpeg"
    ):
        probe(str(footage["gif"]), max_duration_s=3600.0, max_pixels=10**8)
    video, shots = _decode(footage["gif"])
    assert "error" not in video and shots and video["n_frames"] == len(_frame_times(footage["gif"])), video
    assert (video["width"], video["height"]) == (80, 34)


def test_a_decoder_error_is_told_without_its_native_log_prefixes() -> None:
    native = (
        "[22:07:03] /github/workspace/src/video/ffmpeg/threaded_decoder.cc:292: [22:07:03] /github/workspace/src/"
        "video/ffmpeg/threaded_decoder.cc:218: Check failed: avcodec_send_packet(dec_ctx_.get(), pkt.get()) >= 0 "
        "(-1094995529 vs. 0) Thread worker: Error sending packet.\n\nStack trace:\n  [bt] (0) libdecord.so"
    )
    assert decoder_reason(RuntimeError(native)) == "Thread worker: Error sending packet."
    assert decoder_reason(RuntimeError("end of file\nmore")) == "end of file"


def test_the_size_is_the_stream_the_decoder_reads_not_the_first_stream(footage: dict[str, Path]) -> None:
    """A preview stream (160x90) before the picture (320x136) once set the size: frames were squashed to 16:9."""
    info = probe(str(footage["two-streams"]), max_duration_s=3600.0, max_pixels=10**8)
    frame = decord.VideoReader(str(footage["two-streams"]), num_threads=1).next().asnumpy()
    assert (info.width, info.height) == (frame.shape[1], frame.shape[0]) == (320, 136)
    video, shots = _decode(footage["two-streams"])
    assert "error" not in video and (video["width"], video["height"]) == (320, 136) and shots


def test_a_matroska_file_cut_short_is_refused_and_one_that_starts_late_is_not(footage: dict[str, Path]) -> None:
    """Matroska plays to where a download stopped, so a cut file once landed at its shorter length, silently."""
    with pytest.raises(
        VideoRefused, match=r"truncated: its container declares 3\.0 s of video, the file holds \d\.\d s \(\d+ frames\)"
    ):
        probe(str(footage["cut.mkv"]), max_duration_s=3600.0, max_pixels=10**8)
    video, shots = _decode(footage["cut.mkv"])
    assert "truncated" in video["error"] and not shots
    # its track's DURATION (13 s) counts from zero; the first frame is at 10 s: 75 frames, all there
    for whole in ("mkv", "late.mkv"):
        info = probe(str(footage[whole]), max_duration_s=3600.0, max_pixels=10**8)
        assert info.n_frames == 75 and info.duration_s == pytest.approx(3.0)


def _scenes(rates: list[int], seconds: float = 2.0) -> list[str]:
    """ffmpeg input and filter arguments for hard cuts between distinct test patterns, ``seconds`` each, the i-th
    at ``rates[i]`` fps (one timebase, so a variable-rate output keeps each frame's own time)."""
    patterns = ["testsrc", "smptebars", "testsrc2"]
    inputs = [
        a for i, r in enumerate(rates) for a in ("-f", "lavfi", "-i", f"{patterns[i]}=d={seconds}:s=320x240:r={r}")
    ]
    parts = "".join(f"[{i}:v]settb=1/600[p{i}];" for i in range(len(rates)))
    joined = "".join(f"[p{i}]" for i in range(len(rates)))
    return [
        *inputs,
        "-filter_complex",
        f"{parts}{joined}concat=n={len(rates)}:v=1:a=0,format=yuv420p[v]",
        "-map",
        "[v]",
    ]


def _cut_times(shots: list[dict[str, Any]]) -> list[float]:
    return [round(s["start_s"], 2) for s in shots[1:]]


def test_a_complete_variable_rate_webm_ingests_and_one_cut_short_is_refused(tmp_path: Path) -> None:
    """A VP8 WebM at 60, then 5, then 30 fps (a screen recording) was refused as "truncated: its container declares
    360 frames, the file holds 190": WebM's average fps is its fastest rate, and 6 s x 60 fps is 360 frames."""
    if not has_encoder("libvpx"):
        pytest.skip("the local ffmpeg has no libvpx, so no VP8 file can be made")
    vp8 = ["-c:v", "libvpx", "-b:v", "300k", "-deadline", "realtime", "-fps_mode", "vfr"]
    path = _make([*_scenes([60, 5, 30]), *vp8], tmp_path / "screen.webm")
    truth = _frame_times(path)
    assert len(truth) == 120 + 10 + 60 and decord.VideoReader(str(path)).get_avg_fps() == 60.0
    video, shots = _decode(path)
    assert "error" not in video and video["n_frames"] == len(truth), video
    assert [s["start_frame"] for s in shots] == [0, 120, 130]
    assert _cut_times(shots) == [2.0, 4.0] and video["duration_s"] == pytest.approx(6.0, abs=0.04)
    whole = path.read_bytes()
    cut = tmp_path / "cut.webm"  # a download stopped at 60%: its track still says 6 s
    cut.write_bytes(whole[: int(len(whole) * 0.6)])
    video, shots = _decode(cut)
    assert video["error"].startswith("truncated: its container declares 6.0 s of video, the file holds ") and not shots


@pytest.mark.parametrize("gap_s", [1.0, 10.0])
def test_a_transport_stream_with_a_gap_in_its_timestamps_keeps_its_frame_times(tmp_path: Path, gap_s: float) -> None:
    """A recording with a dropout (two TS files joined, the second's clock 3 s + the gap after the first's start)
    was refused as "truncated: its container declares 173 frames, the file holds 150", though every frame is
    there; with the truncation check fixed, a 10 s dropout still put every later shot at frame / fps, 10 s early."""
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-f", "mpegts"]
    first = _make([*_scenes([25], seconds=3.0), *x264], tmp_path / "first.ts")
    second = _make(["-f", "lavfi", "-i", "smptebars=d=3:s=320x240:r=25", "-pix_fmt", "yuv420p", *x264,
                    "-output_ts_offset", str(3.0 + gap_s)], tmp_path / "second.ts")  # fmt: skip
    path = tmp_path / "dropout.ts"
    path.write_bytes(first.read_bytes() + second.read_bytes())
    truth = _frame_times(path)
    assert len(truth) == 150 and truth[75] - truth[74] > gap_s / 2, "the join leaves a gap in the timestamps"
    video, shots = _decode(path)
    assert "error" not in video and video["n_frames"] == 150, video
    assert [s["start_frame"] for s in shots] == [0, 75]
    # the second recording starts when its clock says (where a player seeks to it), not at frame 75 / 25 fps = 3 s
    assert shots[1]["start_s"] == pytest.approx(truth[75], abs=1e-3)
    assert video["duration_s"] == pytest.approx(truth[-1] + 1 / 25, abs=1e-3)


@pytest.mark.parametrize("codec", ["libx264", "libvpx"])
def test_a_matroska_file_written_as_a_stream_is_rewrapped_and_ingests(tmp_path: Path, codec: str) -> None:
    """Piped ffmpeg output and a browser's MediaRecorder WebM have no duration or index: refused as "cannot count
    the frames of its h264 video stream; transcode it", blaming the codec, where a packet copy is the fix."""
    if not has_encoder(codec):
        pytest.skip(f"the local ffmpeg has no {codec}")
    form = ["-c:v", "libx264", "-f", "matroska"] if codec == "libx264" else ["-c:v", "libvpx", "-f", "webm"]
    streamed = subprocess.run(
        [*FFMPEG, *_scenes([25, 25]), *form, "-"], capture_output=True, check=True, timeout=120
    ).stdout  # fmt: skip
    path = tmp_path / ("live.mkv" if codec == "libx264" else "live.webm")
    path.write_bytes(streamed)
    assert (rewrap_reason(str(path)) or "").startswith("a Matroska/WebM file with no duration")
    seekable = _make([*_scenes([25]), *form[:2]], tmp_path / "seekable.mkv")  # written to a file: it has a duration
    assert rewrap_reason(str(seekable)) is None
    video, shots = _decode(path)
    assert "error" not in video and video["n_frames"] == 100, video
    assert [s["start_frame"] for s in shots] == [0, 50] and _cut_times(shots) == [2.0]
    # the clip-scoring service decodes an upload through the same rewrap
    clip = embed_clip(path, load_encoder("handcrafted"), settings=Settings())
    assert clip.n_frames == 100 and [s.start_frame for s in clip.shots] == [0, 50]


@pytest.mark.parametrize("side", [16, 48])
def test_tiny_frames_decode_to_the_pixels_ffmpeg_decodes_and_ingest(footage: dict[str, Path], side: int) -> None:
    path = footage[f"tiny{side}"]
    padded = decord.VideoReader(str(path), num_threads=1).next().asnumpy()
    raw = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "rawvideo", "-pix_fmt", "rgb24",
         "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    assert np.array_equal(rgb_frame(padded), np.frombuffer(raw, np.uint8).reshape(side, side, 3))
    video, shots = _decode(path)
    assert "error" not in video and video["n_shots"] == len(shots), video
    assert shots and shots[0]["start_frame"] == 0 and shots[-1]["end_frame"] == video["n_frames"]


def test_a_file_with_no_video_stream_is_refused_as_such(footage: dict[str, Path]) -> None:
    with pytest.raises(VideoRefused, match=r"^no video stream: the file holds only audio or data"):
        probe(str(footage["audio"]), max_duration_s=3600.0, max_pixels=10**8)
    video, shots = _decode(footage["audio"])
    assert (video["status"], shots) == ("failed", [])
    assert video["error"].startswith("no video stream")


def test_a_codec_the_decoder_lacks_is_ingested_from_a_transcoded_copy(footage: dict[str, Path], tmp_path: Path) -> None:
    """AV1 (decord's FFmpeg has no decoder for it) was refused with "transcode it"; now ingest transcodes it. The
    variable-rate title keeps each frame's own time, and the video row the file's own size."""
    if not has_encoder("libaom-av1"):
        pytest.skip("the local ffmpeg has no libaom-av1, so no AV1 file can be made")
    source = footage["vfr"]
    path = _make(
        ["-i", str(source), "-fps_mode", "passthrough", "-c:v", "libaom-av1", "-cpu-used", "8", "-b:v", "300k"],
        tmp_path / "av1.mkv",
    )
    with pytest.raises(VideoRefused, match=r"its video codec \(av1\) cannot be decoded by the ingest decoder"):
        probe(str(path), max_duration_s=3600.0, max_pixels=10**8)  # as it is: what a caller without the copy gets
    with probed(str(path), max_duration_s=3600.0, max_pixels=10**8) as (readable, info):
        assert readable != str(path) and info.transcoded and info.frame_times is not None
    truth = _frame_times(path)
    video, shots = _decode(path)
    assert "error" not in video and video["n_shots"] == len(shots) and video["n_frames"] == len(truth), video
    assert (video["width"], video["height"]) == (480, 270)
    for shot in shots:
        assert shot["start_s"] == pytest.approx(truth[shot["start_frame"]], abs=1e-3), shot["start_frame"]
    _, h264_shots = _decode(source)  # the same frames, decoded from the H.264 file they were made from
    assert [s["start_frame"] for s in shots] == [s["start_frame"] for s in h264_shots]
    # the clip-scoring service decodes an upload through the same copy
    clip = embed_clip(path, load_encoder("handcrafted"), settings=Settings())
    assert clip.n_frames == len(truth) and [s.start_frame for s in clip.shots] == [s["start_frame"] for s in shots]


def test_a_stream_neither_decoder_reads_is_refused_with_both_reasons(sample_videos_dir: Path, tmp_path: Path) -> None:
    if not has_encoder("libaom-av1"):
        pytest.skip("the local ffmpeg has no libaom-av1, so no AV1 file can be made")
    path = _make(
        ["-i", str(sample_videos_dir / "bikes.mp4"), "-t", "2", "-c:v", "libaom-av1", "-cpu-used", "8", "-b:v", "200k",
         "-movflags", "+faststart"],
        tmp_path / "av1.mp4",
    )  # fmt: skip
    data = bytearray(path.read_bytes())
    start = data.index(b"mdat") + 100  # the header (moov, first with +faststart) stays whole, the frames do not
    data[start:] = bytes((b * 31 + 7) % 256 for b in data[start:])
    path.write_bytes(bytes(data))
    video, shots = _decode(path)
    assert (video["status"], shots) == ("failed", []), video
    assert video["error"].startswith(
        "its video codec (av1) cannot be decoded by the ingest decoder (decord), and ffmpeg could not transcode it "
        "either ("
    ), video["error"]


AV1 = ["-c:v", "libaom-av1", "-cpu-used", "8", "-b:v", "300k"]


def _av1(args: list[str], out: Path) -> Path:
    if not has_encoder("libaom-av1"):
        pytest.skip("the local ffmpeg has no libaom-av1, so no AV1 file can be made")
    return _make([*args, *AV1], out)


def test_a_transcoded_variable_rate_title_keeps_each_frames_time_to_the_tick(tmp_path: Path) -> None:
    """The copy's encoder took the stream's nominal rate (25 fps) as its time base: a frame at 2.125 s of the
    8 fps part was stored at 2.12 s, and a browser seeking to a shot there showed the shot before it."""
    path = _av1([*_scenes([25, 8, 8]), "-fps_mode", "passthrough"], tmp_path / "vfr-av1.mkv")
    truth = _frame_times(path)
    with probed(str(path), max_duration_s=3600.0, max_pixels=10**8) as (_readable, info):
        assert info.transcoded and info.frame_times is not None and info.n_frames == len(truth)
        assert np.abs(info.frame_times[:-1] - np.asarray(truth)).max() < 1e-3
    assert any(t % 0.04 > 1e-3 for t in truth), "frames off the 25 fps grid: what a coarse time base rounds"


def test_a_transcoded_title_cut_short_is_refused_as_truncated(tmp_path: Path) -> None:
    """The copy has a whole header of its own, so a download stopped part-way ingested as a shorter title."""
    whole = _av1(_scenes([25, 25, 25]), tmp_path / "whole.mkv")
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    video, shots = _decode(cut)
    assert (video["status"], shots) == ("failed", []), video
    assert video["error"].startswith("truncated: its container declares 6.0 s of video, the file holds"), video


def test_a_damaged_transcoded_title_keeps_every_frame_ffmpeg_decodes_and_says_so(tmp_path: Path) -> None:
    """ffmpeg's AV1 decoder on frame threads stopped at the first damaged packet and still exited 0: the copy
    held 102 of 147 frames and the title lost its end without a word."""
    path = _av1(_scenes([25, 25, 25], seconds=3.0), tmp_path / "damaged.mkv")
    data = bytearray(path.read_bytes())
    for share in (0.3, 0.55, 0.8):  # three stretches of 3 KB overwritten
        at = int(len(data) * share)
        data[at : at + 3000] = bytes((b * 31 + 7) % 256 for b in data[at : at + 3000])
    path.write_bytes(bytes(data))
    counted = subprocess.run(
        ["ffprobe", "-v", "error", "-threads", "1", "-count_frames", "-select_streams", "v:0", "-show_entries",
         "stream=nb_read_frames", "-of", "csv=p=0", str(path)],
        capture_output=True, text=True, check=True, timeout=120,
    ).stdout  # fmt: skip
    video, shots = _decode(path)
    assert video.get("status") != "failed" and video["n_frames"] == int(counted) and shots, video
    assert video["error"].startswith("damaged: ffmpeg reported "), video
    assert shots[-1]["end_s"] > 8.0, "the title keeps its end"


def test_av1_beside_a_smaller_stream_or_under_a_larger_cover_is_read_at_its_own_size(tmp_path: Path) -> None:
    av1 = _av1(_scenes([25, 25, 25]), tmp_path / "av1.mkv")
    preview = _make(["-i", str(av1), "-vf", "scale=160:120", "-c:v", "libx264"], tmp_path / "preview.mp4")
    two = _make(["-i", str(preview), "-i", str(av1), "-map", "0:v", "-map", "1:v", "-c", "copy"], tmp_path / "two.mkv")
    cover = _make(["-f", "lavfi", "-i", "color=red:s=1280x720", "-frames:v", "1"], tmp_path / "cover.jpg")
    covered = _make(
        ["-i", str(cover), "-i", str(av1), "-map", "0", "-map", "1", "-c", "copy", "-disposition:v:0", "attached_pic"],
        tmp_path / "covered.mp4",
    )
    for path in (two, covered):
        video, shots = _decode(path)
        assert "error" not in video and (video["width"], video["height"]) == (320, 240), (path.name, video)
        assert [s["start_frame"] for s in shots] == [0, 50, 100], path.name


@pytest.mark.parametrize(("codec", "pix_fmt"), [("qtrle", "rgb24"), ("smc", "pal8")])
def test_a_codec_the_decoder_misreads_is_ingested_from_a_transcoded_copy(
    tmp_path: Path, codec: str, pix_fmt: str
) -> None:
    """QuickTime Animation decoded without an error but wrongly: a still scene (smptebars, between two moving
    ones) came back as the next scene's frames, so its cut was lost and its thumbnail showed the wrong scene.
    QuickTime Graphics came back in the wrong colours. Both now decode from a transcoded copy."""
    path = _make([*_scenes([25, 25, 25]), "-c:v", codec, "-pix_fmt", pix_fmt], tmp_path / f"{codec}.mov")
    video, shots = _decode(path)
    assert "error" not in video and [s["start_frame"] for s in shots] == [0, 50, 100], (video, shots)
    for shot in shots:  # each thumbnail is its own scene's middle frame, as ffmpeg decodes it from the file
        middle = (shot["start_frame"] + shot["end_frame"]) // 2
        thumb = cv2.imdecode(np.frombuffer(shot["thumbnail"], np.uint8), cv2.IMREAD_COLOR)
        raw = subprocess.run(
            ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vf", f"select=eq(n\\,{middle})",
             "-frames:v", "1", "-s", f"{thumb.shape[1]}x{thumb.shape[0]}", "-f", "rawvideo", "-pix_fmt", "bgr24", "-"],
            capture_output=True, check=True, timeout=60,
        ).stdout  # fmt: skip
        seen = np.frombuffer(raw, np.uint8).reshape(thumb.shape)
        assert np.abs(seen.astype(int) - thumb.astype(int)).mean() < 12, (shot["start_frame"], middle)


@pytest.mark.parametrize(("transfer", "tags"), [("smpte2084", True), ("arib-std-b67", True), ("smpte2084", False)])
def test_hdr_footage_is_tone_mapped_not_shown_dark_and_flat(
    sample_videos_dir: Path, tmp_path: Path, transfer: str, tags: bool
) -> None:
    """An HDR10 (PQ) or HLG title was decoded as if it were SDR: every thumbnail and encoder frame dark and flat
    (mean absolute difference ~45 of 255 from the picture it was made from). Made here from an SDR clip, so that
    clip is the truth: SDR white as 100 nits, 10-bit BT.2020, tagged as HDR footage is. Without its primaries and
    matrix tagged (only the transfer), the tone map refused it: BT.2100's are assumed."""
    if not (has_encoder("libx265") and can_tone_map()):
        pytest.skip("the local ffmpeg lacks libx265 or the zscale and tonemap filters")
    sdr = _make(["-i", str(sample_videos_dir / "bikes.mp4"), "-t", "2", "-c:v", "libx264", "-crf", "10"],
                tmp_path / "sdr.mp4")  # fmt: skip
    to_hdr = (
        "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv,zscale=t=linear:npl=100,"
        f"format=gbrpf32le,zscale=t={transfer}:p=bt2020:m=bt2020nc:r=tv:npl=100,format=yuv420p10le"
    )
    params = f"colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc:log-level=error"
    path = _make(["-i", str(sdr), "-vf", to_hdr, "-c:v", "libx265", "-x265-params", params, "-tag:v", "hvc1"],
                 tmp_path / "hdr.mp4")  # fmt: skip
    if not tags:  # the primaries and matrix set to "unspecified" (2) in the stream itself
        unspecified = "hevc_metadata=colour_primaries=2:matrix_coefficients=2"
        path = _make(["-i", str(path), "-c", "copy", "-bsf:v", unspecified], tmp_path / "untagged.mkv")
    video, shots = _decode(path)
    _, sdr_shots = _decode(sdr)
    assert "error" not in video and (video["width"], video["height"]) == (640, 272), video
    assert [s["start_frame"] for s in shots] == [s["start_frame"] for s in sdr_shots]
    for shot, truth in zip(shots, sdr_shots, strict=True):
        seen = cv2.imdecode(np.frombuffer(shot["thumbnail"], np.uint8), cv2.IMREAD_COLOR).astype(int)
        meant = cv2.imdecode(np.frombuffer(truth["thumbnail"], np.uint8), cv2.IMREAD_COLOR).astype(int)
        assert np.abs(seen - meant).mean() < 12, shot["start_frame"]


@pytest.mark.usefixtures("ray_local")
def test_a_transcoded_title_is_decoded_in_one_pass_not_in_chunks(footage: dict[str, Path], tmp_path: Path) -> None:
    """A chunk task reads the file itself, which the decoder cannot: a transcoded title is not split."""
    if not has_encoder("libaom-av1"):
        pytest.skip("the local ffmpeg has no libaom-av1, so no AV1 file can be made")
    folder = tmp_path / "footage"
    folder.mkdir()
    _make(["-i", str(footage["vfr"]), "-c:v", "libaom-av1", "-cpu-used", "8", "-b:v", "300k"], folder / "av1.webm")
    env = {
        "VA_DATA_DIR": str(tmp_path / "data"), "VA_ENCODER": "handcrafted", "VA_N_CLUSTERS": "2",
        "VA_CHUNK_SECONDS": "2",
    }  # fmt: skip
    result = CliRunner().invoke(cli, ["ingest", str(folder)], env=env, catch_exceptions=False)
    assert result.exit_code == 0 and "0 failed" in result.output, result.output
    (video,) = ShotStore.from_settings(Settings(data_dir=tmp_path / "data")).videos()
    assert video["status"] == "done" and video["n_shots"] >= 2 and not video.get("error"), video


def test_a_turned_recording_is_decoded_as_shown_not_squashed(footage: dict[str, Path]) -> None:
    path = footage["turned"]
    shown = subprocess.run(  # ffmpeg turns the frames as players do; its size is the one a person sees
        # BMP, not PNG: in the whole suite OpenCV's libpng failed on ffmpeg's PNG ("bad parameters to zlib").
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-frames:v", "1", "-f", "image2pipe", "-c:v", "bmp",
         "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    seen = cv2.imdecode(np.frombuffer(shown, np.uint8), cv2.IMREAD_COLOR)
    assert seen is not None, "OpenCV could not read ffmpeg's frame"
    info = probe(str(path), max_duration_s=3600.0, max_pixels=10**8)
    assert (info.height, info.width) == seen.shape[:2]
    _video, shots = _decode(path)
    thumb = cv2.imdecode(np.frombuffer(shots[0]["thumbnail"], np.uint8), cv2.IMREAD_COLOR)
    assert thumb.shape[1] / thumb.shape[0] == pytest.approx(seen.shape[1] / seen.shape[0], rel=0.03)
    # Its pixels are the shown frame's, scaled: not the stored frame squeezed into the shown frame's shape.
    scaled = cv2.resize(seen, (thumb.shape[1], thumb.shape[0]), interpolation=cv2.INTER_AREA)
    assert np.abs(scaled.astype(int) - thumb.astype(int)).mean() < 12


@pytest.mark.parametrize("sar", ["4/3", "32/27"])
def test_non_square_pixels_are_decoded_as_shown_not_squeezed(tmp_path: Path, sar: str) -> None:
    """DV, DVD and HDV store 720x480 or 1440x1080 and are shown wider (a sample aspect ratio): their thumbnails
    and encoder frames came out at the stored 4:3 while every player shows 16:9, the picture squeezed."""
    scenes = _make([*_scenes([25, 25]), "-c:v", "libx264", "-qp", "0"], tmp_path / "square.mkv")
    path = _make(["-i", str(scenes), "-vf", f"scale=480:360,setsar={sar}", "-c:v", "libx264"], tmp_path / "dv.mp4")
    shown = subprocess.run(  # ffmpeg scaled by its sample aspect ratio: the frame a player shows
        ["ffmpeg", "-nostdin", "-v", "error", "-i", str(path), "-vf", "scale=iw*sar:ih,setsar=1", "-frames:v", "1",
         "-f", "image2pipe", "-c:v", "bmp", "-"],
        capture_output=True, check=True, timeout=60,
    ).stdout  # fmt: skip
    seen = cv2.imdecode(np.frombuffer(shown, np.uint8), cv2.IMREAD_COLOR)
    info = probe(str(path), max_duration_s=3600.0, max_pixels=10**8)
    assert info.width / info.height == pytest.approx(seen.shape[1] / seen.shape[0], rel=0.01)
    assert info.width > 480 and info.height == 360
    video, shots = _decode(path)
    assert "error" not in video and [s["start_frame"] for s in shots] == [0, 50], video
    assert (video["width"], video["height"]) == (info.width, info.height)
    thumb = cv2.imdecode(np.frombuffer(shots[0]["thumbnail"], np.uint8), cv2.IMREAD_COLOR)
    assert thumb.shape[1] / thumb.shape[0] == pytest.approx(seen.shape[1] / seen.shape[0], rel=0.02)


@pytest.mark.parametrize(("fps", "seconds"), [(1, 3.0), (1, 2.0), (2, 1.0), (4, 2.0)])
def test_a_timelapse_keeps_cuts_a_few_frames_apart(tmp_path: Path, fps: int, seconds: float) -> None:
    """The shortest shot was 8 frames at every rate: 8 s of a 1 fps timelapse, so scenes 3 s apart made one shot; and
    the adaptive detector's window (2 frames each side) swallowed the cuts around scenes of 2 frames."""
    path = _make([*_scenes([fps] * 3, seconds=seconds), "-c:v", "libx264", "-r", str(fps)], tmp_path / "lapse.mp4")
    video, shots = _decode(path)
    assert "error" not in video and video["n_frames"] == round(3 * seconds * fps), video
    assert _cut_times(shots) == [seconds, 2 * seconds]


def test_a_flash_of_a_few_frames_at_a_high_rate_is_not_a_shot(tmp_path: Path) -> None:
    """At 120 fps 8 frames are 67 ms: a 0.1 s flash of other content passed as a shot of its own."""
    flash = ["-f", "lavfi", "-i", "color=white:s=320x240:r=120:d=0.1"]
    scenes = [
        *flash, "-f", "lavfi", "-i", "testsrc=d=2:s=320x240:r=120",
        "-f", "lavfi", "-i", "smptebars=d=2:s=320x240:r=120",
        "-filter_complex", "[1:v][0:v][2:v]concat=n=3:v=1:a=0,format=yuv420p[v]", "-map", "[v]",
    ]  # fmt: skip
    video, shots = _decode(_make([*scenes, "-c:v", "libx264"], tmp_path / "flash.mp4"))
    assert "error" not in video and video["n_frames"] == 492, video
    assert len(shots) == 2 and all(s["end_s"] - s["start_s"] > 0.32 for s in shots), _cut_times(shots)


def _varies(image: np.ndarray) -> bool:
    """Whether a picture has content across it (a plain card's every channel is one value throughout)."""
    return bool(np.std(image.reshape(-1, image.shape[-1]), axis=0).max() > 30)


def test_a_small_preview_stored_first_is_not_what_is_decoded(tmp_path: Path) -> None:
    """In Matroska the decoder reads the first video stream: a 160x90 preview before the 640x360 picture was
    what every thumbnail and vector came from (upscaled, and here a plain red card, not the picture)."""
    streams = ["-f", "lavfi", "-i", "color=red:s=160x90:r=25:d=3", "-f", "lavfi", "-i", "testsrc2=s=640x360:r=25:d=3"]
    x264 = ["-c:v", "libx264", "-preset", "veryfast", "-pix_fmt", "yuv420p"]
    path = _make([*streams, "-map", "0:v", "-map", "1:v", *x264], tmp_path / "preview-first.mkv")
    assert decord.VideoReader(str(path), num_threads=1).next().shape[:2] == (90, 160), "the decoder's own pick"
    assert probe(str(path), max_duration_s=3600.0, max_pixels=10**8).stream == 1
    video, shots = _decode(path)
    assert "error" not in video and (video["width"], video["height"]) == (640, 360) and shots, video
    thumb = cv2.imdecode(np.frombuffer(shots[0]["thumbnail"], np.uint8), cv2.IMREAD_COLOR)
    assert thumb.shape[:2] == (180, 320) and _varies(thumb), "the picture, not the uniform red preview"
    # a long title's chunk tasks read the file again: the same stream as the title's own task
    options = SampleOptions.from_settings(Settings(), frame_size=load_encoder("handcrafted").frame_size)
    with probed(str(path), max_duration_s=3600.0, max_pixels=10**8) as (_, info):
        plan = plan_chunks(n_frames=info.n_frames, fps=info.fps, chunk_seconds=1.0, min_shot_frames=8)
        (piece,) = _decode_chunk(str(path), info, options, plan[1]).pieces
    assert info.stream == 1 and piece.kept and all(_varies(frame) for _, frame in piece.kept)


def test_a_cut_made_without_re_encoding_ends_where_its_edit_list_does(tmp_path: Path) -> None:
    """`ffmpeg -ss 2.5 -i IN -c copy OUT.mp4` keeps the packets from the keyframe at 2.0 s and an edit list that
    starts at 2.5 s: the decoder skipped the 13 frames before it but counted them, and handed over 13 copies of the
    last frame, so the title ran to 4.0 s, its last shot 0.5 s past the end a player shows (3.5 s)."""
    whole = _make([*_scenes([25, 25, 25]), "-c:v", "libx264", "-g", "25"], tmp_path / "whole.mp4")
    path = _make(["-ss", "2.5", "-i", str(whole), "-c", "copy"], tmp_path / "trimmed.mp4")
    truth = _frame_times(path)  # what a player shows: ffprobe's frames, from the edit's start
    assert len(decord.VideoReader(str(path), num_threads=1)) == 100 and len(truth) == 87
    video, shots = _decode(path)
    assert "error" not in video and video["n_frames"] == len(truth), video
    assert video["duration_s"] == pytest.approx(len(truth) / 25) and shots[-1]["end_frame"] == len(truth)
    # the cut at 4.0 s of the original is 1.5 s into the edit (to within a frame: the edit starts between frames)
    assert [s["start_frame"] for s in shots] == [0, 37] and shots[1]["start_s"] == pytest.approx(1.5, abs=0.04)
