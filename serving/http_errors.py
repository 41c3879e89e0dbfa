"""The one JSON error shape of both services: ``{"error": {"code", "message", "field"?, ...}}``.

An error a service raises on purpose is an :class:`ApiError` (or another
:class:`~annotator_core.errors.VAError`, which carries its own status and code);
:func:`error_response` turns any of them into the answer. Every 429 carries
``Retry-After``.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.responses import Response

from annotator_core.errors import NotEnoughAnnotations, VAError

JSON = "application/json"
#: The code of an HTTP status when the error has none of its own (framework errors: 404, 405, 415, ...).
HTTP_CODES = {
    400: "bad_request",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    416: "range_not_satisfiable",
    422: "invalid",
    429: "too_many_requests",
    500: "internal",
    503: "unavailable",
}
#: Seconds a client is told to wait on a 429 that does not know better.
DEFAULT_RETRY_AFTER_S = 1


class ApiError(VAError):
    """An error answered to a client: its status, code, the field at fault, extras (``expected``, ...) for
    the body and ``headers`` for the answer (``Content-Range`` on a 416)."""

    def __init__(
        self,
        status_code: int,
        code: str,
        message: str,
        *,
        field: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.field = field
        self.headers = headers or {}
        self.extra = {k: v for k, v in extra.items() if v is not None}


def error_body(code: str, message: str, *, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """``{"error": {"code", "message", "field"?, **extra}}``; None extras are left out."""
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    error.update({k: v for k, v in extra.items() if v is not None})
    return {"error": error}


def body_of(exc: VAError) -> dict[str, Any]:
    """The error body of any of the package's errors."""
    extra: dict[str, Any] = dict(getattr(exc, "extra", {}) or {})
    if isinstance(exc, NotEnoughAnnotations):
        extra.update(need_positive=exc.need_positive, need_negative=exc.need_negative)
    return error_body(exc.code, str(exc), field=getattr(exc, "field", None), **extra)


def error_headers(status_code: int, body: dict[str, Any]) -> dict[str, str]:
    """Headers an error answer needs: ``Retry-After`` on a 429 (from ``retry_after_s`` when it says)."""
    if status_code != 429:
        return {}
    wait = body.get("error", {}).get("retry_after_s") or DEFAULT_RETRY_AFTER_S
    return {"Retry-After": str(max(1, math.ceil(float(wait))))}


def json_error(status_code: int, body: dict[str, Any], *, headers: dict[str, str] | None = None) -> Response:
    """A JSON error answer with the headers its status needs."""
    return Response(
        json.dumps(body),
        status_code=status_code,
        media_type=JSON,
        headers={**error_headers(status_code, body), **(headers or {})},
    )


def error_response(exc: VAError, *, headers: dict[str, str] | None = None) -> Response:
    """The answer for one of the package's errors."""
    return json_error(int(exc.status_code), body_of(exc), headers={**getattr(exc, "headers", {}), **(headers or {})})
