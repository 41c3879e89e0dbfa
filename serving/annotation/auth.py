"""Who is calling and what they may do: users, roles, sessions, CSRF, API tokens.

- Scripts send ``Authorization: Bearer <token>`` (tokens from ``va users add``
  / ``va users token``; stored hashed by the annotation store).
- Browsers log in with a password (argon2-hashed by the store) and get a
  signed, HttpOnly session cookie. Every unsafe request (POST, PUT, PATCH,
  DELETE) on a cookie session must carry the session's CSRF token in
  ``X-CSRF-Token`` and, when the browser sends ``Origin`` or ``Referer``, come
  from this site; anything else is refused with 403.
- Roles: ``viewer`` reads, ``annotator`` also labels and builds, ``admin``
  does everything, users included.
"""

from __future__ import annotations

import hmac
import math
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from annotator_core.errors import NotFoundError
from annotator_core.store import ROLES
from serving.annotation.context import context
from serving.annotation.inputs import NAME_PATTERN, NAME_RULE
from serving.annotation.presenters import timestamp
from serving.annotation.sessions import SESSION_MAX_AGE_S
from serving.http_errors import ApiError

SESSION_COOKIE = "va_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
ROLE_RANK = {"viewer": 0, "annotator": 1, "admin": 2}


@dataclass(frozen=True)
class Principal:
    """The caller of one request."""

    name: str
    role: str
    via: str  # "token" | "session"
    csrf_token: str = ""

    def can(self, role: str) -> bool:
        return ROLE_RANK.get(self.role, -1) >= ROLE_RANK[role]


def _same_origin(request: Request) -> bool:
    """False when the browser says the request came from another site (Origin, else Referer)."""
    source = request.headers.get("origin") or request.headers.get("referer")
    if not source:
        return True  # not a browser, or a privacy setting: the CSRF token still has to match
    parts = urlsplit(source)
    host = request.headers.get("host", "")
    return bool(parts.netloc) and parts.netloc.lower() == host.lower()


def principal(request: Request) -> Principal:
    """The authenticated caller, or 401; cookie sessions also pass the CSRF checks on unsafe methods."""
    ctx = context(request)
    header = request.headers.get("authorization", "")
    if header:
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise ApiError(
                401,
                "unauthenticated",
                "the Authorization header must be 'Bearer <token>'; get a token with `va users token NAME`.",
            )
        user = ctx.store.users.by_token(token.strip())
        if user is None:
            raise ApiError(
                401,
                "unauthenticated",
                "the API token is unknown or was replaced; get a new one with `va users token NAME`.",
            )
        return Principal(user.name, user.role, "token")
    cookie = request.cookies.get(SESSION_COOKIE)
    session = ctx.signer.loads(cookie) if cookie else None
    if session is None:
        raise ApiError(
            401, "unauthenticated", "log in first (POST /api/login) or send 'Authorization: Bearer <token>'."
        )
    name, csrf_token = session
    try:
        user = ctx.store.users.get(name)
    except NotFoundError:
        raise ApiError(401, "unauthenticated", f"user {name!r} no longer exists; log in again.") from None
    if request.method not in SAFE_METHODS:
        if not _same_origin(request):
            raise ApiError(403, "csrf", "cross-site request refused: it did not come from this site's pages.")
        sent = request.headers.get(CSRF_HEADER, "")
        if not sent or not hmac.compare_digest(sent, csrf_token):
            raise ApiError(
                403,
                "csrf",
                f"missing or wrong {CSRF_HEADER} header; send the csrf_token from /api/me with every change.",
            )
    return Principal(user.name, user.role, "session", csrf_token)


def require(role: str) -> Callable[..., Principal]:
    """A dependency that lets through callers with at least ``role``."""
    if role not in ROLE_RANK:
        raise ValueError(f"unknown role {role!r}")

    def dependency(caller: Principal = Depends(principal)) -> Principal:
        if not caller.can(role):
            raise ApiError(
                403,
                "forbidden",
                f"user {caller.name!r} is a {caller.role}; this needs the {role} role (ask an admin).",
            )
        return caller

    return dependency


viewer = require("viewer")
annotator = require("annotator")
admin = require("admin")


# --------------------------------------------------------------------------- routes


class LoginBody(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN, description=NAME_RULE)
    password: str = Field(min_length=1, max_length=1000)


class NewUserBody(BaseModel):
    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN, description=NAME_RULE)
    role: str = Field("annotator", description="admin, annotator or viewer")
    password: str | None = Field(None, min_length=8, max_length=1000)


def _me(caller: Principal) -> dict[str, Any]:
    out: dict[str, Any] = {"name": caller.name, "role": caller.role, "via": caller.via}
    if caller.via == "session":
        out["csrf_token"] = caller.csrf_token
    return out


router = APIRouter(tags=["auth"])


@router.post("/api/login")
def login(body: LoginBody, request: Request, response: Response) -> dict[str, Any]:
    """Log in with a password; sets the session cookie and returns the CSRF token for later changes."""
    if not _same_origin(request):
        raise ApiError(403, "csrf", "cross-site login refused: it did not come from this site's pages.")
    ctx = context(request)
    address = request.client.host if request.client else ""
    wait, limit = ctx.login_guard.retry_after(body.name, address)
    if wait > 0:
        whom = f"from {address}" if limit == "address" else f"for {body.name!r}"
        setting = "VA_LOGIN_MAX_FAILURES_PER_ADDRESS" if limit == "address" else "VA_LOGIN_MAX_FAILURES"
        raise ApiError(
            429,
            "too_many_attempts",
            f"too many failed logins {whom}; try again in {math.ceil(wait)} s ({setting}, VA_LOGIN_LOCKOUT_S).",
            field="name",
            retry_after_s=math.ceil(wait),
        )
    user = ctx.store.users.check_password(body.name, body.password)
    if user is None:
        ctx.login_guard.failed(body.name, address)
        raise ApiError(401, "bad_credentials", "wrong user name or password.", field="password")
    ctx.login_guard.succeeded(body.name)
    csrf_token = secrets.token_urlsafe(32)
    response.set_cookie(
        SESSION_COOKIE,
        ctx.signer.dumps(user.name, csrf_token),
        max_age=SESSION_MAX_AGE_S,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
        path="/",
    )
    return _me(Principal(user.name, user.role, "session", csrf_token))


@router.post("/api/logout")
def logout(response: Response, _caller: Principal = Depends(principal)) -> dict[str, Any]:
    response.delete_cookie(SESSION_COOKIE, path="/")
    return {"ok": True}


@router.get("/api/me")
def me(caller: Principal = Depends(principal)) -> dict[str, Any]:
    """Who you are, your role, and (for browser sessions) the CSRF token to send with changes."""
    return _me(caller)


@router.get("/api/users")
def list_users(request: Request, _caller: Principal = Depends(admin)) -> dict[str, Any]:
    users = context(request).store.users.all()
    return {"users": [{"name": u.name, "role": u.role, "created_at": timestamp(u.created_at)} for u in users]}


@router.post("/api/users", status_code=201)
def create_user(body: NewUserBody, request: Request, _caller: Principal = Depends(admin)) -> dict[str, Any]:
    """Create a user; the answer carries its API token, shown only this once."""
    if body.role not in ROLES:
        raise ApiError(422, "invalid", f"role {body.role!r} is not one of {', '.join(ROLES)}.", field="role")
    user, token = context(request).store.users.create(body.name, body.role, password=body.password)
    return {"name": user.name, "role": user.role, "token": token}


@router.post("/api/users/{name}/token")
def new_token(name: str, request: Request, _caller: Principal = Depends(admin)) -> dict[str, Any]:
    """Replace a user's API token (the old one stops working)."""
    token = context(request).store.users.reset_token(name)
    return {"name": name, "token": token}
