"""ASGI middleware of the scoring service: load shedding, clip uploads, and the one error shape.

BentoML answers some errors itself (a body that fails its type checks, an
unknown route, a wrong method or media type) with bodies of its own; its
concurrency limit sits outside any middleware a service adds, so its 429 could
not be reshaped. Here, outermost first:

- :class:`LoadShedding` refuses requests past ``VA_SCORING_MAX_CONCURRENCY``
  with a 429 in the one shape and ``Retry-After`` (probes and metrics pass);
- :class:`serving.limits.BodyLimit` refuses bodies over their route's limit;
- :class:`ClipUpload` lets only an uploaded *file* named ``clip`` reach the
  clip route (BentoML would fetch a text field as a URL: never);
- :class:`ErrorShape` rewrites every error body BentoML makes to the one shape.

A client error is logged as one line with its code, never a traceback (see
:class:`ClientErrorLog`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import tempfile
from collections.abc import Iterable
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from annotator_core.errors import first_line
from serving.http_errors import HTTP_CODES, JSON, error_body, error_headers

log = logging.getLogger("va.scoring")

#: Paths that are never shed: probes must answer while the service is busy.
PROBE_PATHS = ("/livez", "/readyz", "/healthz", "/metrics")
SPOOL_IN_MEMORY_BYTES = 1 << 20


async def answer(send: Send, status_code: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
    """Send a whole JSON error answer."""
    data = json.dumps(body).encode()
    all_headers = {**error_headers(status_code, body), **(headers or {})}
    raw = [(b"content-type", JSON.encode()), (b"content-length", str(len(data)).encode())]
    raw += [(k.lower().encode(), v.encode()) for k, v in all_headers.items()]
    await send({"type": "http.response.start", "status": status_code, "headers": raw})
    await send({"type": "http.response.body", "body": data})


class LoadShedding:
    """At most ``max_concurrency`` requests at once; the rest get 429 with Retry-After at once."""

    def __init__(self, app: ASGIApp, *, max_concurrency: int, skip_paths: Iterable[str] = PROBE_PATHS) -> None:
        self.app = app
        self.max_concurrency = max_concurrency
        self.skip_paths = frozenset(skip_paths)
        self._semaphore: asyncio.Semaphore | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.skip_paths:
            await self.app(scope, receive, send)
            return
        if self._semaphore is None:  # made on the worker's event loop
            self._semaphore = asyncio.Semaphore(self.max_concurrency)
        if self._semaphore.locked():
            message = (
                f"the scoring service is busy ({self.max_concurrency} requests in flight, "
                "VA_SCORING_MAX_CONCURRENCY); retry after the time in Retry-After."
            )
            await answer(send, 429, error_body("too_many_requests", message, retry_after_s=1))
            return
        async with self._semaphore:
            await self.app(scope, receive, send)


class ClipUpload:
    """On ``path``, only multipart bodies whose ``clip`` part is a file (has a filename) get through;
    elsewhere multipart bodies are refused (415).

    The body is spooled (memory up to 1 MiB, then a temporary file) while its part headers are read,
    then handed on unchanged; BodyLimit, outside this, has already bounded it.
    """

    def __init__(self, app: ASGIApp, *, path: str, field: str = "clip") -> None:
        self.app = app
        self.path = path
        self.field = field

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        content_type = headers.get(b"content-type", b"").decode("latin-1")
        if scope["path"] != self.path:
            if content_type.lower().startswith("multipart/"):  # BentoML fails on these with a 500
                refusal = (
                    f"{scope['path']} takes JSON or vectors, not a multipart form; only {self.path} takes uploads."
                )
                body = error_body("unsupported_media_type", refusal, field="Content-Type", expected=JSON)
                await answer(send, 415, body)
                return
            await self.app(scope, receive, send)
            return
        if not content_type.lower().startswith("multipart/form-data"):
            await self._refuse(send, f"the request is {content_type or 'not multipart'!s}")
            return
        from python_multipart.multipart import parse_options_header

        boundary = parse_options_header(content_type)[1].get(b"boundary")
        if not boundary:
            await self._refuse(send, "the multipart body has no boundary")
            return
        parts = _PartHeaders(boundary)
        spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY_BYTES)  # noqa: SIM115 - closed below
        try:
            while True:
                message = await receive()
                if message["type"] != "http.request":
                    return  # the client went away
                chunk = message.get("body", b"")
                spool.write(chunk)
                parts.feed(chunk)
                if not message.get("more_body", False):
                    break
            kind = parts.kinds.get(self.field)
            if kind != "file":
                what = "a text field" if kind == "text" else "missing"
                await self._refuse(send, f"the form field {self.field!r} is {what}")
                return
            spool.seek(0)
            done = False

            async def replay() -> Message:
                nonlocal done
                if done:
                    return await receive()
                chunk = spool.read(SPOOL_IN_MEMORY_BYTES)
                done = len(chunk) < SPOOL_IN_MEMORY_BYTES
                return {"type": "http.request", "body": chunk, "more_body": not done}

            await self.app(scope, replay, send)
        finally:
            spool.close()

    async def _refuse(self, send: Send, why: str) -> None:
        message = (
            f"{why}; a clip is an uploaded file only: send multipart/form-data with the video as the "
            f"file field {self.field!r} (curl -F {self.field}=@video.mp4). URLs are never fetched."
        )
        body = error_body("invalid", message, field=self.field, expected="an uploaded video file")
        await answer(send, 422, body)


class _PartHeaders:
    """The multipart parts seen so far, by name: ``"file"`` when the part has a filename, else ``"text"``."""

    def __init__(self, boundary: bytes) -> None:
        from python_multipart.multipart import MultipartParser, parse_options_header

        self.kinds: dict[str, str] = {}
        self._field = b""
        self._value = b""
        self._disposition = b""
        self._parse_options = parse_options_header

        def on_header_field(data: bytes, start: int, end: int) -> None:
            self._field += data[start:end]

        def on_header_value(data: bytes, start: int, end: int) -> None:
            self._value += data[start:end]

        def on_header_end() -> None:
            if self._field.lower() == b"content-disposition":
                self._disposition = self._value
            self._field, self._value = b"", b""

        def on_headers_finished() -> None:
            options = self._parse_options(self._disposition)[1]
            name = options.get(b"name", b"").decode("utf-8", "replace")
            self.kinds.setdefault(name, "file" if b"filename" in options else "text")
            self._disposition = b""

        callbacks: Any = {
            "on_header_field": on_header_field,
            "on_header_value": on_header_value,
            "on_header_end": on_header_end,
            "on_headers_finished": on_headers_finished,
        }
        self._parser: MultipartParser | None = MultipartParser(boundary, callbacks)

    def feed(self, chunk: bytes) -> None:
        if self._parser is None:
            return
        try:
            self._parser.write(chunk)
        except Exception:  # a malformed body: BentoML's own parse reports it (reshaped by ErrorShape)
            self._parser = None


class ErrorShape:
    """Every error BentoML answers by itself, in the one error shape.

    Its 400 for a body that fails the route's type checks becomes a 422 naming the field; its
    404, 405, 415, 429 and 500 bodies get the shape and the code of their status. Bodies
    that already have the shape (the service's own errors) pass unchanged.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        held: dict[str, Any] = {}
        chunks: list[bytes] = []

        async def wrapped(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] >= 400:
                held["start"] = message
                return
            if "start" not in held:
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body", False):
                return
            status, body = reshape(int(held["start"]["status"]), b"".join(chunks))
            keep = [
                (k, v) for k, v in held["start"]["headers"] if k.lower() not in (b"content-length", b"content-type")
            ]
            data = json.dumps(body).encode()
            extra = [(k.lower().encode(), v.encode()) for k, v in error_headers(status, body).items()]
            keep = [(k, v) for k, v in keep if k not in {e[0] for e in extra}]
            headers = [*keep, *extra, (b"content-type", JSON.encode()), (b"content-length", str(len(data)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": data})

        await self.app(scope, receive, wrapped)


def reshape(status: int, raw: bytes) -> tuple[int, dict[str, Any]]:
    """(status, body in the one shape) for an error answer; the service's own bodies are kept."""
    try:
        data: Any = json.loads(raw)
    except ValueError:
        data = raw.decode("utf-8", "replace").strip()
    if isinstance(data, dict) and isinstance(data.get("error"), dict) and "code" in data["error"]:
        return status, data
    if isinstance(data, list):
        data = data[0] if data and isinstance(data[0], dict) else {}
    if status == 400:
        return 422, _validation_body(data if isinstance(data, dict) else {})
    said = data.get("error") if isinstance(data, dict) else data
    code = HTTP_CODES.get(status, "error")
    if status == 415:
        return status, error_body(code, f"unsupported media type ({said}).", field="Content-Type")
    if status >= 500:
        message = "the scoring service failed unexpectedly; the log has details."
        return status, error_body(code, message)
    return status, error_body(code, f"{said or code}.")


def _validation_body(data: dict[str, Any]) -> dict[str, Any]:
    detail = data.get("detail") or []
    first = detail[0] if detail and isinstance(detail[0], dict) else {}
    loc = [str(p) for p in first.get("loc", [])]
    field = loc[0] + "".join(f"[{p}]" for p in loc[1:]) if loc else "body"
    if first.get("type") == "json_invalid" or not loc:
        message = f"the request body is not valid JSON ({first.get('msg') or data.get('error', 'unreadable')})."
        field = "body"
    else:
        message = f"{field}: {first.get('msg', 'invalid value')}; fix {field} and send again."
    expected = str(first.get("type", "")).replace("_parsing", "").replace("_type", "") or None
    return error_body("invalid", message, field=field, expected=expected)


class ClientErrorLog(logging.Filter):
    """BentoML logs a full traceback for a request that fails its type checks: make it one line with the code."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[1] is None:
            return True
        exc = record.exc_info[1]
        status = _client_status(exc)
        if status is None:
            return True
        code = "invalid" if status == 400 else HTTP_CODES.get(status, "error")
        path = record.args[0] if isinstance(record.args, tuple) and record.args else "?"
        record.msg = "client error %s (%s) on %s: %s"
        record.args = (422 if status == 400 else status, code, path, first_line(exc, limit=200))
        record.exc_info = None
        record.exc_text = None
        record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def _client_status(exc: BaseException) -> int | None:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        return 400
    error_code = getattr(exc, "error_code", None)
    value = getattr(error_code, "value", None)
    if isinstance(value, int) and 400 <= value < 500:
        return value
    return None


def install_client_error_log() -> None:
    """Attach :class:`ClientErrorLog` to the logger BentoML reports failed requests on (once)."""
    target = logging.getLogger("bentoml._internal.server.http_app")
    if not any(isinstance(f, ClientErrorLog) for f in target.filters):
        target.addFilter(ClientErrorLog())
