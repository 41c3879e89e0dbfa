"""Fixtures for integration tests: real stores in temporary places."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import create_engine, text

PG_ENV = "VA_TEST_POSTGRES_URL"


def _postgres_admin_url() -> str | None:
    url = os.environ.get(PG_ENV)
    if not url:
        if os.environ.get("CI"):
            pytest.fail(f"{PG_ENV} is not set in CI; .ci/run must start PostgreSQL (scripts/postgres.sh start)")
        pytest.skip(f"PostgreSQL tests skipped: {PG_ENV} is not set (scripts/postgres.sh start prints a URL to use)")
    return url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """The annotation store's database, once on SQLite (the embedded default) and once on a real PostgreSQL.

    Each PostgreSQL test gets a database of its own, dropped afterwards, so tests never see each other's rows.
    """
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'annotations.db'}"
        return
    admin_url = _postgres_admin_url()
    assert admin_url is not None
    name = "va_" + uuid.uuid4().hex[:12]
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    base = admin_url.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
