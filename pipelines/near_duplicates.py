"""The ingest step that finds near-duplicate shots and keeps the ``duplicates`` table up to date.

Incremental: a table ``duplicate_checks`` remembers which videos were already
joined, with the encoder and threshold used. A later ingest joins only the
shots of videos not checked yet against every partition they fall in (pairs
among old shots are not computed again), merges them into the existing groups
and writes only the rows that changed, keyed on shot_id; a rerun writes
nothing. A changed encoder or threshold redoes the whole corpus once. A run
killed before this step leaves its videos unchecked, so the next ingest
checks them.

Memory: the shot vectors are read once as float32 (what k-means clustering at
ingest already reads): 1 GB at 1M × 256, 20 GB at 10M × 512.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from annotator_core.near_duplicates import check_threshold, default_threshold, group_near_duplicates, similar_pairs
from annotator_core.records import SHOTS_TABLE
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore

CHECKS_TABLE = "duplicate_checks"
CHECKS_SCHEMA = pa.schema([("video_id", pa.string()), ("encoder", pa.string()), ("threshold", pa.float64())])


@dataclass(frozen=True)
class DuplicateReport:
    """What one detection pass did."""

    enabled: bool
    threshold: float = 0.0
    full: bool = False  # the whole corpus was joined (first run, or a new encoder or threshold)
    new_shots: int = 0  # shots joined against the corpus this time
    pairs: int = 0
    rows_written: int = 0
    rows_deleted: int = 0
    groups: int = 0
    duplicates: int = 0  # grouped shots that are not their group's representative
    seconds: float = 0.0


def threshold_for(settings: Settings, encoder: str) -> float:
    """The cosine threshold in effect: the setting, or the encoder's calibrated default when it is 0."""
    return check_threshold(settings.duplicate_threshold or default_threshold(encoder))


def find_duplicates(store: ShotStore, *, settings: Settings) -> DuplicateReport:
    """Join the shots of videos not yet checked against the corpus and update the ``duplicates`` table."""
    started = time.perf_counter()
    if not settings.duplicates:
        return DuplicateReport(enabled=False)
    encoder = store.encoder()
    if encoder is None:
        return DuplicateReport(enabled=True)
    threshold = threshold_for(settings, encoder)
    checks = _read_checks(store)
    same = {vid for vid, (enc, thr) in checks.items() if enc == encoder and thr == threshold}
    full = len(same) < len(checks) or not checks  # any video checked under other settings: redo everything
    done = store.done_video_ids()
    if not full and not (done - same):
        return DuplicateReport(enabled=True, threshold=threshold, seconds=time.perf_counter() - started)
    shots = (
        store.db.open_table(SHOTS_TABLE)
        .to_lance()
        .to_table(columns=["shot_id", "video_id", "start_s", "end_s", "vector"])
    )
    ids = shots.column("shot_id").to_pylist()
    videos = np.asarray(shots.column("video_id").to_pylist(), dtype=object)
    dim = shots.schema.field("vector").type.list_size
    vectors = np.asarray(
        shots.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False), np.float32
    ).reshape(-1, dim)
    starts = shots.column("start_s").to_numpy()
    durations = shots.column("end_s").to_numpy() - starts
    queries = None if full else np.flatnonzero(~np.isin(videos, list(same)))
    pairs = similar_pairs(vectors, threshold=threshold, queries=queries, partitions=settings.duplicate_partitions)
    existing = _existing(store)
    groups = group_near_duplicates(
        shot_ids=ids, durations=durations, starts=starts, pairs=pairs,
        existing=None if full else {sid: row[0] for sid, row in existing.items()},
    )  # fmt: skip
    changed = [
        {"shot_id": sid, "group_id": m.group_id, "representative": m.representative, "encoder": encoder}
        for sid, m in groups.items()
        if existing.get(sid) != (m.group_id, m.representative, encoder)
    ]
    stale = sorted(set(existing) - set(groups))  # singletons now (a full redo), or shots removed since
    store.upsert_duplicates(changed)
    store.delete_duplicates(stale)
    # every done video, shots or not: a title without shots is not looked at again
    _write_checks(store, sorted(done | set(videos.tolist())), encoder=encoder, threshold=threshold, replace=full)
    reps = sum(m.representative for m in groups.values())
    return DuplicateReport(
        enabled=True, threshold=threshold, full=full, new_shots=len(ids) if queries is None else len(queries),
        pairs=len(pairs), rows_written=len(changed), rows_deleted=len(stale), groups=reps,
        duplicates=len(groups) - reps, seconds=time.perf_counter() - started,
    )  # fmt: skip


def _existing(store: ShotStore) -> dict[str, tuple[str, bool, str]]:
    """shot id -> (group id, representative, encoder) of every ``duplicates`` row."""
    rows = store.read_duplicates()
    return {r["shot_id"]: (r["group_id"], r["representative"], r["encoder"]) for r in rows.to_pylist()}


def _read_checks(store: ShotStore) -> dict[str, tuple[str, float]]:
    if CHECKS_TABLE not in store.table_names():
        return {}
    rows = store.db.open_table(CHECKS_TABLE).to_lance().to_table().to_pylist()
    return {r["video_id"]: (r["encoder"], r["threshold"]) for r in rows}


def _write_checks(store: ShotStore, video_ids: list[str], *, encoder: str, threshold: float, replace: bool) -> None:
    """Record the videos joined under this encoder and threshold (keyed on video_id, so a rerun changes nothing)."""
    table = store.db.create_table(CHECKS_TABLE, schema=CHECKS_SCHEMA, exist_ok=True)
    if replace:
        table.delete("true")
    if video_ids:
        data = pa.table(
            {"video_id": video_ids, "encoder": [encoder] * len(video_ids), "threshold": [threshold] * len(video_ids)},
            schema=CHECKS_SCHEMA,
        )
        table.merge_insert("video_id").when_matched_update_all().when_not_matched_insert_all().execute(data)
