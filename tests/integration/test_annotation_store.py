"""The annotation store on real SQLite and real PostgreSQL."""

from __future__ import annotations

import threading

import pytest

from annotator_core.errors import ConflictError, NotFoundError, StoreUnavailable, ValidationFailed
from annotator_core.store import AnnotationStore


@pytest.fixture()
def store(database_url: str):
    s = AnnotationStore(database_url)
    s.labels.create("establishing", description="wide shots of places", keywords=["wide", "city"], created_by="ana")
    yield s
    s.db.close()


def test_migrations_bring_a_new_database_to_head_and_are_repeatable(database_url: str) -> None:
    first = AnnotationStore(database_url)
    rev = first.db.revision()
    assert rev == first.db.migrate()  # running again changes nothing
    assert rev != ""
    first.db.close()


def test_label_round_trip(store: AnnotationStore) -> None:
    label = store.labels.get("establishing")
    assert label.description == "wide shots of places"
    assert label.keywords == ["wide", "city"]
    assert [lbl.name for lbl in store.labels.all()] == ["establishing"]
    with pytest.raises(ConflictError, match="already exists"):
        store.labels.create("establishing")
    with pytest.raises(NotFoundError, match="no label named 'nope'"):
        store.labels.get("nope")
    with pytest.raises(ValidationFailed, match="not allowed"):
        store.labels.create("../etc")


def test_annotation_and_event_log(store: AnnotationStore) -> None:
    row = store.annotations.annotate("establishing", "v1:0", "ana", True, source="search")
    assert (row.value, row.version) == (True, 1)
    row = store.annotations.annotate("establishing", "v1:0", "ana", False, expected_version=1, source="borderline")
    assert (row.value, row.version) == (False, 2)
    store.annotations.annotate("establishing", "v1:0", "ana", None, expected_version=2)
    assert store.annotations.current("establishing") == []
    events = store.annotations.events("establishing")
    assert [(e.old_value, e.new_value, e.version) for e in events] == [
        (None, True, 1),
        (True, False, 2),
        (False, None, 3),
    ]
    assert [e.source for e in events][:2] == ["search", "borderline"]


def test_repeating_the_same_request_changes_nothing(store: AnnotationStore) -> None:
    store.annotations.annotate("establishing", "v1:0", "ana", True, expected_version=0)
    again = store.annotations.annotate("establishing", "v1:0", "ana", True, expected_version=0)
    assert again.version == 1
    assert len(store.annotations.events("establishing")) == 1


def test_stale_version_is_a_conflict_not_an_overwrite(store: AnnotationStore) -> None:
    store.annotations.annotate("establishing", "v1:0", "ana", True, expected_version=0)
    store.annotations.annotate("establishing", "v1:0", "ana", False, expected_version=1)
    with pytest.raises(ConflictError, match="you saw version 1, it is now version 2"):
        store.annotations.annotate("establishing", "v1:0", "ana", True, expected_version=1)
    assert store.annotations.get("establishing", "v1:0", "ana").value is False


def test_two_concurrent_writers_one_wins_and_no_event_is_lost(store: AnnotationStore) -> None:
    store.annotations.annotate("establishing", "v1:0", "ana", True)
    barrier = threading.Barrier(2)
    outcomes: list[str] = []

    def writer(value: bool) -> None:
        barrier.wait()
        try:
            store.annotations.annotate("establishing", "v1:0", "ana", value, expected_version=1)
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")

    # Both writers read version 1 and want different values than the stored True.
    threads = [threading.Thread(target=writer, args=(v,)) for v in (False, None)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["conflict", "ok"]
    events = store.annotations.events("establishing")
    assert len(events) == 2  # the first annotation and the winner's change, nothing else
    final = store.annotations.get("establishing", "v1:0", "ana")
    assert final.version == 2 and final.value == events[-1].new_value


def test_concurrent_first_writes_of_the_same_annotation(store: AnnotationStore) -> None:
    barrier = threading.Barrier(4)
    outcomes: list[str] = []

    def writer(value: bool) -> None:
        barrier.wait()
        try:
            store.annotations.annotate("establishing", "v9:0", "bo", value, expected_version=0)
            outcomes.append("ok")
        except ConflictError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=writer, args=(i % 2 == 0,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    final = store.annotations.get("establishing", "v9:0", "bo")
    events = store.annotations.events("establishing")
    assert final is not None and final.version == len(events) == 1
    # Writers of the winning value are idempotent repeats; the others conflict.
    assert outcomes.count("ok") == 2 and outcomes.count("conflict") == 2


def test_failure_between_annotation_and_event_leaves_neither(store: AnnotationStore, monkeypatch) -> None:
    def broken_log(session, event):
        raise RuntimeError("disk full while logging")

    monkeypatch.setattr(store.annotations, "_append_event", broken_log)
    with pytest.raises(RuntimeError, match="disk full"):
        store.annotations.annotate("establishing", "v1:0", "ana", True)
    monkeypatch.undo()
    assert store.annotations.get("establishing", "v1:0", "ana") is None
    assert store.annotations.events("establishing") == []


def test_consensus_is_the_majority_of_annotators(store: AnnotationStore) -> None:
    for who, value in [("ana", True), ("bo", True), ("cy", False)]:
        store.annotations.annotate("establishing", "v1:0", who, value)
    store.annotations.annotate("establishing", "v1:5", "ana", False)
    assert store.annotations.consensus("establishing") == {"v1:0": True, "v1:5": False}
    assert store.annotations.counts("establishing") == (1, 1)
    assert {r.annotator for r in store.annotations.current("establishing", value=True)} == {"ana", "bo"}


def test_users_tokens_and_passwords(store: AnnotationStore) -> None:
    user, token = store.users.create("ana", "annotator", password="correct horse")
    assert user.role == "annotator"
    assert store.users.by_token(token).name == "ana"
    assert store.users.by_token(token + "x") is None
    assert store.users.check_password("ana", "correct horse").name == "ana"
    assert store.users.check_password("ana", "wrong") is None
    with pytest.raises(ValidationFailed, match="role 'boss' is not one of admin, annotator, viewer"):
        store.users.create("bo", "boss")
    new_token = store.users.reset_token("ana")
    assert store.users.by_token(token) is None and store.users.by_token(new_token).name == "ana"


def test_classifier_versions_count_up(store: AnnotationStore) -> None:
    common = dict(
        model=b"\x00\x01",
        encoder="handcrafted",
        dim=256,
        n_pos=10,
        n_neg=12,
        data_diversity=0.4,
        snapshot=[["v1:0", True]],
        snapshot_event_id=7,
    )
    first = store.versions.save("establishing", model_quality=0.7, **common)
    second = store.versions.save("establishing", model_quality=0.8, **common)
    assert (first.version, second.version) == (1, 2)
    assert store.versions.get("establishing").model_quality == pytest.approx(0.8)
    assert store.versions.get("establishing", 1).model == b"\x00\x01"
    store.versions.mark_published("establishing", 1)
    assert store.versions.get("establishing", 1).published_at is not None
    with pytest.raises(NotFoundError, match="no version 5"):
        store.versions.get("establishing", 5)


def test_unreachable_database_is_one_clear_error() -> None:
    with pytest.raises(StoreUnavailable, match=r"VA_DATABASE_URL \(127.0.0.1:1/nope\) is not reachable"):
        AnnotationStore("postgresql+psycopg://u:p@127.0.0.1:1/nope")


def test_events_record_who_made_a_change_for_someone_else(store: AnnotationStore) -> None:
    store.annotations.annotate("establishing", "v1:0", "ana", True)
    store.annotations.annotate("establishing", "v1:0", "ana", None, source="undo", actor="admin")
    first, second = store.annotations.events("establishing")
    assert (first.annotator, first.actor) == ("ana", "ana")
    assert (second.annotator, second.actor, second.source) == ("ana", "admin", "undo")


def test_upgrading_an_old_database_keeps_its_events(database_url: str) -> None:
    """A database made by revision 0001 (no event actor) upgrades in place; old events read as self-made."""
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    from annotator_core.store import MIGRATIONS

    engine = create_engine(database_url)
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
        conn.execute(
            text(
                "INSERT INTO labels (name, description, keywords, positive_examples, negative_examples, "
                "created_by, created_at, recommender_state) VALUES "
                "('old', '', '[]', '[]', '[]', '', CURRENT_TIMESTAMP, '{}')"
            )
        )
        conn.execute(
            text(
                "INSERT INTO annotation_events (label_id, shot_id, annotator, old_value, new_value, source, "
                "version, at) SELECT id, 'v1:0', 'ana', NULL, TRUE, 'search', 1, CURRENT_TIMESTAMP "
                "FROM labels WHERE name = 'old'"
            )
        )
    engine.dispose()
    store = AnnotationStore(database_url)
    from alembic.script import ScriptDirectory

    assert store.db.revision() == ScriptDirectory.from_config(cfg).get_current_head()
    (event,) = store.annotations.events("old")
    assert (event.annotator, event.actor, event.new_value) == ("ana", "ana", True)
    store.db.close()
