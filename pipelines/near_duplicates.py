"""The ingest step that finds near-duplicate shots and keeps the ``duplicates`` table up to date.

Two rules make a pair, either is enough: the embedding cosine at or above the
threshold (:func:`annotator_core.near_duplicates.similar_pairs`), or the
thumbnail fingerprints within ``duplicate_fingerprint_distance`` bits
(:mod:`annotator_core.fingerprint`: brightened, letterboxed, mirrored and
cropped copies, which the embedding misses) with at least
``duplicate_fingerprint_min_cosine`` of embedding cosine. Each shot's
fingerprint is computed once, from the thumbnail JPEG the shots row keeps, and
stored keyed on shot_id in ``shot_fingerprints`` (not on ``shots``: the
compressed corpus syncs on that table). It is done on the driver, once per
shot, at the ingest that adds it: ~0.5 ms of CPU a thumbnail (a quarter-size
gray JPEG decode, two 32 × 32 DCTs), so ~9 CPU-minutes and ~10 GB of
thumbnails read per million shots, against the far larger decode and
embedding cost of those shots.

Incremental: a table ``duplicate_checks`` remembers which videos were already
joined, with the encoder, threshold and fingerprint rule used. A later ingest
joins only the shots of videos not checked yet against every partition they
fall in, and their fingerprints against every fingerprint (pairs among old
shots are not computed again), merges them into the existing groups and writes
only the rows that changed, keyed on shot_id; a rerun writes nothing. A
changed encoder, threshold or fingerprint setting redoes the whole corpus once
(a checks table written before the fingerprint rule existed counts as changed).
A run killed before this step leaves its videos unchecked, so the next ingest
checks them.

Memory: the shot vectors are read once as float32 (what k-means clustering at
ingest already reads): 1 GB at 1M × 256, 20 GB at 10M × 512. The fingerprint
codes add 16 bytes a shot and their join ~100 MB of tables per million shots.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from annotator_core.fingerprint import NO_CODE, check_distance, fingerprint_jpeg, fingerprint_pairs
from annotator_core.near_duplicates import check_threshold, default_threshold, group_near_duplicates, similar_pairs
from annotator_core.records import SHOTS_TABLE
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore

CHECKS_TABLE = "duplicate_checks"
CHECKS_SCHEMA = pa.schema(
    [("video_id", pa.string()), ("encoder", pa.string()), ("threshold", pa.float64()), ("rule", pa.string())]
)
FINGERPRINTS_TABLE = "shot_fingerprints"
FINGERPRINTS_SCHEMA = pa.schema(
    [("shot_id", pa.string()), ("video_id", pa.string()), ("full", pa.int64()), ("crop", pa.int64())]
)
THUMBNAIL_VIDEOS_PER_READ = 256  # videos whose thumbnails one filtered scan reads (~10 KB a shot)


@dataclass(frozen=True)
class DuplicateReport:
    """What one detection pass did."""

    enabled: bool
    threshold: float = 0.0
    full: bool = False  # the whole corpus was joined (first run, or a new encoder or threshold)
    new_shots: int = 0  # shots joined against the corpus this time
    pairs: int = 0
    fingerprint_pairs: int = 0  # pairs the fingerprint rule found (some the cosine rule found too)
    fingerprinted: int = 0  # shots whose fingerprint was computed this time
    rows_written: int = 0
    rows_deleted: int = 0
    groups: int = 0
    duplicates: int = 0  # grouped shots that are not their group's representative
    seconds: float = 0.0


def threshold_for(settings: Settings, encoder: str) -> float:
    """The cosine threshold in effect: the setting, or the encoder's calibrated default when it is 0."""
    return check_threshold(settings.duplicate_threshold or default_threshold(encoder))


def fingerprint_rule(settings: Settings) -> str:
    """The fingerprint rule in effect, as recorded in ``duplicate_checks`` ("off" when it is turned off)."""
    if settings.duplicate_fingerprint_distance < 0:
        return "off"
    distance = check_distance(settings.duplicate_fingerprint_distance)
    return f"fingerprint<={distance}bits,cosine>={settings.duplicate_fingerprint_min_cosine}"


def find_duplicates(store: ShotStore, *, settings: Settings) -> DuplicateReport:
    """Join the shots of videos not yet checked against the corpus and update the ``duplicates`` table."""
    started = time.perf_counter()
    if not settings.duplicates:
        return DuplicateReport(enabled=False)
    encoder = store.encoder()
    if encoder is None:
        return DuplicateReport(enabled=True)
    threshold = threshold_for(settings, encoder)
    rule = fingerprint_rule(settings)
    checks = _read_checks(store)
    same = {vid for vid, key in checks.items() if key == (encoder, threshold, rule)}
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
    fingerprinted, by_fingerprint = 0, np.zeros((0, 2), np.int64)
    if rule != "off":
        codes, fingerprinted = _fingerprints(store, ids, videos)
        by_fingerprint = fingerprint_pairs(
            codes[:, 0], codes[:, 1], max_distance=settings.duplicate_fingerprint_distance, queries=queries,
            threads=os.cpu_count() or 1,
        )  # fmt: skip
        cosine = np.einsum("ij,ij->i", vectors[by_fingerprint[:, 0]], vectors[by_fingerprint[:, 1]])
        by_fingerprint = by_fingerprint[cosine >= settings.duplicate_fingerprint_min_cosine]
        pairs = np.unique(np.concatenate([pairs, by_fingerprint]), axis=0)
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
    _write_checks(
        store, sorted(done | set(videos.tolist())), encoder=encoder, threshold=threshold, rule=rule, replace=full
    )
    reps = sum(m.representative for m in groups.values())
    return DuplicateReport(
        enabled=True, threshold=threshold, full=full, new_shots=len(ids) if queries is None else len(queries),
        pairs=len(pairs), fingerprint_pairs=len(by_fingerprint), fingerprinted=fingerprinted,
        rows_written=len(changed), rows_deleted=len(stale), groups=reps,
        duplicates=len(groups) - reps, seconds=time.perf_counter() - started,
    )  # fmt: skip


def _existing(store: ShotStore) -> dict[str, tuple[str, bool, str]]:
    """shot id -> (group id, representative, encoder) of every ``duplicates`` row."""
    rows = store.read_duplicates()
    return {r["shot_id"]: (r["group_id"], r["representative"], r["encoder"]) for r in rows.to_pylist()}


def _fingerprints(store: ShotStore, ids: list[str], videos: np.ndarray) -> tuple[np.ndarray, int]:
    """int64 [N, 2] (full, crop) codes of the shots ``ids`` (:data:`NO_CODE` where the thumbnail is unreadable),
    computing and storing those not stored yet; and how many were computed."""
    table = store.db.create_table(FINGERPRINTS_TABLE, schema=FINGERPRINTS_SCHEMA, exist_ok=True)
    stored = table.to_lance().to_table(columns=["shot_id", "full", "crop"])
    row_of = {sid: i for i, sid in enumerate(ids)}
    codes = np.full((len(ids), 2), NO_CODE, np.int64)
    known = np.zeros(len(ids), bool)
    for sid, full, crop in zip(*(stored.column(c).to_pylist() for c in ("shot_id", "full", "crop")), strict=True):
        row = row_of.get(sid)
        if row is not None:
            codes[row], known[row] = (full, crop), True
    missing = sorted(set(videos[~known].tolist()))
    computed = 0
    shots = store.db.open_table(SHOTS_TABLE).to_lance()
    for start in range(0, len(missing), THUMBNAIL_VIDEOS_PER_READ):
        listed = ", ".join("'" + v.replace("'", "''") + "'" for v in missing[start : start + THUMBNAIL_VIDEOS_PER_READ])
        rows: list[dict[str, object]] = []
        for batch in shots.to_batches(columns=["shot_id", "video_id", "thumbnail"], filter=f"video_id IN ({listed})"):
            for sid, vid, jpeg in zip(*(batch.column(c).to_pylist() for c in range(3)), strict=True):
                row = row_of.get(sid)
                if row is None or known[row]:
                    continue
                found = fingerprint_jpeg(jpeg or b"")
                codes[row] = (NO_CODE, NO_CODE) if found is None else (found.full, found.crop)
                rows.append({"shot_id": sid, "video_id": vid, "full": int(codes[row, 0]), "crop": int(codes[row, 1])})
        if rows:
            data = pa.Table.from_pylist(rows, schema=FINGERPRINTS_SCHEMA)
            table.merge_insert("shot_id").when_matched_update_all().when_not_matched_insert_all().execute(data)
            computed += len(rows)
    return codes, computed


def _read_checks(store: ShotStore) -> dict[str, tuple[str, float, str]]:
    if CHECKS_TABLE not in store.table_names():
        return {}
    rows = store.db.open_table(CHECKS_TABLE).to_lance().to_table().to_pylist()
    # a table written before the fingerprint rule has no "rule": every video is redone once
    return {r["video_id"]: (r["encoder"], r["threshold"], r.get("rule") or "") for r in rows}


def _write_checks(
    store: ShotStore, video_ids: list[str], *, encoder: str, threshold: float, rule: str, replace: bool
) -> None:
    """Record the videos joined under this encoder, threshold and rule (keyed on video_id: a rerun changes nothing)."""
    if replace and CHECKS_TABLE in store.table_names():
        store.db.drop_table(CHECKS_TABLE)  # also replaces a table of an older schema
    table = store.db.create_table(CHECKS_TABLE, schema=CHECKS_SCHEMA, exist_ok=True)
    if video_ids:
        n = len(video_ids)
        data = pa.table(
            {"video_id": video_ids, "encoder": [encoder] * n, "threshold": [threshold] * n, "rule": [rule] * n},
            schema=CHECKS_SCHEMA,
        )
        table.merge_insert("video_id").when_matched_update_all().when_not_matched_insert_all().execute(data)
