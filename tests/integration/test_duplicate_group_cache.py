"""The near-duplicate groups a search folds by: a missing ``duplicates`` table is not looked up on every
search, yet groups written through the same store show at once, groups written elsewhere within
``ABSENT_RECHECK_S``, and a build (which accepts no stale answer) sees them at once."""

from __future__ import annotations

import time
from pathlib import Path

from annotator_core.duplicates import ABSENT_RECHECK_S, duplicate_groups
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore

ROWS = [
    {"shot_id": "a:0", "group_id": "a:0", "representative": True, "encoder": "handcrafted"},
    {"shot_id": "b:0", "group_id": "a:0", "representative": False, "encoder": "handcrafted"},
]


def store(folder: Path) -> ShotStore:
    return ShotStore.from_settings(Settings(data_dir=folder))


def test_groups_written_through_the_same_store_show_at_once(tmp_path: Path) -> None:
    shots = store(tmp_path)
    assert duplicate_groups(shots).n_groups == 0  # no table yet: remembered as absent
    shots.upsert_duplicates(ROWS)
    assert duplicate_groups(shots).group_of("b:0") == "a:0"


def test_groups_written_by_another_process_show_within_the_recheck_time(tmp_path: Path) -> None:
    reader, writer = store(tmp_path), store(tmp_path)  # two stores: as a serving worker and an ingest job
    assert duplicate_groups(reader, absent_for=ABSENT_RECHECK_S).n_groups == 0
    calls = 0
    listed = reader.table_names

    def counted() -> list[str]:
        nonlocal calls
        calls += 1
        return listed()

    reader.table_names = counted  # type: ignore[method-assign]
    for _ in range(20):
        assert duplicate_groups(reader, absent_for=ABSENT_RECHECK_S).n_groups == 0
    assert calls == 0  # the absent table was not listed again on every search
    writer.upsert_duplicates(ROWS)
    deadline = time.monotonic() + ABSENT_RECHECK_S + 2.0
    while duplicate_groups(reader, absent_for=ABSENT_RECHECK_S).n_groups == 0:
        assert time.monotonic() < deadline, "groups written by another store never showed"
        time.sleep(0.05)
    assert duplicate_groups(reader).group_of("b:0") == "a:0"


def test_a_build_sees_groups_written_elsewhere_at_once(tmp_path: Path) -> None:
    reader, writer = store(tmp_path), store(tmp_path)
    assert duplicate_groups(reader, absent_for=ABSENT_RECHECK_S).n_groups == 0  # a search just found none
    writer.upsert_duplicates(ROWS)
    assert duplicate_groups(reader).group_of("b:0") == "a:0"  # a build's call accepts no stale answer
