"""The service context: everything a request needs, opened once per app from the settings.

No module-level singletons: the stores, the session signer, the job pool and
the (lazily loaded) text encoder live in one :class:`ServiceContext` hung on
``app.state.ctx``; routers reach it through :func:`context`.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING

from fastapi import Request

from annotator_core.errors import EncoderUnavailable
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore
from annotator_core.store import AnnotationStore
from annotator_core.store.database import Database
from serving.annotation.jobs import JobManager, JobTable
from serving.annotation.sessions import LoginGuard, SessionSigner, session_secret

if TYPE_CHECKING:
    from annotator_core.corpus.search import ShotSearch
    from annotator_core.encoders.base import Encoder
    from annotator_core.workspace import LabelWorkspace

TITLES_TTL_S = 30.0


class ServiceContext:
    """Everything a request needs, opened once per app from the settings."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.shots = ShotStore.from_settings(settings)
        self.store = AnnotationStore.from_settings(settings)
        self.signer = SessionSigner(session_secret(settings))
        # Job state is rebuilt by rerunning a job, so its commits need not wait for the disk (a build saves
        # it two or three times; each synced commit cost 2-25 ms).
        self._jobs_db = Database(self.store.db.url, durable=False)
        self.jobs = JobManager(max_workers=2, store=JobTable(self._jobs_db))
        self.login_guard = LoginGuard(
            per_name=settings.login_max_failures,
            per_address=settings.login_max_failures_per_address,
            lockout_s=settings.login_lockout_s,
        )
        self._encoder_lock = threading.Lock()
        self._encoder: Encoder | None = None
        self._encoder_error: EncoderUnavailable | None = None
        self._titles: tuple[float, dict[str, str]] = (0.0, {})
        self._search: ShotSearch | None = None

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

    def search(self) -> ShotSearch:
        """Shot search: the compressed corpus where builds use it, the shots table's index otherwise."""
        if self._search is None:
            from annotator_core.corpus.search import ShotSearch

            self._search = ShotSearch(self.shots, self.settings)
        return self._search

    def workspace(self, label: str) -> LabelWorkspace:
        from annotator_core.workspace import LabelWorkspace

        return LabelWorkspace(label, shots=self.shots, store=self.store, settings=self.settings)

    def video_titles(self) -> dict[str, str]:
        """video_id -> title, refreshed every half minute (ingest may add videos meanwhile)."""
        stamp, titles = self._titles
        if time.monotonic() - stamp > TITLES_TTL_S:
            titles = {str(v["video_id"]): str(v.get("title") or "") for v in self.shots.videos()}
            self._titles = (time.monotonic(), titles)
        return titles

    def close(self) -> None:
        self.jobs.shutdown()
        self._jobs_db.close()
        self.store.db.close()


def context(request: Request) -> ServiceContext:
    """The context of the app serving ``request``."""
    ctx: ServiceContext = request.app.state.ctx
    return ctx
