"""One JSON error shape for every error of the annotation service.

Every error answer is ``{"error": {"code", "message", "field"?, ...}}`` with
a 4xx for anything the client sent wrong: the package's own ``VAError``
(its ``status_code`` and ``code``), FastAPI's request validation (422 naming
the field), unknown routes (404) and wrong methods (405). Only a bug in the
service itself is a 500, and even that keeps the shape.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from annotator_core.errors import NotEnoughAnnotations, VAError

log = logging.getLogger("va.annotation")

_HTTP_CODES = {
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
}


class ApiError(VAError):
    """An error raised by the service itself, with its status, code, the field at fault and extras."""

    def __init__(self, status_code: int, code: str, message: str, *, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
        self.field = field
        self.extra = extra


def error_body(code: str, message: str, *, field: str | None = None, **extra: Any) -> dict[str, Any]:
    error: dict[str, Any] = {"code": code, "message": message}
    if field:
        error["field"] = field
    error.update({k: v for k, v in extra.items() if v is not None})
    return {"error": error}


def error_response(
    status_code: int,
    code: str,
    message: str,
    *,
    field: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse(error_body(code, message, field=field, **extra), status_code=status_code, headers=headers)


def va_error_response(exc: VAError) -> JSONResponse:
    extra: dict[str, Any] = dict(getattr(exc, "extra", {}) or {})
    if isinstance(exc, NotEnoughAnnotations):
        extra.update(need_positive=exc.need_positive, need_negative=exc.need_negative)
    return error_response(int(exc.status_code), exc.code, str(exc), field=getattr(exc, "field", None), **extra)


def _field_of(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _validation_response(exc: RequestValidationError) -> JSONResponse:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    field = _field_of(first.get("loc", ()))
    raw_msg = str(first.get("msg", "invalid value"))
    if first.get("type") == "json_invalid":
        message = "the request body is not valid JSON; send a JSON object."
        field = "body"
    elif first.get("type") == "missing":
        message = f"{field} is required; add it to the request."
    else:
        got = first.get("input")
        shown = repr(got) if got is not None and len(repr(got)) <= 80 else "the value sent"
        message = f"{field}: {raw_msg} (got {shown}); fix {field} and send again."
    details = [{"field": _field_of(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in errors[:20]]
    return error_response(422, "invalid", message, field=field, details=details)


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of failure through the one error shape."""

    @app.exception_handler(VAError)
    async def _va_error(_request: Request, exc: VAError) -> JSONResponse:
        return va_error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> JSONResponse:
        return _validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        if exc.status_code == 404:
            message = f"nothing at {request.method} {request.url.path}; see /docs for the API."
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs for the methods."
        else:
            message = str(exc.detail)
        headers = dict(exc.headers) if exc.headers else None
        return error_response(exc.status_code, code, message, headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(
            500, "internal", f"the service failed unexpectedly ({type(exc).__name__}); the log has details."
        )
