"""A group labelling is one batch of events, undone as one step, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from annotator_core.errors import ConflictError, NotFoundError
from annotator_core.store import AnnotationStore

GROUP = ["v1:0", "v2:0", "v3:0", "v4:0"]


@pytest.fixture()
def store(database_url: str) -> Iterator[AnnotationStore]:
    s = AnnotationStore(database_url)
    s.labels.create("cars")
    s.annotations.annotate("cars", "v2:0", "ana", False, source="search")
    yield s
    s.db.close()


def _values(store: AnnotationStore) -> dict[str, bool | None]:
    return {sid: v for sid, (v, _version) in store.annotations.values_and_versions("cars", "ana", GROUP).items()}


def test_group_labelling_is_one_batch_undone_in_one_step(store: AnnotationStore) -> None:
    outcome = store.annotations.annotate_many("cars", "ana", [(s, True) for s in GROUP], source="group", batch="b1")
    assert (outcome.written, outcome.unchanged) == (4, 0)
    events = store.annotations.events_of_batch("cars", "b1")
    assert [(e.shot_id, e.old_value, e.new_value, e.source) for e in events] == [
        ("v1:0", None, True, "group"),
        ("v2:0", False, True, "group"),
        ("v3:0", None, True, "group"),
        ("v4:0", None, True, "group"),
    ]
    undone = store.annotations.undo_batch("cars", "b1", actor="ana", new_batch="b2")
    assert len(undone) == 4
    assert _values(store) == {"v1:0": None, "v2:0": False, "v3:0": None, "v4:0": None}
    assert {e.source for e in store.annotations.events_of_batch("cars", "b2")} == {"undo"}
    assert store.annotations.consensus("cars") == {"v2:0": False}
    # The undo undone, then one member changed: undoing the batch again is refused whole.
    store.annotations.undo_batch("cars", "b2", actor="ana", new_batch="b3")
    assert set(_values(store).values()) == {True}
    store.annotations.annotate("cars", "v3:0", "ana", False)
    with pytest.raises(ConflictError, match="v3:0"):
        store.annotations.undo_batch("cars", "b3", actor="ana", new_batch="b4")
    assert _values(store) == {"v1:0": True, "v2:0": True, "v3:0": False, "v4:0": True}
    with pytest.raises(NotFoundError):
        store.annotations.events_of_batch("cars", "b4")
    assert all(e.batch == "" for e in store.annotations.events("cars") if e.shot_id == "v3:0" and e.source == "")
