"""Request-size limits of both services, enforced before a handler reads the body.

A body with a ``Content-Length`` over its route's limit is refused at once; a
chunked body (no length) is counted while it arrives and refused as soon as it
passes the limit, so no more than the limit is ever held. The answer is a 413
in the one error shape, naming the field (``body``) and the setting to change.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.http_errors import JSON, error_body


@dataclass(frozen=True)
class Limit:
    """The most bytes a route's body may have, and the setting that says so."""

    max_bytes: int
    setting: str

    def message(self) -> str:
        return f"the request body is larger than {self.setting}={self.max_bytes} bytes; send less per request."


class BodyLimit:
    """ASGI middleware: 413 for a body over ``limit_for(path)`` without reading more than the limit."""

    def __init__(self, app: ASGIApp, *, limit_for: Callable[[str], Limit]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(str(scope.get("path", "")))
        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None:
            if length.isdigit() and int(length) > limit.max_bytes:
                await refuse(send, limit)
                return
            # The server holds the body to its declared length, so nothing more needs counting.
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            total += len(chunks[-1])
            if total > limit.max_bytes:
                await refuse(send, limit)
                return
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def refuse(send: Send, limit: Limit) -> None:
    """Answer 413 in the one error shape."""
    payload = error_body("too_large", limit.message(), field="body", expected=f"at most {limit.max_bytes} bytes")
    data = json.dumps(payload).encode()
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(data)).encode())]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": data})
