"""The job manager: builds run in a thread pool, report progress, join a running twin, and fail in the one error shape.

Real threads and real work functions; a job is released by an Event so a test can look at it while it runs.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import pytest
from va_testing import poll

from annotator_core.errors import NotEnoughAnnotations, ValidationFailed
from serving.annotation.jobs import KEEP_FINISHED, JobManager
from serving.http_errors import ApiError

Work = Callable[[Callable[[str, float], None]], dict[str, Any]]


@pytest.fixture()
def jobs() -> Iterator[JobManager]:
    """A manager with two workers, as the service has, shut down after the test."""
    manager = JobManager(max_workers=2)
    yield manager
    manager.shutdown()


def result_of(manager: JobManager, job: Any) -> dict[str, Any]:
    # A loop of its own in a thread: the browser tests' sync Playwright keeps a loop running in the main thread.
    with ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(lambda: asyncio.run(asyncio.wait_for(manager.wait(job), timeout=30))).result()


def held(release: threading.Event, *, stage: str = "training", fraction: float = 0.5) -> Work:
    """Work that reports one stage, then waits for ``release``."""

    def work(progress: Callable[[str, float], None]) -> dict[str, Any]:
        progress(stage, fraction)
        assert release.wait(timeout=30), "the test never released the job"
        return {"version": 1}

    return work


class RecordingTable:
    """Where the manager saves job states for other replicas: here a list of what it saved."""

    def __init__(self) -> None:
        self.saved: list[dict[str, Any]] = []

    def save(self, job: dict[str, Any]) -> None:
        json.dumps(job)  # what a JSON column would refuse
        self.saved.append(job)

    def get(self, job_id: str) -> dict[str, Any] | None:
        return next((j for j in reversed(self.saved) if j["id"] == job_id), None)

    def newest(self, *, limit: int = KEEP_FINISHED) -> list[dict[str, Any]]:
        latest = {j["id"]: j for j in self.saved}
        return sorted(latest.values(), key=lambda j: -j["created_at"])[:limit]


def test_a_job_runs_reports_progress_and_ends_done(jobs: JobManager) -> None:
    release = threading.Event()
    job = jobs.submit("build", "zero", "ann", held(release, stage="scoring corpus", fraction=0.25))
    running = poll(lambda: jobs.get(job.id).to_dict(), until=lambda j: j["stage"] == "scoring corpus",
                   timeout=30, what="the job reporting its stage")  # fmt: skip
    assert running["state"] == "running" and running["progress"] == 0.25
    assert running["created_by"] == "ann" and running["started_at"] is not None and running["finished_at"] is None
    release.set()
    assert result_of(jobs, job) == {"version": 1}
    done = jobs.get(job.id).to_dict()
    assert (done["state"], done["stage"], done["progress"]) == ("done", "done", 1.0)
    assert done["result"] == {"version": 1} and done["error"] is None
    assert done["created_at"] <= done["started_at"] <= done["finished_at"]


@pytest.mark.parametrize(("fraction", "shown"), [(-0.5, 0.0), (1.7, 1.0), (0.123456, 0.1235)])
def test_progress_is_clamped_to_0_1_and_rounded(jobs: JobManager, fraction: float, shown: float) -> None:
    release = threading.Event()
    job = jobs.submit("build", "clamp", "ann", held(release, fraction=fraction))
    seen = poll(lambda: jobs.get(job.id).to_dict(), until=lambda j: j["stage"] == "training", timeout=30,
                what="the job reporting its stage")  # fmt: skip
    release.set()
    result_of(jobs, job)
    assert seen["progress"] == shown


def test_a_second_build_of_a_running_label_joins_it(jobs: JobManager) -> None:
    release = threading.Event()
    first = jobs.submit("build", "zero", "ann", held(release))
    twin = jobs.submit("build", "zero", "ben", held(release))
    other_label = jobs.submit("build", "one", "ann", held(release))
    assert twin is first and twin.created_by == "ann"
    assert other_label.id != first.id
    release.set()
    result_of(jobs, first)
    result_of(jobs, other_label)
    again = jobs.submit("build", "zero", "ben", held(release))  # the first one has finished: a new job
    assert again.id != first.id
    result_of(jobs, again)


def test_a_package_error_fails_the_job_with_its_status_code_and_field(jobs: JobManager) -> None:
    def too_few(progress: Callable[[str, float], None]) -> dict[str, Any]:
        raise NotEnoughAnnotations("label 10 positives first", need_positive=4, need_negative=0)

    job = jobs.submit("build", "few", "ann", too_few)
    with pytest.raises(NotEnoughAnnotations):
        result_of(jobs, job)
    failed = jobs.get(job.id).to_dict()
    assert failed["state"] == "failed" and failed["finished_at"] is not None and failed["result"] is None
    assert failed["error"] == {
        "code": "not_enough_annotations",
        "message": "label 10 positives first",
        "need_positive": 4,
        "need_negative": 0,
    }
    assert job.status_code == 409

    def bad_field(progress: Callable[[str, float], None]) -> dict[str, Any]:
        error = ValidationFailed("C must be positive, got -1")
        error.field = "C"  # type: ignore[attr-defined]
        raise error

    job = jobs.submit("build", "bad", "ann", bad_field)
    with pytest.raises(ValidationFailed):
        result_of(jobs, job)
    assert jobs.get(job.id).to_dict()["error"] == {"code": "invalid", "message": "C must be positive, got -1",
                                                   "field": "C"}  # fmt: skip
    assert job.status_code == 422


def test_an_unexpected_error_is_a_500_that_does_not_leak_its_message(jobs: JobManager) -> None:
    def crash(progress: Callable[[str, float], None]) -> dict[str, Any]:
        raise RuntimeError("password=hunter2 in /srv/secret.conf")

    job = jobs.submit("build", "crash", "ann", crash)
    with pytest.raises(RuntimeError):
        result_of(jobs, job)
    failed = jobs.get(job.id).to_dict()
    assert failed["state"] == "failed" and job.status_code == 500
    assert failed["error"] == {"code": "internal", "message": "the job failed unexpectedly (RuntimeError)."}
    assert "hunter2" not in json.dumps(failed)


def test_unknown_job_ids_are_404_and_the_list_is_newest_first(jobs: JobManager) -> None:
    with pytest.raises(ApiError) as caught:
        jobs.get("0123456789abcdef")
    assert (caught.value.status_code, caught.value.code) == (404, "not_found")
    made = [jobs.submit("build", f"label-{i}", "ann", lambda progress: {}) for i in range(3)]
    for job in made:
        result_of(jobs, job)
    assert [j.to_dict()["id"] for j in jobs.list()] == [j.id for j in reversed(made)]


def test_only_the_newest_finished_jobs_are_kept_in_memory() -> None:
    manager = JobManager(max_workers=1)
    try:
        made = []
        for i in range(KEEP_FINISHED + 6):
            made.append(manager.submit("build", f"label-{i}", "ann", lambda progress: {}))
            result_of(manager, made[-1])
        # At the last submit KEEP_FINISHED + 5 jobs had finished: the five oldest were let go.
        for gone in made[:5]:
            with pytest.raises(ApiError):
                manager.get(gone.id)
        assert manager.get(made[5].id).to_dict()["state"] == "done"
        assert len(manager.list()) == KEEP_FINISHED + 1
    finally:
        manager.shutdown()


def test_every_state_change_from_the_start_is_saved_for_other_replicas_as_plain_json() -> None:
    """A job is first saved when it starts running (submit runs on the event loop and must not commit)."""
    table = RecordingTable()
    manager = JobManager(max_workers=1, store=table, progress_every=0.0)  # type: ignore[arg-type]
    try:
        job = manager.submit(
            "build", "zero", "ann", lambda progress: progress("training", 0.5) or {"quality": np.float64(0.75)}
        )
        assert result_of(manager, job) == {"quality": 0.75}
    finally:
        manager.shutdown()
    assert [(s["state"], s["stage"], s["progress"]) for s in table.saved] == [
        ("running", "starting", 0.0),
        ("running", "training", 0.5),
        ("done", "done", 1.0),
    ]
    assert type(table.saved[-1]["result"]["quality"]) is float  # numpy scalars are stored as plain numbers
    # Another replica's manager over the same table answers for the job it never ran.
    other = JobManager(max_workers=1, store=table)  # type: ignore[arg-type]
    try:
        assert other.get(job.id).to_dict()["state"] == "done"
        assert [j.to_dict()["id"] for j in other.list()] == [job.id]
        with pytest.raises(ApiError):
            other.get("no-such-job")
    finally:
        other.shutdown()


def test_progress_reaches_the_table_at_most_once_a_period_but_every_state_change_does() -> None:
    table = RecordingTable()
    manager = JobManager(max_workers=1, store=table, progress_every=3600.0)  # type: ignore[arg-type]

    def work(progress: Any) -> dict[str, Any]:
        for i in range(10):
            progress(f"stage {i}", i / 10)
        return {"version": 1}

    try:
        job = manager.submit("build", "zero", "ann", work)
        assert result_of(manager, job) == {"version": 1}
        assert manager.get(job.id).to_dict()["stage"] == "done"
    finally:
        manager.shutdown()
    assert [(s["state"], s["stage"]) for s in table.saved] == [
        ("running", "starting"),
        ("done", "done"),
    ]


def test_a_job_goes_on_when_its_state_cannot_be_saved(caplog: pytest.LogCaptureFixture) -> None:
    class UnreachableTable(RecordingTable):
        def save(self, job: dict[str, Any]) -> None:
            raise OSError("database is locked")

    manager = JobManager(max_workers=1, store=UnreachableTable())  # type: ignore[arg-type]
    try:
        job = manager.submit("build", "zero", "ann", lambda progress: {"version": 3})
        assert result_of(manager, job) == {"version": 3}
        assert manager.get(job.id).to_dict()["state"] == "done"  # this replica still answers from memory
    finally:
        manager.shutdown()
    assert any(job.id in r.getMessage() and r.levelname == "WARNING" for r in caplog.records)


def test_shutdown_cancels_jobs_still_queued() -> None:
    manager = JobManager(max_workers=1)
    release = threading.Event()
    running = manager.submit("build", "first", "ann", held(release))
    queued = manager.submit("build", "second", "ann", held(release))
    poll(lambda: running.state, until=lambda s: s == "running", timeout=30, what="the first job starting")
    manager.shutdown()
    release.set()
    assert queued.future is not None and queued.future.cancelled()
    assert result_of(manager, running) == {"version": 1}  # the running one finishes its work
