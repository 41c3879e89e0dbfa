"""A shot's video and thumbnail, by shot id only.

The client names a shot; the service looks up the shot's video in LanceDB and
streams the file the ingest recorded (local path or object-store URI) with
HTTP range requests, so the browser can seek to the shot. A source the browser
cannot decode is streamed as its proxy instead (annotator_core.media.proxy). No path from the
client ever reaches the file system: ids with path characters are refused.
"""

from __future__ import annotations

import logging
import mimetypes
import re
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pyarrow.fs as pafs
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import StreamingResponse

from annotator_core.errors import NotFoundError
from annotator_core.media.proxy import ProxyStore, ProxyUnavailable
from serving.annotation.auth import Principal, viewer
from serving.annotation.context import context
from serving.annotation.inputs import check_shot_id
from serving.http_errors import ApiError

CHUNK_BYTES = 256 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")

log = logging.getLogger(__name__)
router = APIRouter(tags=["media"])


def open_video(uri: str) -> tuple[pafs.FileSystem, str, int]:
    """(file system, path, size) of a video the ingest recorded."""
    try:
        if "://" in uri:
            fs, path = pafs.FileSystem.from_uri(uri)
        else:
            fs, path = pafs.LocalFileSystem(), uri
        info = fs.get_file_info(path)
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ApiError(404, "video_unavailable", f"the video file of this shot cannot be opened ({exc}).") from None
    if info.type != pafs.FileType.File:
        raise ApiError(
            404,
            "video_unavailable",
            "the video file of this shot is no longer where it was ingested from; re-ingest the video.",
        )
    return fs, path, int(info.size)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The inclusive byte span of a single-range ``Range`` header; None for the whole file; 416 if unsatisfiable."""
    if not header:
        return None
    first = header.split(",")[0].strip()  # several ranges: serve the first, which browsers never exceed
    match = _RANGE.match(first.replace(" ", ""))
    if not match or (not match.group(1) and not match.group(2)):
        return None  # RFC 9110: a range header we do not understand is ignored
    start_s, end_s = match.groups()
    if start_s:
        start = int(start_s)
        end = min(int(end_s), size - 1) if end_s else size - 1
        if end_s and int(end_s) < start:
            return None
    else:
        length = int(end_s)
        if length == 0:
            raise _unsatisfiable(size)
        start, end = max(0, size - length), size - 1
    if start >= size:
        raise _unsatisfiable(size)
    return start, end


def _unsatisfiable(size: int) -> ApiError:
    return ApiError(
        416,
        "range_not_satisfiable",
        f"the requested range is outside the file ({size} bytes).",
        field="Range",
        headers={"Content-Range": f"bytes */{size}"},  # RFC 9110: a 416 names the current length
        size=size,
    )


def _stream(fs: pafs.FileSystem, path: str, start: int, length: int) -> Iterator[bytes]:
    with fs.open_input_file(path) as fh:
        fh.seek(start)
        remaining = length
        while remaining > 0:
            chunk = fh.read(min(CHUNK_BYTES, remaining))
            if not chunk:
                break
            remaining -= len(chunk)
            yield bytes(chunk)


def _shot(request: Request, shot_id: str, columns: list[str]) -> dict[str, Any]:
    check_shot_id(shot_id)
    return context(request).shots.get_shot(shot_id, columns=columns)


@router.get("/api/shots/{shot_id}/video", response_class=Response)
def shot_video(shot_id: str, request: Request, _caller: Principal = Depends(viewer)) -> Response:
    """The shot's video with HTTP range support: the source, or a browser proxy (X-VA-Rendition says which).

    Seek to X-Shot-Start (seconds); a proxy keeps the source's timeline, so the times mean the same in both.
    """
    ctx = context(request)
    shot = _shot(request, shot_id, ["shot_id", "video_id", "start_s", "end_s"])
    try:
        video = ctx.shots.get_video(shot["video_id"])
    except NotFoundError:
        raise ApiError(404, "video_unavailable", f"the video of shot {shot_id!r} is not in the catalog.") from None
    source = str(video["uri"])
    fs, path, size = open_video(source)  # a source that is gone is a 404, whatever its format
    rendition = "source"
    if ctx.settings.proxy_mode != "off":
        proxies = _proxies(request)
        try:
            if not proxies.playability(str(video["video_id"]), source).playable:
                proxy = _proxy_path(proxies, video_id=str(video["video_id"]), source=source, shot=shot)
                fs, path, size = open_video(proxies.uri(proxy))
                rendition = "proxy"
        except ProxyUnavailable as exc:
            log.warning("shot %s cannot play: %s", shot_id, exc)  # the full reason, paths included, for admins
            reason = _without_paths(str(exc), source=source, proxy_root=str(proxies.root))
            raise ApiError(
                422, "video_unplayable", f"this shot cannot play: {reason}; label it from its thumbnail.", reason=reason
            ) from None
    headers = {
        "Accept-Ranges": "bytes",
        "Cache-Control": "private, max-age=3600",
        "X-Shot-Start": f"{shot['start_s']:.3f}",
        "X-Shot-End": f"{shot['end_s']:.3f}",
        "X-VA-Rendition": rendition,
    }
    return _serve(fs, path, size, request=request, headers=headers)


def _proxies(request: Request) -> ProxyStore:
    """The app's proxy store, made on first use and kept on the app (its per-shot locks are shared)."""
    state = request.app.state
    store: ProxyStore | None = getattr(state, "proxies", None)
    if store is None:
        store = ProxyStore.from_settings(context(request).settings)
        state.proxies = store
    return store


# An absolute path not glued to a word: "/data/x.mov" in "open /data/x.mov: denied", not "a/b" or "s3:".
_ABSOLUTE_PATH = re.compile(r"(?<![\w.])/(?:[^\s/:'\"()]+/)*[^\s/:'\"()]+")


def _without_paths(reason: str, *, source: str, proxy_root: str) -> str:
    """A proxy failure as annotators may read it: the server's folders and files named by role, not by path."""
    reason = reason.replace(proxy_root, "VA_PROXY_DIR").replace(source, "the source file")
    return _ABSOLUTE_PATH.sub("<path>", reason)


def _proxy_path(proxies: ProxyStore, *, video_id: str, source: str, shot: dict[str, Any]) -> str:
    """A title proxy made ahead of time if there is one, else the shot's own, made now if need be."""
    title = proxies.title_path(video_id)
    if proxies.exists(title):
        return title
    return proxies.ensure_shot(
        video_id=video_id, source=source, start_s=float(shot["start_s"]), end_s=float(shot["end_s"])
    )


def _serve(fs: pafs.FileSystem, path: str, size: int, *, request: Request, headers: dict[str, str]) -> Response:
    media_type = mimetypes.guess_type(path)[0] or "application/octet-stream"
    span = parse_range(request.headers.get("range"), size)
    if span is None:
        headers["Content-Length"] = str(size)
        return StreamingResponse(_stream(fs, path, 0, size), media_type=media_type, headers=headers)
    start, end = span
    headers["Content-Range"] = f"bytes {start}-{end}/{size}"
    headers["Content-Length"] = str(end - start + 1)
    return StreamingResponse(
        _stream(fs, path, start, end - start + 1), status_code=206, media_type=media_type, headers=headers
    )


@router.get("/api/shots/{shot_id}/thumbnail", response_class=Response)
def shot_thumbnail(shot_id: str, request: Request, _caller: Principal = Depends(viewer)) -> Response:
    """The shot's JPEG thumbnail."""
    shot = _shot(request, shot_id, ["shot_id", "thumbnail"])
    data = bytes(shot["thumbnail"] or b"")
    if not data:
        raise ApiError(404, "not_found", f"shot {shot_id!r} has no thumbnail; re-ingest its video.")
    return Response(data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=86400"})
