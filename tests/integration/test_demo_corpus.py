"""The demo corpus: composites cut by ffmpeg from the real sample clips, with their ground truth; encoder choice."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from va_cli.demo import (
    FPS,
    MOTIONS,
    SAMPLE_CLIPS,
    SIZE,
    choose_encoder,
    ensure_demo_admin,
    plan_composites,
    prepare_demo_footage,
)


def _frames(path: Path) -> int:
    out = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "json",
            str(path),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    stream = json.loads(out.stdout)["streams"][0]
    assert (stream["width"], stream["height"]) == SIZE
    return int(stream["nb_read_frames"])


def test_plan_is_deterministic_and_stays_inside_the_clips() -> None:
    durations = {"bikes.mp4": 10.0, "bigbuckbunny.mp4": 5.28, "carphone_pristine.mp4": 4.0}
    plan = plan_composites(durations, seed=3)
    assert plan == plan_composites(durations, seed=3)
    assert plan != plan_composites(durations, seed=4)
    segments = [s for segs in plan.values() for s in segs]
    assert len(segments) >= 40  # a few dozen shots beyond the clips' own
    for s in segments:
        # A still (pans and zooms) is one frame at start_s; a clip segment plays `frames` frames from it.
        used = 0.0 if s.look in MOTIONS else s.frames / FPS
        assert s.start_s >= 0 and s.start_s + used < durations[s.source]


def test_composites_have_the_cuts_their_ground_truth_says(tmp_path: Path, sample_videos_dir: Path) -> None:
    folder = tmp_path / "footage"
    (folder / "clips").mkdir(parents=True)
    for name in SAMPLE_CLIPS:
        shutil.copy(sample_videos_dir / name, folder / "clips" / name)
    videos = prepare_demo_footage(folder)
    composites = [v for v in videos if v.parent == folder]
    assert len(videos) == len(SAMPLE_CLIPS) + len(composites) and len(composites) >= 6
    for video in composites:
        truth = json.loads(video.with_suffix(".cuts.json").read_text())
        segments = truth["segments"]
        assert _frames(video) == segments[-1]["end_frame"]
        assert truth["cuts"] == [s["end_frame"] for s in segments[:-1]]
    # A second run reuses the files instead of cutting them again.
    stamps = {v: v.stat().st_mtime_ns for v in composites}
    assert prepare_demo_footage(folder) == videos
    assert {v: v.stat().st_mtime_ns for v in composites} == stamps


def test_encoder_choice_says_why(make_settings, tmp_path: Path) -> None:
    spec, why = choose_encoder(make_settings(encoder="clip:openai/clip-vit-base-patch32"))
    assert spec == "handcrafted" and "VA_ENCODER=clip:openai/clip-vit-base-patch32" in why
    folder = tmp_path / "clip-weights"
    folder.mkdir()
    spec, why = choose_encoder(make_settings(encoder=f"clip:{folder}"))
    assert spec == f"clip:{folder}" and str(folder) in why
    spec, why = choose_encoder(make_settings(), existing="tiny-clip")
    assert spec == "tiny-clip" and "already" in why


def test_demo_admin_is_made_once(make_settings) -> None:
    from annotator_core.store import AnnotationStore

    settings = make_settings()
    store = AnnotationStore.from_settings(settings)
    name, password, created = ensure_demo_admin(store, settings.data_dir)
    assert created and store.users.check_password(name, password) is not None
    assert ensure_demo_admin(store, settings.data_dir) == (name, password, False)
    assert store.users.get(name).role == "admin"
