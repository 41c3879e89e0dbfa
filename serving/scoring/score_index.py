"""The in-memory index the label query routes answer from (serving/scoring/query.py).

The ``shots``, ``videos`` and ``scores`` tables are read into memory once per change of any of them
(:class:`ScoreReader`): per label a dense score column aligned with the shots sorted by id, and the shots in
score order; a query is then a few numpy operations, which keeps top-100 at 1M shots x 10 labels in
milliseconds (benchmarks/query_latency.py). The tables are read-only here; ``scores`` is written by
``va score-corpus``.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from annotator_core.records import SCORES_TABLE, SHOTS_TABLE, VIDEOS_TABLE

log = logging.getLogger("va.scoring")


@dataclass
class LabelColumn:
    """One label's scores aligned with :attr:`ScoreIndex.ids` (NaN / -1 where a shot has none)."""

    score: np.ndarray  # float32 [n_shots]
    version: np.ndarray  # int32 [n_shots]
    order: np.ndarray  # int64: the scored shots, best first, ties by shot id
    ranked: np.ndarray  # float32: score[order], descending
    versions: dict[int, int] = field(default_factory=dict)  # version -> shots scored by it


@dataclass
class ScoreIndex:
    """Shots sorted by id (so a tie on score is broken by the row number), their titles and scores."""

    ids: np.ndarray  # bytes [n] (UTF-8 shot ids, ascending)
    video_row: np.ndarray  # int32 [n]: row in video_ids
    start_s: np.ndarray  # float64 [n]
    end_s: np.ndarray  # float64 [n]
    video_ids: list[str]
    titles: list[str]
    shots_of: dict[str, np.ndarray]  # video_id -> its shot rows in time order
    labels: dict[str, LabelColumn]
    key: tuple[int, int, int] = (0, 0, 0)  # the versions of shots, videos and scores it was read at

    @property
    def n_shots(self) -> int:
        return int(self.ids.shape[0])

    def shot_id(self, row: int) -> str:
        return bytes(self.ids[row]).decode()


def empty_index() -> ScoreIndex:
    return ScoreIndex(
        ids=np.array([], dtype="S1"),
        video_row=np.array([], dtype=np.int32),
        start_s=np.array([], dtype=np.float64),
        end_s=np.array([], dtype=np.float64),
        video_ids=[],
        titles=[],
        shots_of={},
        labels={},
    )


def build_index(shots: pa.Table, videos: pa.Table, scores_of: Mapping[str, pa.Table]) -> ScoreIndex:
    """The index of ``shots`` (shot_id, video_id, start_s, end_s), ``videos`` (video_id, title) and each
    label's ``scores`` rows (shot_id, version, score)."""
    if shots.num_rows == 0:
        return empty_index()
    shots = shots.take(pc.sort_indices(shots, sort_keys=[("shot_id", "ascending")]))
    id_column = shots.column("shot_id").combine_chunks()
    ids = np.array([s.encode() for s in id_column.to_pylist()], dtype=bytes)
    video_column = shots.column("video_id").combine_chunks()
    video_ids = pc.unique(video_column).to_pylist()
    video_row = pc.index_in(video_column, value_set=pa.array(video_ids, pa.string())).to_numpy().astype(np.int32)
    title_of = dict(zip(videos.column("video_id").to_pylist(), videos.column("title").to_pylist(), strict=True))
    start_s = shots.column("start_s").to_numpy().astype(np.float64)
    end_s = shots.column("end_s").to_numpy().astype(np.float64)
    by_video = np.lexsort((start_s, video_row))
    bounds = np.searchsorted(video_row[by_video], np.arange(len(video_ids) + 1))
    shots_of = {v: by_video[bounds[i] : bounds[i + 1]] for i, v in enumerate(video_ids)}
    n = len(ids)
    labels: dict[str, LabelColumn] = {}
    for label, rows in scores_of.items():
        found = pc.index_in(rows.column("shot_id"), value_set=id_column).fill_null(-1)
        where = np.asarray(found.to_numpy(zero_copy_only=False), dtype=np.int64)
        known = where >= 0  # a score of a shot no longer in `shots` is left out
        rows_at = where[known].astype(np.int64)
        score = np.full(n, np.nan, dtype=np.float32)
        version = np.full(n, -1, dtype=np.int32)
        score[rows_at] = rows.column("score").to_numpy(zero_copy_only=False).astype(np.float32)[known]
        version[rows_at] = rows.column("version").to_numpy(zero_copy_only=False).astype(np.int32)[known]
        scored = np.flatnonzero(~np.isnan(score))
        order = scored[np.argsort(-score[scored], kind="stable")]  # scored ascends: ties stay in id order
        values, counts = np.unique(version[scored], return_counts=True)
        labels[label] = LabelColumn(
            score=score,
            version=version,
            order=order,
            ranked=score[order],
            versions={int(v): int(c) for v, c in zip(values, counts, strict=True)},
        )
    titles = [str(title_of.get(v, "")) for v in video_ids]
    return ScoreIndex(ids, video_row, start_s, end_s, video_ids, titles, shots_of, labels)


class ScoreReader:
    """The current :class:`ScoreIndex` of a store, read again whenever one of its tables changed.

    The first read is made while the request waits; after that a change is read by a background thread
    while queries go on answering from the previous index (``refreshing`` says so), so an ingest or a
    ``va score-corpus`` writing every few seconds never makes a query wait for a whole re-read.
    """

    def __init__(self, store: Any, *, background: bool = True) -> None:
        self.store = store
        self.background = background
        self._lock = threading.Lock()
        self._index = empty_index()
        self._datasets: dict[str, Any] = {}
        self._reading: threading.Thread | None = None

    @property
    def refreshing(self) -> bool:
        return self._reading is not None

    def current(self) -> ScoreIndex:
        with self._lock:
            key = self._versions()
            if key == self._index.key:
                return self._index
            datasets = tuple(self._datasets.get(n) for n in (SHOTS_TABLE, VIDEOS_TABLE, SCORES_TABLE))
            if not self.background or self._index.key == (0, 0, 0):
                self._index = _read_index(*datasets, key=key)
            elif self._reading is None:
                self._reading = threading.Thread(target=self._read_later, args=(datasets, key), daemon=True)
                self._reading.start()
            return self._index

    def _read_later(self, datasets: tuple[Any, Any, Any], key: tuple[int, int, int]) -> None:
        try:
            index = _read_index(*datasets, key=key)
            with self._lock:
                self._index = index
        except Exception:  # the next query tries again; until then the previous index answers
            log.exception("reading the scores index at table versions %s failed", key)
        finally:
            self._reading = None

    def _dataset(self, name: str) -> Any:
        """The Lance dataset of a table, kept open (listing its newest version is all a check costs)."""
        dataset = self._datasets.get(name)
        if dataset is None:
            if name not in self.store.table_names():
                return None
            dataset = self._datasets[name] = self.store.db.open_table(name).to_lance()
            return dataset
        latest = dataset.latest_version
        if latest != dataset.version:
            dataset = self._datasets[name] = dataset.checkout_version(latest)
        return dataset

    def _versions(self) -> tuple[int, int, int]:
        found = [self._dataset(name) for name in (SHOTS_TABLE, VIDEOS_TABLE, SCORES_TABLE)]
        return tuple(int(d.version) if d is not None else 0 for d in found)  # type: ignore[return-value]


def _read_index(shots_ds: Any, videos_ds: Any, scores_ds: Any, *, key: tuple[int, int, int]) -> ScoreIndex:
    """The index of the three tables' Lance datasets (None where a table does not exist)."""
    if shots_ds is None:
        index = empty_index()
        index.key = key
        return index
    shots = shots_ds.to_table(columns=["shot_id", "video_id", "start_s", "end_s"])
    videos = (
        videos_ds.to_table(columns=["video_id", "title"])
        if videos_ds is not None
        else pa.table({"video_id": pa.array([], pa.string()), "title": pa.array([], pa.string())})
    )
    scores_of: dict[str, pa.Table] = {}
    if scores_ds is not None:
        names = pc.unique(scores_ds.to_table(columns=["label"]).column("label")).to_pylist()
        for label in sorted(str(n) for n in names):
            scores_of[label] = scores_ds.to_table(
                columns=["shot_id", "version", "score"], filter=f"label = {_sql_str(label)}"
            )
    index = build_index(shots, videos, scores_of)
    index.key = key
    del shots, videos, scores_of
    pa.default_memory_pool().release_unused()  # the tables read are gone; keep only the index's arrays
    return index


def ensure_score_indexes(store: Any) -> list[str]:
    """BTREE indexes the query routes' reads use: scores.label/shot_id/score and shots.video_id/shot_id.

    Returns the columns indexed now (``va score-corpus`` or a benchmark calls this after writing)."""
    made = []
    for name, columns in ((SCORES_TABLE, ("label", "shot_id", "score")), (SHOTS_TABLE, ("shot_id", "video_id"))):
        if name not in store.table_names():
            continue
        table = store.db.open_table(name)
        indexed = {tuple(index.columns) for index in table.list_indices()}
        for column in columns:
            if (column,) not in indexed:
                table.create_scalar_index(column, index_type="BTREE")
                made.append(f"{name}.{column}")
    return made


def _sql_str(value: str) -> str:
    return "'" + str(value).replace("'", "''") + "'"
