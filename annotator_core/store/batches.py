"""The batched write behind :meth:`AnnotationLog.annotate_many`: a CSV import in one short transaction.

The items are checked first (one bad item refuses the batch before anything is written), the
stored rows they touch are read and locked, the changes are worked out in memory in item order
(exactly as one :meth:`~annotator_core.store.annotations.AnnotationLog.annotate` per item would
make them), and rows and events are written in batches: multi-row INSERTs and one
``executemany`` of UPDATEs, or ``COPY`` on PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, cast

from sqlalchemy import Connection, Table, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotator_core.db import Annotation
from annotator_core.errors import ConfigError, ValidationFailed
from annotator_core.store.database import IN_CHUNK

SHOT_ID_MAX = 200  # the width of the shot_id columns

# Bulk writes go to the driver directly: SQLAlchemy's per-row parameter processing was most of
# an import's time (measured: about 3x slower on SQLite). Table and column names are constants; values
# are bound. The column order is the order of the tuples BulkPlan builds.
INSERT_ANNOTATION = (
    "INSERT INTO annotations (label_id, shot_id, annotator, value, source, version, updated_at) "
    "VALUES (?, ?, ?, ?, ?, ?, ?)"
)
UPDATE_ANNOTATION = "UPDATE annotations SET value = ?, source = ?, version = ?, updated_at = ? WHERE id = ?"
INSERT_EVENT = (
    "INSERT INTO annotation_events (label_id, shot_id, annotator, actor, old_value, new_value, source, version, at, "
    "batch) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_PLACEHOLDERS = {"qmark": "?", "format": "%s", "pyformat": "%s"}
# Rows per multi-row INSERT: 4,500 parameters at most, under SQLite's 32,766 and PostgreSQL's 65,535.
ROWS_PER_INSERT = 500


def checked_items(values: Iterable[tuple[str, bool | None]]) -> list[tuple[str, bool | None]]:
    """The items as a list, refused as a whole (before anything is written) if any shot id is unusable."""
    items = [(str(sid), value) for sid, value in values]
    for number, (shot_id, value) in enumerate(items):
        if not shot_id or len(shot_id) > SHOT_ID_MAX:
            raise ValidationFailed(
                f"item {number}: shot_id {shot_id[:40]!r} is not a shot id; pass 1-{SHOT_ID_MAX} characters "
                "(video_id:start_frame). Nothing was written."
            )
        if value is not None and not isinstance(value, bool):
            raise ValidationFailed(f"item {number}: value {value!r} is not true, false or null. Nothing was written.")
    return items


def stored_states(
    s: Session, label_id: int, annotator: str, shot_ids: list[str]
) -> dict[str, tuple[int, bool | None, int]]:
    """shot_id -> (row id, value, version) of the stored rows among ``shot_ids``, locked for this transaction.

    Up to :data:`IN_CHUNK` shots are looked up by name; more read all of the annotator's rows of the
    label in one query instead: many long ``IN (…)`` lists cost far more than one pass over the
    rows one person labelled (measured on PostgreSQL after a bulk insert: 6-110 s by IN lists for
    8,000-20,000 rows, 0.15 s in one pass for 8,000).
    """
    unique = list(dict.fromkeys(shot_ids))
    mine = select(Annotation.id, Annotation.shot_id, Annotation.value, Annotation.version).where(
        Annotation.label_id == label_id, Annotation.annotator == annotator
    )
    if len(unique) <= IN_CHUNK:
        mine = mine.where(Annotation.shot_id.in_(unique))
    wanted = set(unique)
    return {
        sid: (row_id, value, version)
        for row_id, sid, value, version in s.execute(mine.with_for_update())
        if sid in wanted
    }


class BulkPlan:
    """The rows to insert or update and the events to append, worked out in memory in item order."""

    def __init__(
        self,
        label_id: int,
        annotator: str,
        source: str,
        actor: str,
        stored: dict[str, tuple[int, bool | None, int]],
        stamp: Any,
        batch: str = "",
    ) -> None:
        self.label_id, self.annotator, self.source, self.actor = label_id, annotator, source, actor
        self.batch = batch  # the events' batch id: one undo step for all of them ("" for none)
        self.stamp = stamp  # the time of every row and event, already in the driver's form
        self.state: dict[str, tuple[int | None, bool | None, int]] = dict(stored)
        self._new: dict[str, tuple[Any, ...]] = {}  # shot_id -> INSERT parameters (the last value wins)
        self._changed: dict[str, tuple[Any, ...]] = {}  # shot_id -> UPDATE parameters
        self.events: list[tuple[Any, ...]] = []

    def apply(self, shot_id: str, value: bool | None, source: str | None = None) -> None:
        """Plan one change; ``source`` (default: the plan's) is the row's and the event's source."""
        source = self.source if source is None else source
        row_id, old_value, old_version = self.state.get(shot_id, (None, None, 0))
        if (value is None) if old_version == 0 else (old_value == value):
            return  # a repeat changes nothing, as in annotate()
        version = old_version + 1
        fields = (value, source, version, self.stamp)
        if row_id is None:
            self._new[shot_id] = (self.label_id, shot_id, self.annotator, *fields)
        else:
            self._changed[shot_id] = (*fields, row_id)
        self.state[shot_id] = (row_id, value, version)
        self.events.append(
            (
                self.label_id,
                shot_id,
                self.annotator,
                self.actor,
                old_value,
                value,
                source,
                version,
                self.stamp,
                self.batch,
            )
        )

    @property
    def new_rows(self) -> list[tuple[Any, ...]]:
        return list(self._new.values())

    @property
    def changed_rows(self) -> list[tuple[Any, ...]]:
        return list(self._changed.values())


def stamp(s: Session, now: datetime) -> Any:
    """``now`` as the driver takes it for a DateTime column, converted once for a whole batch."""
    column = cast(Table, Annotation.__table__).c.updated_at
    process = column.type.bind_processor(s.connection().dialect)
    return process(now) if process is not None else now


def insert_rows(s: Session, statement: str, rows: list[tuple[Any, ...]]) -> None:
    """``statement`` (one ``VALUES (?, …)`` group) for every row: ``COPY`` on PostgreSQL, else multi-row INSERTs.

    On PostgreSQL ``COPY … FROM STDIN`` was 3.4x faster than multi-row INSERTs (20,000 rows: 1.4 s
    against 4.7 s); elsewhere one INSERT carries :data:`ROWS_PER_INSERT` rows.
    """
    if not rows:
        return
    head, group = statement.split(" VALUES ")
    conn, mark = _connection(s)
    if _copies(conn):
        _copy(conn, head.replace("INSERT INTO", "COPY", 1) + " FROM STDIN", rows)
        return
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        sql = f"{head} VALUES {', '.join([group] * len(chunk))}".replace("?", mark)
        conn.exec_driver_sql(sql, tuple(value for row in chunk for value in row))


def update_annotations(s: Session, rows: list[tuple[Any, ...]]) -> None:
    """:data:`UPDATE_ANNOTATION` for every row; on PostgreSQL one UPDATE from a copied temporary table."""
    if not rows:
        return
    conn, mark = _connection(s)
    if not _copies(conn):
        conn.exec_driver_sql(UPDATE_ANNOTATION.replace("?", mark), rows)
        return
    # Dropped at commit or rollback; executemany would be one round trip per row.
    conn.exec_driver_sql(
        "CREATE TEMPORARY TABLE va_annotation_changes (value BOOLEAN, source VARCHAR(40), version INTEGER, "
        "updated_at TIMESTAMP WITH TIME ZONE, id INTEGER PRIMARY KEY) ON COMMIT DROP"
    )
    _copy(conn, "COPY va_annotation_changes (value, source, version, updated_at, id) FROM STDIN", rows)
    conn.exec_driver_sql(
        "UPDATE annotations SET value = c.value, source = c.source, version = c.version, updated_at = c.updated_at "
        "FROM va_annotation_changes AS c WHERE annotations.id = c.id"
    )


def _copies(conn: Connection) -> bool:
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def _copy(conn: Connection, copy_from: str, rows: list[tuple[Any, ...]]) -> None:
    """``COPY … FROM STDIN`` of ``rows`` on psycopg's connection, inside the session's transaction."""
    driver_connection: Any = conn.connection.dbapi_connection
    try:
        with driver_connection.cursor() as cursor, cursor.copy(copy_from) as copy:
            for row in rows:
                copy.write_row(row)
    except conn.dialect.loaded_dbapi.IntegrityError as exc:  # raised by the driver, past SQLAlchemy
        raise IntegrityError(copy_from, None, exc) from exc


def _connection(s: Session) -> tuple[Connection, str]:
    """The session's connection and its driver's positional placeholder."""
    conn = s.connection()
    mark = _PLACEHOLDERS.get(conn.dialect.paramstyle)
    if mark is None:
        raise ConfigError(
            f"bulk writes need a driver with positional parameters; {conn.dialect.driver!r} uses "
            f"{conn.dialect.paramstyle!r}. Use sqlite:/// or postgresql+psycopg://."
        )
    return conn, mark
