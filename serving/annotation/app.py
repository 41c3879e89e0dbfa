"""The annotation service: ``create_app(settings)`` builds the FastAPI app.

No module-level singletons: the stores, the session signer, the job pool and
the (lazily loaded) text encoder live in one :class:`ServiceContext` made from
the settings and hung on ``app.state.ctx``.

The web UI (another module of this package) is plugged in by
``serving.annotation.ui.install(app)`` when that module exists; otherwise the
files under ``static/`` are served at ``/static`` and ``static/index.html`` at ``/``.
"""

from __future__ import annotations

import importlib
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, HTTPException
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from annotator_core.annotation_store import AnnotationStore
from annotator_core.errors import EncoderUnavailable
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from serving.annotation.auth import LoginThrottle, SessionSigner, session_secret
from serving.annotation.errors import error_body, install_error_handlers
from serving.annotation.jobs import JobManager

if TYPE_CHECKING:
    from annotator_core.encoders.base import Encoder
    from annotator_core.workspace import LabelWorkspace

STATIC_DIR = Path(__file__).parent / "static"
TITLES_TTL_S = 30.0


class ServiceContext:
    """Everything a request needs, opened once per app from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.shots = ShotStore.from_settings(settings)
        self.annotations = AnnotationStore.from_settings(settings)
        self.signer = SessionSigner(session_secret(settings))
        self.jobs = JobManager(max_workers=2, store=self.annotations)
        self.login_throttle = LoginThrottle(settings.login_max_failures, settings.login_lockout_s)
        self._encoder_lock = threading.Lock()
        self._encoder: Encoder | None = None
        self._encoder_error: EncoderUnavailable | None = None
        self._titles: tuple[float, dict[str, str]] = (0.0, {})

    def text_encoder(self) -> Encoder:
        """The encoder the shots were embedded with, loaded once (text search needs its text tower)."""
        with self._encoder_lock:
            if self._encoder is None and self._encoder_error is None:
                spec = self.shots.encoder() or self.settings.encoder
                try:
                    from annotator_core.encoders import load_encoder

                    self._encoder = load_encoder(spec, device=self.settings.device)
                except EncoderUnavailable as exc:
                    self._encoder_error = exc
            if self._encoder_error is not None:
                raise self._encoder_error
            assert self._encoder is not None
            return self._encoder

    def workspace(self, label: str) -> LabelWorkspace:
        from annotator_core.workspace import LabelWorkspace

        return LabelWorkspace(label, shots=self.shots, annotations=self.annotations, settings=self.settings)

    def video_titles(self) -> dict[str, str]:
        """video_id -> title, refreshed every half minute (ingest may add videos meanwhile)."""
        stamp, titles = self._titles
        if time.monotonic() - stamp > TITLES_TTL_S:
            titles = {str(v["video_id"]): str(v.get("title") or "") for v in self.shots.videos()}
            self._titles = (time.monotonic(), titles)
        return titles

    def close(self) -> None:
        self.jobs.shutdown()
        self.annotations.close()


class BodyLimit:
    """Refuses request bodies over the limit with 413, without reading more than that.

    CSV imports (paths ending in ``/import``) have their own, larger limit.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, import_max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.import_max_bytes = import_max_bytes or max_bytes

    def _limit(self, scope: Scope) -> tuple[int, str]:
        if str(scope.get("path", "")).endswith("/import"):
            return self.import_max_bytes, "VA_MAX_IMPORT_BYTES"
        return self.max_bytes, "VA_MAX_BODY_BYTES"

    @staticmethod
    def _message(limit: tuple[int, str]) -> str:
        return f"the request body is larger than {limit[1]}={limit[0]} bytes; send less per request."

    async def _refuse(self, send: Send, limit: tuple[int, str]) -> None:
        import json

        body = json.dumps(error_body("too_large", self._message(limit), field="body")).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self._limit(scope)
        max_bytes = limit[0]
        for name, value in scope.get("headers", []):
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    declared = 0
                if declared > max_bytes:
                    await self._refuse(send, limit)
                    return
        received = 0
        started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_bytes:
                    # FastAPI passes its own HTTPException through body parsing untouched.
                    raise HTTPException(413, detail=self._message(limit))
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except HTTPException as exc:
            if exc.status_code != 413 or started:
                raise
            await self._refuse(send, limit)


def _install_ui(app: FastAPI) -> None:
    try:
        ui = importlib.import_module("serving.annotation.ui")
    except ModuleNotFoundError as exc:
        if exc.name != "serving.annotation.ui":
            raise
        ui = None
    if ui is not None and hasattr(ui, "install"):
        ui.install(app)
        return
    if STATIC_DIR.is_dir():
        app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
        index = STATIC_DIR / "index.html"
        if index.is_file():

            @app.get("/", include_in_schema=False)
            def _index() -> FileResponse:
                return FileResponse(index)


def create_app(settings: Settings) -> FastAPI:
    """The annotation service for these settings (stores opened now, encoder on first text search)."""
    ctx = ServiceContext(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        ctx.close()

    app = FastAPI(
        title="Video Annotator — annotation service",
        version="1",
        description=(
            "Search, label, build, review and publish per-label video classifiers. "
            "Authenticate with 'Authorization: Bearer <token>' (from `va users add`) or a browser session. "
            'Every error is {"error": {"code", "message", "field"?}}.'
        ),
        lifespan=lifespan,
    )
    app.state.ctx = ctx
    install_error_handlers(app)

    from serving.annotation import api, auth, builds, media, transfer

    app.include_router(auth.router)
    app.include_router(api.router)
    app.include_router(builds.router)
    app.include_router(transfer.router)
    app.include_router(media.router)
    _install_ui(app)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes, import_max_bytes=settings.max_import_bytes)
    return app


def app_from_environment() -> Any:
    """Factory for ``uvicorn --factory serving.annotation.app:app_from_environment`` (several workers)."""
    from annotator_core.settings import load_settings

    return create_app(load_settings())
