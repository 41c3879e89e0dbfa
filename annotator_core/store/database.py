"""The one engine every part of the annotation store shares, its migrations, and its transactions.

SQLAlchemy 2 over SQLite (the embedded default, WAL mode) or PostgreSQL (by
URL). The schema belongs to the Alembic migrations; :meth:`Database.migrate`
brings any database to the newest revision.

Transactions are context managers: everything inside :meth:`Database.atomic`
commits together or not at all. On SQLite a write transaction takes the write
lock up front (``BEGIN IMMEDIATE``), so two read-then-write transactions queue
instead of failing on lock upgrade.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.exc import ArgumentError as SAArgumentError
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from annotator_core.errors import ConfigError, NotFoundError, StoreUnavailable, ValidationFailed

MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
# Shot ids per ``IN (…)`` query: well under SQLite's and PostgreSQL's bound-parameter limits.
IN_CHUNK = 500


class Database:
    """One engine, its migrations, and the read and write transactions the stores run in."""

    def __init__(self, url: str, *, durable: bool = True) -> None:
        """``durable=False``: commits do not wait for the disk (SQLite ``synchronous=NORMAL`` in WAL mode,
        PostgreSQL ``synchronous_commit=off``); a power loss may undo the last ones, a crash of the process
        cannot, and nothing is ever corrupted. For state that is rebuilt anyway, such as job progress."""
        self.url = url
        self.engine = _make_engine(url, durable=durable)
        self._write_engine = self.engine.execution_options(va_write=True)

    def migrate(self) -> str:
        """Create or upgrade the schema to the newest Alembic revision; return it."""
        from alembic import command
        from alembic.config import Config

        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        try:
            with self.engine.begin() as conn:
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, "head")
        except OperationalError as exc:
            raise StoreUnavailable(_unreachable(self.url, exc)) from None
        return self.revision()

    def revision(self) -> str:
        from alembic.runtime.migration import MigrationContext

        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision() or ""

    def ping(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("SELECT 1")
        except OperationalError as exc:
            raise StoreUnavailable(_unreachable(self.url, exc)) from None

    def close(self) -> None:
        self.engine.dispose()

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reads; it writes nothing."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def atomic(self) -> Iterator[Session]:
        """One write transaction: everything inside commits together or not at all."""
        with Session(self._write_engine, expire_on_commit=False) as session, session.begin():
            yield session


def by_name(s: Session, model: type[Any], name: str, missing: str) -> Any:
    """The row of ``model`` called ``name``, or :class:`NotFoundError` with the message ``missing``."""
    found = s.scalar(select(model).where(model.name == name))
    if found is None:
        raise NotFoundError(missing)
    return found


def check_name(name: str, what: str) -> str:
    """A user or label name, trimmed; names are 1-100 characters without slashes or line breaks."""
    name = (name or "").strip()
    if not name or len(name) > 100 or any(c in name for c in "/\\\n\r\t"):
        raise ValidationFailed(f"{what} {name!r} is not allowed; use 1-100 characters without slashes or line breaks.")
    return name


def _make_engine(url: str, *, durable: bool = True) -> Engine:
    try:
        if url.startswith("sqlite"):
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
            _configure_sqlite(engine, durable=durable)
            return engine
        engine = create_engine(url, pool_pre_ping=True)
        if not durable:
            _no_commit_wait(engine, "SET synchronous_commit TO OFF")
        return engine
    except (SAArgumentError, ImportError, ValueError) as exc:
        raise ConfigError(
            f"VA_DATABASE_URL={url!r} is not a usable database URL ({exc}); "
            "use sqlite:///path/to/file.db or postgresql+psycopg://user:pass@host/db."
        ) from None


def _configure_sqlite(engine: Engine, *, durable: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's begin event below issues BEGIN itself
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        if not durable:  # per connection: the annotation store's own connections keep syncing every commit
            cur.execute("PRAGMA synchronous=NORMAL")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        mode = "IMMEDIATE" if conn.get_execution_options().get("va_write") else "DEFERRED"
        conn.exec_driver_sql(f"BEGIN {mode}")


def _no_commit_wait(engine: Engine, statement: str) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        cur = dbapi_conn.cursor()
        cur.execute(statement)
        cur.close()
        dbapi_conn.commit()


def _unreachable(url: str, exc: Exception) -> str:
    shown = url.split("@")[-1] if "@" in url else url
    reason = str(getattr(exc, "orig", exc)).strip().splitlines()[0]
    return f"VA_DATABASE_URL ({shown}) is not reachable: {reason}; start the database or fix VA_DATABASE_URL."
