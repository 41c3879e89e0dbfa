"""Long work (builds) in a thread pool, so it never blocks other annotators' requests.

A job reports progress as ``(stage, fraction)``; ``GET /api/jobs/{id}`` shows
it. A second build of a label while one runs joins the running job instead of
starting another. Each change of a job's state is also written to the
``jobs`` table (:class:`JobTable`), so any replica of the service can answer for any job.

The ``jobs`` table belongs to this service: its queries live here, on the annotation
store's engine; its schema is migration ``0003`` of the shared chain in
``annotator_core/migrations`` so one ``migrate`` brings every table to head.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import JSON, Float, Index, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from annotator_core.errors import VAError
from annotator_core.store import Database
from serving.http_errors import ApiError, error_body

Progress = Callable[[str, float], None]
KEEP_FINISHED = 200
PROGRESS_SAVE_SECONDS = 1.0  # progress of a running job reaches the jobs table at most this often
log = logging.getLogger(__name__)


class _ServiceTables(DeclarativeBase):
    """Tables of the annotation service, apart from the library's (``annotator_core.db``)."""


class JobRecord(_ServiceTables):
    """State of a long job (a build), so every replica of the service can answer for it."""

    __tablename__ = "jobs"
    __table_args__ = (Index("ix_jobs_created", "created_at"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    label: Mapped[str] = mapped_column(String(100))
    created_by: Mapped[str] = mapped_column(String(100), default="")
    state: Mapped[str] = mapped_column(String(20))  # queued | running | done | failed
    created_at: Mapped[float] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # the job as the API shows it


class JobTable:
    """The ``jobs`` table, in the annotation store's database and transactions."""

    def __init__(self, db: Database) -> None:
        self.db = db

    def save(self, job: dict[str, Any]) -> None:
        """Insert or update a job's state (keyed on its id); ``job`` is what the API shows."""
        with self.db.atomic() as s:
            row = s.get(JobRecord, job["id"])
            if row is None:
                row = JobRecord(
                    id=job["id"],
                    kind=job["kind"],
                    label=job["label"],
                    created_by=job.get("created_by", ""),
                    created_at=float(job["created_at"]),
                    state=job["state"],
                    data=job,
                )
                s.add(row)
            else:
                row.state, row.data = job["state"], job

    def get(self, job_id: str) -> dict[str, Any] | None:
        with self.db.read() as s:
            row = s.get(JobRecord, job_id)
            return dict(row.data) if row is not None else None

    def newest(self, *, limit: int = KEEP_FINISHED) -> list[dict[str, Any]]:
        """The newest jobs first."""
        with self.db.read() as s:
            rows = s.scalars(select(JobRecord).order_by(JobRecord.created_at.desc()).limit(limit))
            return [dict(r.data) for r in rows]


@dataclass
class Job:
    id: str
    kind: str
    label: str
    created_by: str
    state: str = "queued"  # queued | running | done | failed
    stage: str = "queued"
    progress: float = 0.0
    created_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    status_code: int = 200
    future: Future[dict[str, Any]] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "label": self.label,
            "created_by": self.created_by,
            "state": self.state,
            "stage": self.stage,
            "progress": round(self.progress, 4),
            "created_at": self.created_at,
            "started_at": self.started_at,
            "finished_at": self.finished_at,
            "result": self.result,
            "error": self.error,
        }


class StoredJob:
    """A job another replica runs, as the jobs table last saw it."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def to_dict(self) -> dict[str, Any]:
        return dict(self.data)


class JobManager:
    def __init__(
        self, max_workers: int = 2, *, store: JobTable | None = None, progress_every: float = PROGRESS_SAVE_SECONDS
    ) -> None:
        self._pool = ThreadPoolExecutor(max_workers=max_workers, thread_name_prefix="va-job")
        self._progress_every = progress_every
        self._lock = threading.Lock()
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._store = store

    def _save(self, job: Job) -> None:
        if self._store is None:
            return
        try:
            # Through JSON once, so numpy scalars in a result are stored as plain numbers.
            self._store.save(json.loads(json.dumps(job.to_dict(), default=_plain)))
        except Exception:  # the job itself goes on; only other replicas lose sight of it
            log.warning("could not save the state of job %s to the jobs table", job.id, exc_info=True)

    def submit(self, kind: str, label: str, created_by: str, work: Callable[[Progress], dict[str, Any]]) -> Job:
        """Start ``work`` in the pool; a running job of the same kind and label is returned instead."""
        with self._lock:
            for job in self._jobs.values():
                if job.kind == kind and job.label == label and job.state in {"queued", "running"}:
                    return job
            job = Job(id=uuid.uuid4().hex, kind=kind, label=label, created_by=created_by)
            self._jobs[job.id] = job
            self._trim()
        # Saved when it starts, in the pool: submit runs on the event loop, where a commit would block
        # every request. Other replicas see a job once it runs (at most max_workers wait before that).
        job.future = self._pool.submit(self._run, job, work)
        return job

    def _run(self, job: Job, work: Callable[[Progress], dict[str, Any]]) -> dict[str, Any]:
        job.state, job.stage, job.started_at = "running", "starting", time.time()
        self._save(job)

        saved_at = time.monotonic()

        def progress(stage: str, fraction: float) -> None:
            nonlocal saved_at
            job.stage, job.progress = stage, max(0.0, min(1.0, float(fraction)))
            # Other replicas see progress at most this stale; a commit per stage cost a 1M build ~15% of its time.
            if time.monotonic() - saved_at >= self._progress_every:
                self._save(job)
                saved_at = time.monotonic()

        try:
            result = work(progress)
        except VAError as exc:
            job.state, job.finished_at = "failed", time.time()
            job.status_code = int(exc.status_code)
            extra = dict(getattr(exc, "extra", {}) or {})
            for name in ("need_positive", "need_negative"):
                if hasattr(exc, name):
                    extra[name] = getattr(exc, name)
            job.error = error_body(exc.code, str(exc), field=getattr(exc, "field", None), **extra)["error"]
            self._save(job)
            raise
        except Exception as exc:
            job.state, job.finished_at, job.status_code = "failed", time.time(), 500
            job.error = {"code": "internal", "message": f"the job failed unexpectedly ({type(exc).__name__})."}
            self._save(job)
            raise
        job.state, job.stage, job.progress, job.finished_at = "done", "done", 1.0, time.time()
        job.result = result
        self._save(job)
        return result

    async def wait(self, job: Job) -> dict[str, Any]:
        """The job's result without blocking the event loop; its error is re-raised."""
        assert job.future is not None
        return await asyncio.wrap_future(job.future)

    def get(self, job_id: str) -> Job | StoredJob:
        """A job of this process, else one another replica runs (from the jobs table)."""
        with self._lock:
            job = self._jobs.get(job_id)
        if job is not None:
            return job
        stored = self._store.get(job_id) if self._store is not None else None
        if stored is None:
            raise ApiError(404, "not_found", f"no job {job_id!r}; start a build to get a job id.")
        return StoredJob(stored)

    def list(self) -> list[Job | StoredJob]:
        """The newest jobs first: this process's as they are now, other replicas' as the jobs table has them."""
        with self._lock:
            mine = list(reversed(self._jobs.values()))
        if self._store is None:
            return list(mine)
        own = {j.id for j in mine}
        others = [StoredJob(d) for d in self._store.newest(limit=KEEP_FINISHED) if d["id"] not in own]
        jobs: list[Job | StoredJob] = [*mine, *others]
        jobs.sort(key=lambda j: -float(j.to_dict()["created_at"]))
        return jobs[: max(KEEP_FINISHED, len(mine))]

    def _trim(self) -> None:
        finished = [j.id for j in self._jobs.values() if j.state in {"done", "failed"}]
        for job_id in finished[: max(0, len(finished) - KEEP_FINISHED)]:
            del self._jobs[job_id]

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _plain(value: Any) -> Any:
    item = getattr(value, "item", None)  # numpy scalars
    return item() if callable(item) else str(value)
