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
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from annotator_core.errors import VAError
from serving.annotation.inputs import NAME_RULE
from serving.http_errors import HTTP_CODES, error_body, error_response, json_error

log = logging.getLogger("va.annotation")


def _field_of(loc: Sequence[Any]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header", "cookie"}:
        parts = parts[1:]
    return ".".join(parts) or "body"


def _may_echo(loc: Sequence[Any]) -> bool:
    """A value may be shown back unless it is (or holds) a secret: a password, or a whole raw body."""
    parts = [str(p).lower() for p in loc]
    return parts not in (["body"], []) and not any("password" in p or "secret" in p for p in parts)


def _validation_response(exc: RequestValidationError) -> Response:
    errors = exc.errors()
    first = errors[0] if errors else {"loc": ("body",), "msg": "invalid request"}
    field = _field_of(first.get("loc", ()))
    raw_msg = str(first.get("msg", "invalid value"))
    if first.get("type") == "json_invalid":
        message = "the request body is not valid JSON; send a JSON object."
        field = "body"
    elif first.get("type") == "missing":
        message = f"{field} is required; add it to the request."
    elif first.get("type") == "string_pattern_mismatch" and _may_echo(first.get("loc", ())):
        message = f"{field} {str(first.get('input'))[:80]!r} has a character it cannot have: {NAME_RULE}."
    else:
        got = first.get("input")
        shown = "the value sent"
        if got is not None and len(repr(got)) <= 80 and _may_echo(first.get("loc", ())):
            shown = repr(got)
        message = f"{field}: {raw_msg} (got {shown}); fix {field} and send again."
    details = [{"field": _field_of(e.get("loc", ())), "message": str(e.get("msg", ""))} for e in errors[:20]]
    return json_error(422, error_body("invalid", message, field=field, details=details))


def install_error_handlers(app: FastAPI) -> None:
    """Route every kind of failure through the one error shape."""

    @app.exception_handler(VAError)
    async def _va_error(_request: Request, exc: VAError) -> Response:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, exc: RequestValidationError) -> Response:
        return _validation_response(exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        code = HTTP_CODES.get(exc.status_code, "error")
        if exc.status_code == 404:
            message = f"nothing at {request.method} {request.url.path}; see /docs for the API."
        elif exc.status_code == 405:
            message = f"{request.method} is not allowed on {request.url.path}; see /docs for the methods."
        else:
            message = str(exc.detail)
        headers = dict(exc.headers) if exc.headers else None
        return json_error(exc.status_code, error_body(code, message), headers=headers)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        message = f"the service failed unexpectedly ({type(exc).__name__}); the log has details."
        return json_error(500, error_body("internal", message))
