"""The annotation service's jobs table, on the annotation store's database (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from annotator_core.store import AnnotationStore
from serving.annotation.jobs import JobManager, JobTable


@pytest.fixture()
def store(database_url: str) -> Iterator[AnnotationStore]:
    s = AnnotationStore(database_url)
    s.labels.create("establishing", description="wide shots of places", keywords=["wide", "city"], created_by="ana")
    yield s
    s.db.close()


def test_job_state_is_shared_through_the_store(store: AnnotationStore) -> None:
    jobs = JobTable(store.db)
    job = {
        "id": "j1",
        "kind": "build",
        "label": "establishing",
        "created_by": "ana",
        "state": "queued",
        "created_at": 100.0,
        "progress": 0.0,
        "result": None,
    }
    jobs.save(job)
    jobs.save({**job, "state": "done", "progress": 1.0, "result": {"version": 3}})
    jobs.save({**job, "id": "j2", "created_at": 200.0})
    assert jobs.get("j1") == {**job, "state": "done", "progress": 1.0, "result": {"version": 3}}
    assert jobs.get("nope") is None
    assert [j["id"] for j in jobs.newest()] == ["j2", "j1"]


def test_a_job_run_by_one_replica_is_seen_by_another(store: AnnotationStore) -> None:
    """Two job managers on one database stand for two replicas of the service."""
    replica_store = AnnotationStore(store.db.url)
    runner = JobManager(max_workers=1, store=JobTable(store.db))
    other = JobManager(max_workers=1, store=JobTable(replica_store.db))
    try:
        job = runner.submit("build", "establishing", "ana", lambda progress: {"version": 1})
        assert job.future is not None and job.future.result(timeout=30) == {"version": 1}
        seen = other.get(job.id).to_dict()
        assert (seen["state"], seen["result"], seen["created_by"]) == ("done", {"version": 1}, "ana")
        assert [j.to_dict()["id"] for j in other.list()] == [job.id]
    finally:
        runner.shutdown()
        other.shutdown()
        replica_store.db.close()


def test_job_state_commits_do_not_wait_for_the_disk_but_annotations_still_do(store: AnnotationStore) -> None:
    """The service writes jobs through its own non-durable connections; the annotation store's stay synced."""
    from annotator_core.store.database import Database

    jobs_db = Database(store.db.url, durable=False)
    try:
        sqlite = store.db.url.startswith("sqlite")
        query = "PRAGMA synchronous" if sqlite else "SHOW synchronous_commit"
        with jobs_db.engine.connect() as conn:
            relaxed = conn.exec_driver_sql(query).scalar()
        with store.db.engine.connect() as conn:
            synced = conn.exec_driver_sql(query).scalar()
        assert (relaxed, synced) == ((1, 2) if sqlite else ("off", "on"))  # SQLite: 1 NORMAL, 2 FULL
        JobTable(jobs_db).save({"id": "j9", "kind": "build", "label": "establishing", "created_at": 1.0,
                                "state": "running"})  # fmt: skip
        assert JobTable(store.db).get("j9") == {"id": "j9", "kind": "build", "label": "establishing",
                                                "created_at": 1.0, "state": "running"}  # fmt: skip
    finally:
        jobs_db.close()
