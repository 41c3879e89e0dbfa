"""Every shot plays in the browser: sources a browser cannot decode are served as H.264 proxies (issue 17).

Real files in catalog formats (made with ffmpeg), ingested by the real pipeline, served by the real app:
the H.264 MP4 is streamed as it is; the AVI, HEVC and ProRes titles play from proxies that keep the
source's timeline; a rerun makes nothing new; a proxy that cannot be made leaves the shot labelable and
the API says why.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from proxy_formats import make_format_clips, require_hevc
from va_testing import assert_error, serve_annotation_app

# The module ingests four titles with Ray first: over 300 s when the shared machine is loaded.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
EDITOR = "proxy-editor"


@dataclass
class Catalog:
    url: str
    settings: Any
    token: str
    files: dict[str, Path]
    shots: dict[str, list[dict[str, Any]]]  # format -> its shots (shot_id, start_s, end_s)

    def client(self, url: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.token}"}
        return httpx.Client(base_url=url or self.url, headers=headers, timeout=120)


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory, sample_videos_dir: Path) -> Iterator[Catalog]:
    """The four formats ingested by the real pipeline (handcrafted encoder) and served on a free port."""
    from annotator_core.settings import Settings
    from annotator_core.shot_store import ShotStore
    from annotator_core.store import AnnotationStore
    from pipelines.ingest import run_ingest

    root = tmp_path_factory.mktemp("proxies")
    files = make_format_clips(sample_videos_dir / "bikes.mp4", root / "footage")
    settings = Settings(data_dir=root / "data", encoder="handcrafted", n_clusters=2, session_secret="test-secret")
    summary = run_ingest([str(p) for p in files.values()], settings=settings, encoder_spec="handcrafted")
    assert summary.videos_failed == 0, summary.failures
    store = ShotStore.from_settings(settings)
    by_uri = {str(v["uri"]): str(v["video_id"]) for v in store.videos(status="done")}
    shots: dict[str, list[dict[str, Any]]] = {}
    for name, path in files.items():
        video_id = by_uri[str(path)]
        shots[name] = sorted(store.shots_of_video(video_id), key=lambda r: r["start_s"])
    annotations = AnnotationStore.from_settings(settings)
    token = annotations.users.create(EDITOR, "annotator")[1]
    annotations.db.close()
    with serve_annotation_app(settings) as url:
        yield Catalog(url=url, settings=settings, token=token, files=files, shots=shots)


def _proxy_files(settings: Any) -> dict[str, int]:
    folder = Path(settings.data_dir) / "proxies"
    return {str(p): p.stat().st_mtime_ns for p in folder.rglob("*.mp4")} if folder.exists() else {}


def _probe(data: bytes, folder: Path) -> dict[str, Any]:
    path = folder / "served.bin"
    path.write_bytes(data)
    entries = "stream=codec_name,pix_fmt,height,start_time,duration:format=format_name"
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", entries, "-of", "json", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout))


def test_h264_mp4_is_served_as_it_is(catalog: Catalog) -> None:
    with catalog.client() as client:
        shot = catalog.shots["h264"][0]
        r = client.get(f"/api/shots/{shot['shot_id']}/video")
        assert r.status_code == 200, r.text[:300]
        assert r.headers["x-va-rendition"] == "source"
        assert r.content == catalog.files["h264"].read_bytes()
    assert not any("h264" in p for p in _proxy_files(catalog.settings))


@pytest.mark.parametrize("name", ["mpeg4-avi", "hevc", "prores"])
def test_unplayable_formats_play_from_an_h264_proxy_on_the_source_timeline(
    catalog: Catalog, name: str, tmp_path: Path
) -> None:
    if name == "hevc":
        require_hevc()
    with catalog.client() as client:
        for shot in catalog.shots[name]:
            r = client.get(f"/api/shots/{shot['shot_id']}/video")
            assert r.status_code == 200, r.text[:300]
            assert r.headers["x-va-rendition"] == "proxy"
            assert r.headers["content-type"] == "video/mp4"
            assert float(r.headers["x-shot-start"]) == pytest.approx(shot["start_s"], abs=1e-3)
            found = _probe(r.content, tmp_path)
            stream = found["streams"][0]
            assert (stream["codec_name"], stream["pix_fmt"]) == ("h264", "yuv420p")
            assert stream["height"] % 2 == 0 and stream["height"] <= catalog.settings.proxy_height
            # The proxy's first frame is the shot's start in the source's time, so #t=start,end still holds.
            assert float(stream["start_time"]) == pytest.approx(shot["start_s"], abs=0.05)
            end = float(stream["start_time"]) + float(stream["duration"])
            assert end == pytest.approx(shot["end_s"], abs=0.1)
            # Range requests work on the proxy as on a source.
            size = len(r.content)
            part = client.get(f"/api/shots/{shot['shot_id']}/video", headers={"Range": "bytes=10-99"})
            assert part.status_code == 206 and part.content == r.content[10:100]
            assert part.headers["content-range"] == f"bytes 10-99/{size}"


def test_a_rerun_makes_no_new_proxies(catalog: Catalog) -> None:
    from annotator_core.media.proxy import ProxyStore, make_title_proxies
    from annotator_core.shot_store import ShotStore
    from pipelines.ingest import run_ingest

    with catalog.client() as client:
        shot = catalog.shots["prores"][0]["shot_id"]
        assert client.get(f"/api/shots/{shot}/video").headers["x-va-rendition"] == "proxy"
        before = _proxy_files(catalog.settings)
        assert before
        assert client.get(f"/api/shots/{shot}/video").headers["x-va-rendition"] == "proxy"
        assert _proxy_files(catalog.settings) == before  # played again: served from the cache

    # Title proxies made ahead of time (`va proxies`): once, then reused, and then preferred by the service.
    videos = ShotStore.from_settings(catalog.settings).videos(status="done")
    store = ProxyStore.from_settings(catalog.settings)
    first = make_title_proxies(videos, store=store, concurrency=1)
    n_unplayable = len(catalog.files) - 1
    assert (first.playable, first.made, first.reused, first.n_failed) == (1, n_unplayable, 0, 0)
    titles = _proxy_files(catalog.settings)
    second = make_title_proxies(videos, store=store, concurrency=1)
    assert (second.made, second.reused) == (0, n_unplayable)
    again = run_ingest([str(p) for p in catalog.files.values()], settings=catalog.settings, encoder_spec="handcrafted")
    assert again.videos_skipped == len(catalog.files)
    assert _proxy_files(catalog.settings) == titles
    title = store.title_path(catalog.shots["mpeg4-avi"][0]["video_id"])
    with catalog.client() as client:
        r = client.get(f"/api/shots/{catalog.shots['mpeg4-avi'][-1]['shot_id']}/video", headers={"Range": "bytes=0-"})
        assert r.status_code == 206 and r.headers["x-va-rendition"] == "proxy"
        assert r.headers["content-range"].endswith(f"/{os.path.getsize(title)}")  # the title proxy, not a shot's
    assert _proxy_files(catalog.settings) == titles


def test_a_shot_whose_proxy_fails_stays_labelable_and_the_api_says_why(catalog: Catalog, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the proxy folder should be")
    broken = catalog.settings.model_copy(update={"proxy_dir": str(blocker / "proxies")})
    shot = catalog.shots["prores"][-1]["shot_id"]
    with serve_annotation_app(broken) as url, catalog.client(url) as client:
        error = assert_error(client.get(f"/api/shots/{shot}/video"), 422, "video_unplayable")
        assert error["message"].startswith("this shot cannot play: ")
        assert "label it from its thumbnail" in error["message"]
        assert "the proxy folder VA_PROXY_DIR cannot be written" in error["reason"]
        assert str(tmp_path) not in error["message"] + error["reason"]  # no server path reaches an annotator
        assert client.get(f"/api/shots/{shot}/thumbnail").status_code == 200
        client.post("/api/labels", json={"name": "bikes"})
        put = client.put(f"/api/labels/bikes/annotations/{shot}", json={"value": True, "expected_version": 0})
        assert put.status_code == 200 and put.json()["value"] is True
        # A playable source needs no proxy, so the broken folder does not matter to it.
        ok = client.get(f"/api/shots/{catalog.shots['h264'][0]['shot_id']}/video")
        assert ok.status_code == 200 and ok.headers["x-va-rendition"] == "source"


def test_va_proxies_reuses_what_is_made_and_va_status_counts_unplayable_titles(catalog: Catalog) -> None:
    from click.testing import CliRunner

    from va_cli.main import cli

    env = {"VA_DATA_DIR": str(catalog.settings.data_dir), "VA_ENCODER": "handcrafted"}
    runner = CliRunner()
    n_unplayable = len(catalog.files) - 1
    for _ in range(2):  # whatever the tests before made, the second run makes nothing
        done = runner.invoke(cli, ["proxies"], env=env)
        assert done.exit_code == 0, done.output
    assert f"playable as they are: 1; made: 0; reused: {n_unplayable}; failed: 0" in done.output
    status = runner.invoke(cli, ["status", "--json"], env=env)
    assert json.loads(status.output)["proxies"]["unplayable"] == 0

    # A proxy folder that cannot be written: every title needing a proxy fails, and says why.
    blocked = Path(catalog.settings.data_dir) / "blocked"
    blocked.write_text("a file where the proxy folder should be")
    failing = runner.invoke(cli, ["proxies"], env={**env, "VA_PROXY_DIR": str(blocked / "proxies")})
    assert failing.exit_code == 1 and f"failed: {n_unplayable}" in failing.output
    assert "cannot be written" in failing.output

    # ffmpeg given no time to make a proxy: each failure is recorded, and `va status` counts those titles.
    rushed = {**env, "VA_PROXY_DIR": str(Path(catalog.settings.data_dir) / "rushed"), "VA_PROXY_TIMEOUT_S": "0.001"}
    assert runner.invoke(cli, ["proxies"], env=rushed).exit_code == 1
    status = runner.invoke(cli, ["status", "--json"], env=rushed)
    assert json.loads(status.output)["proxies"]["unplayable"] == n_unplayable


@pytest.mark.parametrize(
    ("name", "pix_fmt", "playable"),
    [("clip.webm", "yuv420p", True), ("clip.mkv", "yuv420p", False), ("deep.webm", "yuv444p", False)],
)
def test_webm_codecs_play_as_they_are_only_in_a_webm_file_at_8_bit_4_2_0(
    tmp_path: Path, name: str, pix_fmt: str, playable: bool
) -> None:
    """ffprobe names Matroska and WebM alike ("matroska,webm"), so a VP9 or AV1 .mkv was served as it is, as
    video/x-matroska, which Firefox and Safari do not play; 4:4:4 VP9 plays in few browsers."""
    from annotator_core.media.proxy import judge_playability

    path = tmp_path / name
    subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-f", "lavfi", "-i", "testsrc=d=1:s=320x240:r=25", "-c:v",
         "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-pix_fmt", pix_fmt, str(path)],
        check=True, timeout=120,
    )  # fmt: skip
    judged = judge_playability(str(path))
    assert (judged.playable, judged.video_codec) == (playable, "vp9"), judged
    if name.endswith(".mkv"):
        assert judged.reason == "a Matroska file named .mkv (browsers play WebM files, named .webm)"


def test_an_hdr_title_plays_from_a_tone_mapped_proxy_not_a_dark_flat_one(
    sample_videos_dir: Path, tmp_path: Path
) -> None:
    """An 8-bit proxy of HDR frames played dark and flat: 45/255 from the picture, as the ingest decode did."""
    from annotator_core.media.hdr import can_tone_map
    from annotator_core.media.proxy import ProxyOptions, ProxyStore
    from annotator_core.settings import Settings

    if not can_tone_map():
        pytest.skip("the local ffmpeg lacks the zscale and tonemap filters")
    ffmpeg = ["ffmpeg", "-nostdin", "-v", "error"]
    sdr, hdr = tmp_path / "sdr.mp4", tmp_path / "hdr.mp4"
    subprocess.run([*ffmpeg, "-i", str(sample_videos_dir / "bikes.mp4"), "-t", "2", "-c:v", "libx264", "-crf", "10",
                    str(sdr)], check=True, timeout=120)  # fmt: skip
    to_pq = (
        "setparams=color_primaries=bt709:color_trc=bt709:colorspace=bt709:range=tv,zscale=t=linear:npl=100,"
        "format=gbrpf32le,zscale=t=smpte2084:p=bt2020:m=bt2020nc:r=tv:npl=100,format=yuv420p10le"
    )
    params = "colorprim=bt2020:transfer=smpte2084:colormatrix=bt2020nc:log-level=error"
    subprocess.run([*ffmpeg, "-i", str(sdr), "-vf", to_pq, "-c:v", "libx265", "-x265-params", params, "-tag:v", "hvc1",
                    str(hdr)], check=True, timeout=300)  # fmt: skip
    store = ProxyStore(ProxyOptions.from_settings(Settings(data_dir=tmp_path / "data")))
    judged = store.playability("hdr-title", str(hdr))
    assert (judged.playable, judged.hdr) == (False, True), judged
    proxy, made = store.ensure_title(video_id="hdr-title", source=str(hdr))
    assert made

    def frame(path: str) -> np.ndarray:
        args = ["-ss", "1", "-i", path, "-frames:v", "1", "-s", "320x136", "-f", "rawvideo", "-pix_fmt", "rgb24", "-"]
        raw = subprocess.run([*ffmpeg, *args], capture_output=True, check=True, timeout=60).stdout
        return np.frombuffer(raw, np.uint8).reshape(136, 320, 3).astype(int)

    assert np.abs(frame(store.uri(proxy)) - frame(str(sdr))).mean() < 12
