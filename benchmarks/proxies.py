"""Browser proxies (issue 17): time to the first frame of a shot in Chromium, and the ingest-time cost.

(a) **On demand.** One 720p MPEG-4 Part 2 AVI (browsers cannot play it), ``--title-seconds`` long, made
with ffmpeg from the real bigbuckbunny clip, is written to a fresh LanceDB with ``--shots`` shots spread
over it, and served by the real app. A real headless Chromium plays each shot: the time from setting the
``<video>``'s src (``…/video#t=start,end``) to ``readyState >= 2`` is measured the first time (the service
makes the shot's proxy then) and again (cached proxy), next to the same shots of an H.264 MP4 served as it is.
Goals: first play <= 3 s, cached <= 1 s.

(b) **At ingest.** ``--titles`` such AVIs are ingested by ``run_ingest`` (handcrafted encoder) twice, into
fresh stores: with VA_PROXY_MODE=off and with VA_PROXY_MODE=ingest (whole-title proxies after the
pipeline). Goal: ingest with proxies <= 1.3x ingest without.

The machine may be shared: the load average is printed with the figures.

    .venv/bin/python benchmarks/proxies.py --title-seconds 120 --shots 6 --titles 3
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

CHROMIUM = "/usr/bin/chromium"
SHOT_S = 3.0


def make_title(source: Path, out: Path, *, seconds: float, codec: str, flip: bool = False) -> Path:
    """A 720p title of ``seconds`` by looping the clip: mpeg4 in AVI or libx264 in MP4."""
    video = (
        ["-c:v", "mpeg4", "-q:v", "4", "-g", "250"] if codec == "mpeg4" else ["-c:v", "libx264", "-preset", "veryfast"]
    )
    video += ["-pix_fmt", "yuv420p"]
    filters = "scale=1280:720" + (",hflip" if flip else "")
    args = ["ffmpeg", "-nostdin", "-v", "error", "-y", "-stream_loop", "-1", "-i", str(source), "-t", str(seconds)]
    subprocess.run([*args, "-vf", filters, *video, "-an", str(out)], check=True)
    return out


def write_title(settings: Any, path: Path, *, video_id: str, seconds: float, n_shots: int) -> list[dict[str, Any]]:
    """The title and ``n_shots`` shots spread over it, written straight to LanceDB (no ingest needed)."""
    import numpy as np

    from annotator_core.encoders import l2_normalise
    from annotator_core.shot_store import ShotStore

    store = ShotStore.from_settings(settings)
    store.upsert_videos(
        [dict(video_id=video_id, uri=str(path), title=path.name, duration_s=seconds, fps=25.0, width=1280,
              height=720, n_frames=int(seconds * 25), n_shots=n_shots, status="done", error="",
              ingested_at=datetime.now(UTC), encoder="handcrafted")]
    )  # fmt: skip
    rng = np.random.default_rng(0)
    starts = [round((seconds - SHOT_S - 1) * i / max(n_shots - 1, 1), 2) for i in range(n_shots)]
    shots = [
        dict(shot_id=f"{video_id}:{int(s * 25)}", video_id=video_id, start_frame=int(s * 25),
             end_frame=int((s + SHOT_S) * 25), start_s=s, end_s=s + SHOT_S, thumbnail=b"", cluster_id=0,
             encoder="handcrafted", vector=l2_normalise(rng.normal(size=64)).tolist())
        for s in starts
    ]  # fmt: skip
    store.upsert_shots(shots)
    return shots


FIRST_FRAME_JS = """async ([src, start]) => {
  const v = document.createElement("video");
  v.muted = true; v.preload = "auto";
  document.body.append(v);
  const t0 = performance.now();
  v.src = src;
  await new Promise((done, fail) => {
    const check = () => { if (v.readyState >= 2 && Math.abs(v.currentTime - start) < 0.2) done(); };
    v.addEventListener("loadeddata", check); v.addEventListener("seeked", check); v.addEventListener("canplay", check);
    v.addEventListener("error", () => fail(new Error("video error " + (v.error && v.error.message))));
  });
  const ms = performance.now() - t0;
  v.remove();
  return ms;
}"""


def first_frame_ms(page: Any, url: str, shot: dict[str, Any], tag: str) -> float:
    src = f"{url}/api/shots/{shot['shot_id']}/video?{tag}#t={shot['start_s']:.3f},{shot['end_s']:.3f}"
    return float(page.evaluate(FIRST_FRAME_JS, [src, shot["start_s"]]))


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def on_demand(root: Path, source: Path, *, seconds: float, n_shots: int) -> None:
    from playwright.sync_api import sync_playwright
    from va_testing import serve_annotation_app

    from annotator_core.settings import Settings
    from annotator_core.store import AnnotationStore

    settings = Settings(data_dir=root / "on-demand", encoder="handcrafted", session_secret="bench")
    avi = make_title(source, root / "archive.avi", seconds=seconds, codec="mpeg4")
    mp4 = make_title(source, root / "h264.mp4", seconds=seconds, codec="h264", flip=True)
    shots = {
        "proxy": write_title(settings, avi, video_id="a" * 32, seconds=seconds, n_shots=n_shots),
        "source": write_title(settings, mp4, video_id="b" * 32, seconds=seconds, n_shots=n_shots),
    }
    annotations = AnnotationStore.from_settings(settings)
    token = annotations.users.create("bench", "viewer")[1]
    annotations.db.close()
    with serve_annotation_app(settings) as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        context = browser.new_context(extra_http_headers={"Authorization": f"Bearer {token}"})
        page = context.new_page()
        page.goto(f"{url}/api/health")
        print(f"(a) on demand: {seconds:g} s 1280x720 title, {n_shots} shots of {SHOT_S:g} s spread over it")
        for kind, rows in shots.items():
            cpu0 = _children_cpu_s()  # the service runs in this process: ffprobe/ffmpeg are our children
            first = [first_frame_ms(page, url, s, "first") for s in rows]
            cpu = (_children_cpu_s() - cpu0) / len(rows)
            cached = [first_frame_ms(page, url, s, "again") for s in rows]
            label = "MPEG-4 AVI via proxy" if kind == "proxy" else "H.264 MP4 as it is "
            print(
                f"  {label}  first play: median {statistics.median(first):6.0f} ms, max {max(first):6.0f} ms | "
                f"again: median {statistics.median(cached):5.0f} ms, max {max(cached):5.0f} ms | "
                f"ffmpeg+ffprobe CPU per first play {cpu:.2f} s (independent of load)"
            )
        browser.close()


def at_ingest(root: Path, source: Path, *, seconds: float, n_titles: int) -> None:
    from annotator_core.settings import Settings
    from pipelines.ingest import run_ingest

    # Each title differs (flipped or not, and its length), so each has its own fingerprint.
    titles = [
        make_title(source, root / f"title_{i}.avi", seconds=seconds + i, codec="mpeg4", flip=bool(i % 2))
        for i in range(n_titles)
    ]
    times = {}
    for mode in ("off", "ingest"):
        settings = Settings(data_dir=root / f"ingest-{mode}", encoder="handcrafted", proxy_mode=mode, n_clusters=2)
        t0 = time.perf_counter()
        summary = run_ingest([str(t) for t in titles], settings=settings, encoder_spec="handcrafted")
        times[mode] = time.perf_counter() - t0
        assert summary.videos_failed == 0, summary.failures
        extra = f", of which proxies {summary.stage_seconds.get('proxies', 0.0):.1f} s" if mode == "ingest" else ""
        print(f"  VA_PROXY_MODE={mode:7} ingest {times[mode]:6.1f} s{extra}")
    print(f"(b) at ingest: {n_titles} titles of ~{seconds:g} s: with/without = {times['ingest'] / times['off']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--title-seconds", type=float, default=120.0)
    parser.add_argument("--shots", type=int, default=6)
    parser.add_argument("--titles", type=int, default=3)
    parser.add_argument("--skip-ingest", action="store_true", help="Measure (a) only.")
    args = parser.parse_args()
    from va_testing import sample_clips_dir

    source = sample_clips_dir() / "bigbuckbunny.mp4"
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    with tempfile.TemporaryDirectory(prefix="va-bench-proxies-") as tmp:
        on_demand(Path(tmp), source, seconds=args.title_seconds, n_shots=args.shots)
        print(f"load average: {os.getloadavg()}")
        if not args.skip_ingest:
            at_ingest(Path(tmp), source, seconds=args.title_seconds / 2, n_titles=args.titles)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
