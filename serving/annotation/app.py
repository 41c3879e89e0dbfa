"""The annotation service: ``create_app(settings)`` builds the FastAPI app.

The stores, session signer, job pool and text encoder live in one
:class:`~serving.annotation.context.ServiceContext` made from the settings.
The web UI is the files under ``static/``: served at ``/static``, with
``static/index.html`` at ``/``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from annotator_core.settings import Settings
from serving.annotation import annotations_api, api, auth, builds, corpus_map, media, transfer
from serving.annotation.context import ServiceContext
from serving.annotation.errors import install_error_handlers
from serving.annotation.titles import router as titles_router
from serving.limits import BodyLimit, Limit

STATIC_DIR = Path(__file__).parent / "static"


def _install_ui(app: FastAPI) -> None:
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    index = STATIC_DIR / "index.html"

    @app.get("/", include_in_schema=False)
    def _index() -> FileResponse:
        return FileResponse(index)


def body_limits(settings: Settings) -> Callable[[str], Limit]:
    """Route path -> body limit: CSV imports (paths ending in ``/import``) have their own, larger one."""
    general = Limit(settings.max_body_bytes, "VA_MAX_BODY_BYTES")
    imports = Limit(settings.max_import_bytes, "VA_MAX_IMPORT_BYTES")
    return lambda path: imports if path.endswith("/import") else general


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
    for router in (auth.router, api.router, annotations_api.router, builds.router, transfer.router, media.router):
        app.include_router(router)
    app.include_router(corpus_map.router)  # the corpus map (issue 15)
    app.include_router(titles_router)  # a title's label timeline (issue 15)
    _install_ui(app)
    app.add_middleware(BodyLimit, limit_for=body_limits(settings))
    return app


def app_from_environment() -> Any:
    """Factory for ``uvicorn --factory serving.annotation.app:app_from_environment`` (several workers)."""
    from annotator_core.settings import load_settings

    return create_app(load_settings())
