"""Browser-playable proxies: which sources a browser plays as they are, and a compact rendition of the rest.

Annotators judge shots by watching them, and browsers decode few formats: H.264 (8-bit 4:2:0) in MP4/MOV
with AAC or MP3, and VP8/VP9/AV1 in WebM with Opus or Vorbis. A catalog of mezzanine and archive files
(ProRes, DNxHD, HEVC, MPEG-4 Part 2 AVI, MPEG-2) needs a proxy: H.264 in MP4 with ``+faststart`` (or VP9 in
WebM), scaled to ``proxy_height`` with a keyframe every second, so seeking to a shot is instant.

Two kinds of proxy, both in ``proxy_dir/<video_id>/`` (the video's content fingerprint, so a rerun or a
moved file reuses them):

- a **shot proxy**: only ``[start_s, end_s]`` of the source, made on demand the first time a shot is played
  (ffmpeg seeks with ``-ss`` before ``-i``, so it decodes from the keyframe before the shot, not the title);
- a **title proxy**: the whole title, made ahead of time by ``va proxies`` or at ingest.

Both keep the source's timeline (``-output_ts_offset``): a shot proxy's first frame is at ``start_s``,
so the UI's ``#t=start,end`` media fragment means the same in the source and in any proxy.

Every file is written under a temporary name and renamed, so a reader never sees half a proxy. A proxy
that cannot be made (the local ffmpeg lacks the decoder, the disk is full) raises :class:`ProxyUnavailable`
with the reason, and the reason is kept in ``proxy_dir/failed/<video_id>.json`` so ``va status`` can count
the titles without a playable rendition by listing one small folder.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pyarrow.fs as pafs

from annotator_core.errors import ConfigError
from annotator_core.media.hdr import BT709_TAGS, HDR_TRANSFERS, can_tone_map, tone_map_filter
from annotator_core.settings import Settings

ProxyCodec = Literal["h264", "vp9"]
# Container families as ffprobe names them (format_name lists the demuxer's aliases).
MP4_FAMILY = ("mp4", "mov", "m4v")
WEBM_FAMILY = ("webm",)
MP4_VIDEO = {"h264"}
MP4_AUDIO = {"aac", "mp3"}
WEBM_VIDEO = {"vp8", "vp9", "av1"}
WEBM_AUDIO = {"opus", "vorbis"}
# Chromium and Safari decode 8-bit 4:2:0 H.264 only; High 10 or 4:4:4 fail like an unknown codec.
H264_PIXEL_FORMATS = {"yuv420p", "yuvj420p"}
# WebM: 8-bit 4:2:0, with alpha too (VP8/VP9); 10-bit and 4:4:4 VP9/AV1 play in some browsers only (Safari's AV1
# needs the hardware decoder), so those get a proxy.
WEBM_PIXEL_FORMATS = {"yuv420p", "yuva420p"}
FFPROBE_STREAMS = (
    "-v", "error", "-show_entries", "stream=codec_type,codec_name,pix_fmt,color_transfer,color_primaries,color_space"
    ":format=format_name",
    "-of", "json",
)  # fmt: skip
KEYFRAME_EVERY_S = 1.0
FAILED_FOLDER = "failed"  # one <video_id>.json per title whose last proxy failed: cheap to count
# v2: Matroska files not named .webm, and WebM at 10 bits or 4:4:4, are no longer judged playable, and HDR is
# noted (its proxy is tone mapped); the verdicts of the first rules (playability.json) are judged again.
PLAYABILITY_FILE = "playability-v2.json"


class ProxyUnavailable(Exception):
    """No browser-playable rendition can be made; the message says why, for a person."""


@dataclass(frozen=True)
class Playability:
    """Whether a browser plays the source as it is, and if not, why (its container and codecs)."""

    playable: bool
    container: str
    video_codec: str
    audio_codec: str | None
    reason: str  # empty when playable
    hdr: bool = False  # PQ or HLG video: its proxy is tone mapped to SDR (annotator_core.media.hdr)
    primaries: str = ""  # the video's colour primaries and matrix as ffprobe names them (for the tone map)
    matrix: str = ""

    def to_json(self) -> dict[str, object]:
        return {
            "playable": self.playable,
            "container": self.container,
            "video_codec": self.video_codec,
            "audio_codec": self.audio_codec,
            "reason": self.reason,
            "hdr": self.hdr,
            "primaries": self.primaries,
            "matrix": self.matrix,
        }


@dataclass(frozen=True)
class ProxyOptions:
    """How proxies are made and where they live (from the settings)."""

    folder: str  # local folder or object-store URI
    height: int
    codec: ProxyCodec
    timeout_s: float  # making one proxy
    probe_timeout_s: float = 60.0  # reading a source's container (VA_PROBE_TIMEOUT_S)

    @classmethod
    def from_settings(cls, settings: Settings) -> ProxyOptions:
        folder = settings.proxy_dir or str(settings.data_dir / "proxies")
        return cls(
            folder=folder,
            height=settings.proxy_height,
            codec=settings.proxy_codec,
            timeout_s=settings.proxy_timeout_s,
            probe_timeout_s=settings.probe_timeout_s,
        )

    @property
    def suffix(self) -> str:
        return ".mp4" if self.codec == "h264" else ".webm"


def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise ConfigError(f"{name} is not installed; browser proxies need it (apt-get install ffmpeg).")
    return found


def judge_playability(path: str, *, timeout_s: float = 60.0) -> Playability:
    """Probe the container and codecs (ffprobe, no frame decoded) and judge them against what browsers play."""
    try:
        done = subprocess.run(
            [_tool("ffprobe"), *FFPROBE_STREAMS, path],
            capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL,
        )  # fmt: skip
    except subprocess.TimeoutExpired:
        # Not a verdict to keep: the file may be fine and the machine busy.
        raise ProxyUnavailable(f"reading its container took over {timeout_s:g} s (VA_PROBE_TIMEOUT_S)") from None
    try:
        found = json.loads(done.stdout or "{}")
    except json.JSONDecodeError:
        found = {}
    streams = found.get("streams") or []
    container = str((found.get("format") or {}).get("format_name") or "unknown")
    video = next((s for s in streams if s.get("codec_type") == "video"), None)
    audio = next((s for s in streams if s.get("codec_type") == "audio"), None)
    if video is None:
        return Playability(False, container, "none", None, f"ffprobe finds no video stream in {container!r}")
    vcodec, acodec = str(video.get("codec_name")), (str(audio.get("codec_name")) if audio else None)
    families = container.split(",")
    reason = ""
    if any(f in MP4_FAMILY for f in families):
        if vcodec not in MP4_VIDEO:
            reason = f"{vcodec} video in MP4/MOV (browsers play H.264 there)"
        elif str(video.get("pix_fmt")) not in H264_PIXEL_FORMATS:
            reason = f"H.264 with pixel format {video.get('pix_fmt')} (browsers play 8-bit 4:2:0 only)"
        elif acodec is not None and acodec not in MP4_AUDIO:
            reason = f"{acodec} audio in MP4/MOV (browsers play AAC or MP3 there)"
    elif any(f in WEBM_FAMILY for f in families):  # ffprobe names Matroska and WebM alike: "matroska,webm"
        suffix = os.path.splitext(path)[1].lower()
        if vcodec not in WEBM_VIDEO:
            reason = f"{vcodec} video in WebM/Matroska (browsers play VP8, VP9 or AV1 there)"
        elif suffix != ".webm":  # served as video/x-matroska, which Firefox and Safari do not play
            reason = f"a Matroska file named {suffix or 'without a suffix'} (browsers play WebM files, named .webm)"
        elif str(video.get("pix_fmt")) not in WEBM_PIXEL_FORMATS:
            reason = f"{vcodec} with pixel format {video.get('pix_fmt')} (browsers play 8-bit 4:2:0 WebM)"
        elif acodec is not None and acodec not in WEBM_AUDIO:
            reason = f"{acodec} audio in WebM/Matroska (browsers play Opus or Vorbis there)"
    else:
        reason = f"the {families[0]} container with {vcodec} video (browsers play MP4 and WebM)"
    hdr = str(video.get("color_transfer")) in HDR_TRANSFERS
    primaries, matrix = str(video.get("color_primaries") or ""), str(video.get("color_space") or "")
    return Playability(not reason, container, vcodec, acodec, reason, hdr=hdr, primaries=primaries, matrix=matrix)


def ffmpeg_args(
    source: str,
    output: str,
    *,
    options: ProxyOptions,
    start_s: float | None = None,
    end_s: float | None = None,
    tone_map: str = "",
) -> list[str]:
    """The ffmpeg command that writes a proxy of ``source`` (a span of it when start/end are given); ``tone_map``:
    for an HDR source, the filters that bring it to SDR BT.709 (:func:`~annotator_core.media.hdr.tone_map_filter`;
    an 8-bit proxy of HDR frames plays dark and flat)."""
    args = [_tool("ffmpeg"), "-nostdin", "-v", "error", "-y"]
    if start_s is not None:
        args += ["-ss", f"{start_s:.3f}"]  # before -i: seek in the demuxer, decode from the keyframe before
    args += ["-i", source]
    if start_s is not None and end_s is not None:
        args += ["-t", f"{max(end_s - start_s, 0.04):.3f}", "-output_ts_offset", f"{start_s:.3f}"]
    # Even dimensions (4:2:0 needs them); never upscale a source smaller than the proxy height.
    scale = f"scale=-2:'2*trunc(min({options.height},ih)/2)'"
    scale += f",{tone_map},format=yuv420p" if tone_map else ",format=yuv420p"
    args += ["-map", "0:v:0", "-map", "0:a:0?", "-vf", scale, "-sn", "-dn", *(BT709_TAGS if tone_map else ())]
    keyframes = f"expr:gte(t,n_forced*{KEYFRAME_EVERY_S})"
    if options.codec == "h264":
        args += ["-c:v", "libx264", "-preset", "veryfast", "-crf", "26", "-force_key_frames", keyframes]
        args += ["-c:a", "aac", "-b:a", "96k", "-ac", "2", "-movflags", "+faststart", "-f", "mp4"]
    else:
        args += ["-c:v", "libvpx-vp9", "-deadline", "realtime", "-cpu-used", "8", "-b:v", "0", "-crf", "36"]
        args += ["-force_key_frames", keyframes, "-c:a", "libopus", "-b:a", "64k", "-ac", "2", "-f", "webm"]
    return [*args, output]


class ProxyStore:
    """The proxies of one catalog: find, make (atomically, once per key at a time) and record failures."""

    def __init__(self, options: ProxyOptions) -> None:
        self.options = options
        if "://" in options.folder and not options.folder.startswith("file://"):
            self.fs, self.root = pafs.FileSystem.from_uri(options.folder)
        else:
            self.fs, self.root = pafs.LocalFileSystem(), options.folder.removeprefix("file://")
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> ProxyStore:
        return cls(ProxyOptions.from_settings(settings))

    # -- where ---------------------------------------------------------------
    def _folder(self, video_id: str) -> str:
        return f"{self.root.rstrip('/')}/{video_id}"

    def title_path(self, video_id: str) -> str:
        o = self.options
        return f"{self._folder(video_id)}/title-{o.height}p-{o.codec}{o.suffix}"

    def shot_path(self, video_id: str, start_s: float, end_s: float) -> str:
        o = self.options
        span = f"{round(start_s * 1000)}-{round(end_s * 1000)}"
        return f"{self._folder(video_id)}/shot-{span}ms-{o.height}p-{o.codec}{o.suffix}"

    def uri(self, path: str) -> str:
        """A path of this store as open_video expects it (local path, or the store's URI)."""
        if isinstance(self.fs, pafs.LocalFileSystem):
            return path
        return f"{self.fs.type_name}://{path}"

    def exists(self, path: str) -> bool:
        return bool(self.fs.get_file_info(path).type == pafs.FileType.File)

    # -- playability, cached beside the proxies ------------------------------
    def playability(self, video_id: str, source: str) -> Playability:
        """The source's playability, probed once per fingerprint and kept in ``playability-v2.json``."""
        path = f"{self._folder(video_id)}/{PLAYABILITY_FILE}"
        try:
            with self.fs.open_input_stream(path) as fh:
                data = json.loads(fh.read())
            return Playability(**data)
        except (OSError, ValueError, TypeError):
            pass
        with _local_source(source) as local:
            judged = judge_playability(local, timeout_s=self.options.probe_timeout_s)
        with suppress(OSError):  # a read-only or full proxy folder: judge again next time
            self._write_bytes(path, json.dumps(judged.to_json()).encode())
        return judged

    def failure(self, video_id: str) -> str | None:
        """Why this title's last proxy failed, or None."""
        try:
            with self.fs.open_input_stream(self._failure_path(video_id)) as fh:
                return str(json.loads(fh.read())["reason"])
        except (OSError, ValueError, KeyError):
            return None

    def count_failed(self) -> int:
        """Titles whose last proxy could not be made (cheap: one small file per such title)."""
        selector = pafs.FileSelector(f"{self.root.rstrip('/')}/{FAILED_FOLDER}", allow_not_found=True)
        return sum(1 for info in self.fs.get_file_info(selector) if info.base_name.endswith(".json"))

    def _failure_path(self, video_id: str) -> str:
        return f"{self.root.rstrip('/')}/{FAILED_FOLDER}/{video_id}.json"

    # -- making ---------------------------------------------------------------
    def ensure_shot(self, *, video_id: str, source: str, start_s: float, end_s: float) -> str:
        """The path of the shot's proxy, made from ``[start_s, end_s]`` of the source if not there yet."""
        return self._ensure(self.shot_path(video_id, start_s, end_s), video_id, source, start_s, end_s)

    def ensure_title(self, *, video_id: str, source: str) -> tuple[str, bool]:
        """(path of the title proxy, whether it was made now); reused when it exists."""
        path = self.title_path(video_id)
        if self.exists(path):
            return path, False
        return self._ensure(path, video_id, source, None, None), True

    def _ensure(self, path: str, video_id: str, source: str, start_s: float | None, end_s: float | None) -> str:
        with self._lock(path):
            if self.exists(path):
                return path
            try:
                judged = self.playability(video_id, source)
                tone_map = tone_map_filter(judged.primaries, judged.matrix) if judged.hdr and can_tone_map() else ""
                self._make(path, source, start_s, end_s, tone_map=tone_map)
            except ProxyUnavailable as exc:
                self._record_failure(video_id, str(exc))
                raise
            self._clear_failure(video_id)
            return path

    def _make(self, path: str, source: str, start_s: float | None, end_s: float | None, *, tone_map: str = "") -> None:
        suffix = self.options.suffix
        local_out = isinstance(self.fs, pafs.LocalFileSystem)
        if local_out:
            try:
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ProxyUnavailable(
                    f"the proxy folder {self.root} cannot be written ({exc.strerror or exc})"
                ) from None
        with _local_source(source) as local, tempfile.TemporaryDirectory(prefix="va-proxy-") as scratch:
            # The temporary name sits beside the target locally (os.replace is atomic on one file system).
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp" if local_out else f"{scratch}/proxy{suffix}"
            args = ffmpeg_args(local, tmp, options=self.options, start_s=start_s, end_s=end_s, tone_map=tone_map)
            try:
                done = subprocess.run(
                    args, capture_output=True, text=True, timeout=self.options.timeout_s, stdin=subprocess.DEVNULL
                )
            except subprocess.TimeoutExpired:
                _remove(tmp)
                raise ProxyUnavailable(
                    f"making the proxy took over {self.options.timeout_s:g} s (VA_PROXY_TIMEOUT_S)"
                ) from None
            except OSError as exc:
                _remove(tmp)
                raise ProxyUnavailable(f"ffmpeg could not run ({exc.strerror or exc})") from None
            if done.returncode != 0 or not os.path.exists(tmp) or os.path.getsize(tmp) == 0:
                _remove(tmp)
                raise ProxyUnavailable(f"ffmpeg could not make a proxy: {_last_line(done.stderr)}")
            try:
                if local_out:
                    os.replace(tmp, path)
                else:
                    with open(tmp, "rb") as fh:
                        self._write_bytes(path, fh.read())
            except OSError as exc:
                _remove(tmp)
                reason = exc.strerror or exc
                raise ProxyUnavailable(f"the proxy could not be stored in {self.root} ({reason})") from None

    def _write_bytes(self, path: str, data: bytes) -> None:
        if isinstance(self.fs, pafs.LocalFileSystem):
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
            Path(tmp).write_bytes(data)
            os.replace(tmp, path)
            return
        with self.fs.open_output_stream(path) as fh:  # one PUT: atomic on object stores
            fh.write(data)

    def _record_failure(self, video_id: str, reason: str) -> None:
        with suppress(OSError):  # the disk being full is often why we are here
            self._write_bytes(self._failure_path(video_id), json.dumps({"reason": reason}).encode())

    def _clear_failure(self, video_id: str) -> None:
        with suppress(OSError):
            self.fs.delete_file(self._failure_path(video_id))

    @contextmanager
    def _lock(self, key: str) -> Iterator[None]:
        # The browser asks for the same shot's bytes several times while the first ask is being made.
        with self._locks_guard:
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            yield


@dataclass
class TitleProxyReport:
    """What one pass of title proxies did (``va proxies``, or the end of an ingest)."""

    playable: int = 0  # served as they are, no proxy needed
    made: int = 0
    reused: int = 0
    failed: list[tuple[str, str]] | None = None  # (uri, reason)
    seconds: float = 0.0

    @property
    def n_failed(self) -> int:
        return len(self.failed or [])


def make_title_proxies(
    videos: Iterable[Mapping[str, object]], *, store: ProxyStore, concurrency: int = 0, dry_run: bool = False
) -> TitleProxyReport:
    """Whole-title proxies of the videos a browser cannot play; existing ones are reused, failures listed.

    One ffmpeg per title, ``concurrency`` at a time (0: one per CPU); a failure is reported, never raised.
    """
    started = time.perf_counter()
    report = TitleProxyReport(failed=[])
    lock = threading.Lock()

    def one(video: Mapping[str, object]) -> None:
        video_id, uri = str(video["video_id"]), str(video["uri"])
        try:
            if store.playability(video_id, uri).playable:
                outcome = "playable"
            elif dry_run:
                outcome = "reused" if store.exists(store.title_path(video_id)) else "made"
            else:
                outcome = "made" if store.ensure_title(video_id=video_id, source=uri)[1] else "reused"
        except (ProxyUnavailable, OSError) as exc:
            with lock:
                assert report.failed is not None
                report.failed.append((uri, str(exc)))
            return
        with lock:
            setattr(report, outcome, getattr(report, outcome) + 1)

    workers = concurrency or os.cpu_count() or 1
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="va-proxy") as pool:
        list(pool.map(one, videos))
    report.seconds = time.perf_counter() - started
    return report


@contextmanager
def _local_source(uri: str) -> Iterator[str]:
    """A local path ffmpeg can open: the file itself, or a temporary copy of an object-store file."""
    if "://" not in uri or uri.startswith("file://"):
        yield uri.removeprefix("file://")
        return
    fs, path = pafs.FileSystem.from_uri(uri)
    with tempfile.TemporaryDirectory(prefix="va-proxy-src-") as scratch:
        local = os.path.join(scratch, os.path.basename(path) or "source")
        with fs.open_input_stream(path) as src, open(local, "wb") as dst:
            shutil.copyfileobj(src, dst, length=1 << 20)
        yield local


def _remove(path: str) -> None:
    with suppress(OSError):
        os.unlink(path)


def _last_line(stderr: str) -> str:
    lines = [line.strip() for line in (stderr or "").splitlines() if line.strip()]
    return lines[-1] if lines else "no message"
