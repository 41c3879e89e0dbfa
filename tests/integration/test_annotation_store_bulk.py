"""Many annotations in one transaction (a CSV import): the same outcome as one write at a time, or nothing."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from annotator_core.errors import ConflictError, NotFoundError, ValidationFailed
from annotator_core.store import AnnotationStore

# Stored before the import: what it repeats, changes, withdraws, and leaves alone.
BEFORE = [("v1:0", True), ("v1:5", False), ("v1:9", True), ("v2:0", True), ("v2:3", None)]
# The import, in file order: repeats, changes, new shots, a withdrawal, and one shot named twice.
ITEMS = [
    ("v1:0", True),
    ("v1:5", True),
    ("v1:9", None),
    ("v3:0", False),
    ("v3:1", True),
    ("v3:0", True),
    ("v2:3", True),
    ("v4:0", None),
]


@pytest.fixture()
def store(database_url: str) -> Iterator[AnnotationStore]:
    s = AnnotationStore(database_url)
    for name in ("one-by-one", "bulk"):
        s.labels.create(name)
        for shot_id, value in BEFORE:
            s.annotations.annotate(name, shot_id, "ana", True if value is None else value, source="search")
            if value is None:
                s.annotations.annotate(name, shot_id, "ana", None, source="search")
    yield s
    s.db.close()


def _rows(store: AnnotationStore, label: str) -> list[tuple[str, bool | None, int, str]]:
    shots = sorted({sid for sid, _ in BEFORE + ITEMS})
    rows = [store.annotations.get(label, sid, "ana") for sid in shots]
    return [(r.shot_id, r.value, r.version, r.source) for r in rows if r is not None]


def _events(store: AnnotationStore, label: str) -> list[tuple[str, str, str, bool | None, bool | None, int, str]]:
    return [
        (e.shot_id, e.annotator, e.actor, e.old_value, e.new_value, e.version, e.source)
        for e in store.annotations.events(label)
    ]


def test_bulk_ends_where_one_write_at_a_time_ends(store: AnnotationStore) -> None:
    for shot_id, value in ITEMS:
        store.annotations.annotate("one-by-one", shot_id, "ana", value, source="import", actor="admin")
    outcome = store.annotations.annotate_many("bulk", "ana", ITEMS, source="import", actor="admin")
    assert _rows(store, "bulk") == _rows(store, "one-by-one")
    assert _events(store, "bulk") == _events(store, "one-by-one")
    # Repeats: v1:0 (already True) and v4:0 (withdrawing what never existed); the rest each wrote an event.
    assert (outcome.written, outcome.unchanged) == (6, 2)
    assert store.annotations.consensus("bulk") == store.annotations.consensus("one-by-one")


def test_bulk_gives_each_shot_its_own_source_where_one_is_named(store: AnnotationStore) -> None:
    """An import that keeps where each shot was picked: the named shots' rows and events carry their source."""
    own = {"v1:5": "import:random", "v3:0": "import:search", "v3:1": "import:top_positive"}
    for shot_id, value in ITEMS:
        store.annotations.annotate("one-by-one", shot_id, "ana", value, source=own.get(shot_id, "import"))
    store.annotations.annotate_many("bulk", "ana", ITEMS, source="import", sources=own)
    assert _rows(store, "bulk") == _rows(store, "one-by-one")
    assert _events(store, "bulk") == _events(store, "one-by-one")
    assert {r[0]: r[3] for r in _rows(store, "bulk")}["v3:0"] == "import:search"


def test_running_the_same_import_again_changes_nothing(store: AnnotationStore) -> None:
    store.annotations.annotate_many("bulk", "ana", ITEMS, source="import")
    events = store.annotations.last_event_id("bulk")
    again = store.annotations.annotate_many("bulk", "ana", [(sid, v) for sid, v in ITEMS if sid != "v3:0"])
    assert (again.written, store.annotations.last_event_id("bulk")) == (0, events)


def test_a_failure_while_writing_leaves_nothing_written(store: AnnotationStore, monkeypatch) -> None:
    before_rows, before_events = _rows(store, "bulk"), _events(store, "bulk")

    def broken_log(session, events):
        raise RuntimeError("disk full while logging")

    monkeypatch.setattr(store.annotations, "_append_events", broken_log)
    with pytest.raises(RuntimeError, match="disk full"):
        store.annotations.annotate_many("bulk", "ana", ITEMS, source="import")
    monkeypatch.undo()
    assert _rows(store, "bulk") == before_rows
    assert _events(store, "bulk") == before_events


def test_one_bad_item_refuses_the_whole_batch(store: AnnotationStore) -> None:
    before = _rows(store, "bulk")
    with pytest.raises(ValidationFailed, match=r"item 2: shot_id '' is not a shot id.*Nothing was written"):
        store.annotations.annotate_many("bulk", "ana", [("v9:0", True), ("v9:1", False), ("", True)])
    with pytest.raises(ValidationFailed, match=r"item 0: value 'yes' is not true, false or null"):
        store.annotations.annotate_many("bulk", "ana", [("v9:0", "yes")])  # type: ignore[list-item]
    with pytest.raises(NotFoundError, match="no label named 'nope'"):
        store.annotations.annotate_many("nope", "ana", [("v9:0", True)])
    assert _rows(store, "bulk") == before


def test_more_rows_than_one_query_can_name(store: AnnotationStore) -> None:
    """More shots than one IN (…) holds: the stored rows are found across chunks, and all commit together."""
    items = [(f"big:{i}", i % 3 == 0) for i in range(1_234)]
    store.annotations.annotate_many("bulk", "ana", items[:600], source="import")
    outcome = store.annotations.annotate_many("bulk", "ana", [(sid, not v) for sid, v in items], source="import")
    assert (outcome.written, outcome.unchanged) == (1_234, 0)
    assert store.annotations.get("bulk", "big:0", "ana").version == 2
    assert store.annotations.get("bulk", "big:1233", "ana").version == 1
    found = store.annotations.values_and_versions("bulk", "ana", [sid for sid, _ in items])
    assert found == {sid: (not v, 2 if i < 600 else 1) for i, (sid, v) in enumerate(items)}


def test_a_row_created_meanwhile_is_a_conflict_not_a_duplicate(store: AnnotationStore) -> None:
    """Another request inserts a row of the batch between the batch's read and its write (a real race, replayed)."""
    from sqlalchemy import event

    engine = store.db.engine
    sneaked: list[bool] = []

    def other_request_first(conn, cursor, statement, parameters, context, executemany) -> None:
        if "FOR UPDATE" in statement and not sneaked:  # the batch has just read (and locked) the stored rows
            sneaked.append(True)
            # The other writer, in its own transaction on its own connection, commits first.
            other = AnnotationStore(store.db.url, migrate=False)
            try:
                other.annotations.annotate("bulk", "v7:0", "ana", False, source="search")
            finally:
                other.db.close()

    if store.db.url.startswith("sqlite"):
        pytest.skip("SQLite's write lock makes the race impossible: the other writer waits for the batch")
    event.listen(engine, "after_cursor_execute", other_request_first)
    try:
        with pytest.raises(ConflictError, match=r"created by a concurrent request.*nothing was written"):
            store.annotations.annotate_many("bulk", "ana", [("v7:0", True), ("v7:1", True)])
    finally:
        event.remove(engine, "after_cursor_execute", other_request_first)
    assert sneaked, "the other request never ran: the race was not replayed"
    assert store.annotations.get("bulk", "v7:0", "ana").value is False
    assert store.annotations.get("bulk", "v7:1", "ana") is None
