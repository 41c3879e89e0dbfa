"""Label queries for downstream apps: which shots show a label, and a title's label track (issue 15).

Routes, mounted on the scoring service (read-only; the ``scores`` table is written by ``va score-corpus``):

- ``POST /v1/query/shots``: ``{"labels": [...], "mode"?: "all"|"any", "threshold"?: 0.8, "top_k"?: 100,
  "limit"?: 100, "video_ids"?: [...], "titles"?: [...], "from_s"?: 0, "to_s"?: 60, "cursor"?: "..."}``:
  the shots whose score is >= ``threshold`` (or the ``top_k`` best, or both), sorted by score, ties by
  shot id; with several labels ``all`` ranks by the lowest of their scores (every label must pass) and
  ``any`` by the highest. ``next_cursor`` pages on (an opaque encoding of the last row's score and shot id).
- ``GET /v1/videos/{video_id}/timeline?labels=a,b``: every shot of a title, in time order, as columns
  (``shot_ids``, ``start_s``, ``end_s`` and ``scores[label]``, null where a shot has no score yet).

Both state, per label, the published version and how many shots are still scored by another version
(``stale``) or not at all (``unscored``), as ``va score-corpus`` decides it (pipelines/score_corpus.py),
and whether a newer state of the tables is being read meanwhile (``refreshing``).

A score is written as the shortest decimal that reads back as the same float32 as the ``scores`` table holds
(at most 9 significant digits), and a missing one as null; answers are encoded with orjson, which writes the
numpy columns directly (``json.dumps`` of a 1,000-shot x 10-label timeline's lists took about half its 12 ms).

The tables are read into memory once per change of any of them (:class:`ScoreIndex`): per label a dense
score column aligned with the shots sorted by id, and the shots in score order; a query is then a few
numpy operations, which keeps top-100 at 1M shots x 10 labels in milliseconds (benchmarks/query_latency.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import math
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio
import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from annotator_core.errors import VAError
from annotator_core.records import SCORES_TABLE, SHOTS_TABLE, VIDEOS_TABLE
from serving.http_errors import ApiError, error_response

log = logging.getLogger("va.scoring")
JSON = "application/json"
MAX_LABELS = 32
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_TOP_K = 1_000_000
MAX_FILTER_ITEMS = 1000
MODES = ("all", "any")
QUERY_FIELDS = ("labels", "mode", "threshold", "top_k", "limit", "video_ids", "titles", "from_s", "to_s", "cursor")
_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_bytes(payload: Any) -> bytes:
    """``payload`` as JSON: numpy arrays and scalars written as they are (a float32 as the shortest decimal
    that reads back as that float32), NaN and infinities as null (never the invalid ``NaN`` token), and
    non-string keys as strings as ``json.dumps`` writes them."""
    return orjson.dumps(payload, option=_ORJSON_OPTIONS)


# -- the in-memory index -------------------------------------------------------------------------


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


# -- requests ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ShotQuery:
    labels: list[str]
    mode: str = "all"
    threshold: float | None = None
    top_k: int | None = None
    limit: int = DEFAULT_LIMIT
    video_ids: list[str] | None = None
    titles: list[str] | None = None
    from_s: float | None = None
    to_s: float | None = None
    cursor: str | None = None

    def fingerprint(self) -> str:
        """What a cursor must have been made for: everything but the cursor and the page size."""
        parts = [
            self.labels,
            self.mode,
            self.threshold,
            self.top_k,
            self.video_ids,
            self.titles,
            self.from_s,
            self.to_s,
        ]
        return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Cursor:
    score: float
    shot_id: str
    returned: int


def _invalid(field_name: str, message: str, expected: Any) -> ApiError:
    return ApiError(422, "invalid", message, field=field_name, expected=expected)


def _string_list(body: Mapping[str, Any], name: str, *, required: bool = False, most: int) -> list[str] | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _invalid(name, f"{name} is missing; send a list of label names.", "a list of 1 or more strings")
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        raise _invalid(name, f"{name} must be a non-empty list of strings, got {value!r}.", "a list of strings")
    if len(value) > most:
        raise _invalid(name, f"{name} holds {len(value)} items, more than {most}; split the query.", f"<= {most}")
    for i, item in enumerate(value):
        if not isinstance(item, str) or not item.strip():
            raise _invalid(f"{name}[{i}]", f"{name}[{i}] is {item!r}; every item must be a non-empty string.", "str")
    return list(dict.fromkeys(value))


def _number(body: Mapping[str, Any], name: str, *, low: float, high: float | None = None) -> float | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _invalid(name, f"{name} is {value!r}; send a finite number.", "a number")
    if value < low or (high is not None and value > high):
        span = f"between {low} and {high}" if high is not None else f">= {low}"
        raise _invalid(name, f"{name} is {value!r}; it must be {span}.", span)
    return float(value)


def _integer(body: Mapping[str, Any], name: str, *, low: int, high: int) -> int | None:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise _invalid(name, f"{name} is {value!r}; send a whole number.", f"an integer in [{low}, {high}]")
    if not low <= value <= high:
        raise _invalid(name, f"{name} is {value}; it must be between {low} and {high}.", f"[{low}, {high}]")
    return value


def parse_query(body: Any) -> ShotQuery:
    """A checked :class:`ShotQuery` of a request body; every problem is a 422 naming its field."""
    if not isinstance(body, dict):
        raise _invalid(
            "body", 'the body must be a JSON object such as {"labels": ["car chase"], "top_k": 100}.', "object"
        )
    unknown = [k for k in body if k not in QUERY_FIELDS]
    if unknown:
        raise _invalid(
            unknown[0],
            f"{unknown[0]!r} is not a query field; the fields are {', '.join(QUERY_FIELDS)}.",
            list(QUERY_FIELDS),
        )
    labels = _string_list(body, "labels", required=True, most=MAX_LABELS)
    assert labels is not None
    mode = body.get("mode", "all")
    if mode not in MODES:
        raise _invalid(
            "mode", f"mode is {mode!r}; use 'all' (every label passes) or 'any' (one label passes).", list(MODES)
        )
    threshold = _number(body, "threshold", low=0.0, high=1.0)
    top_k = _integer(body, "top_k", low=1, high=MAX_TOP_K)
    if threshold is None and top_k is None:
        raise _invalid(
            "threshold",
            "send a threshold (shots scoring at least it) or a top_k (the k best), or both.",
            "threshold in [0, 1] or top_k >= 1",
        )
    limit = _integer(body, "limit", low=1, high=MAX_LIMIT) or DEFAULT_LIMIT
    from_s = _number(body, "from_s", low=0.0)
    to_s = _number(body, "to_s", low=0.0)
    if from_s is not None and to_s is not None and to_s <= from_s:
        raise _invalid("to_s", f"to_s ({to_s}) must be after from_s ({from_s}).", f"> {from_s}")
    cursor = body.get("cursor")
    if cursor is not None and (not isinstance(cursor, str) or not cursor):
        raise _invalid("cursor", f"cursor is {cursor!r}; send the next_cursor string of the previous page.", "str")
    return ShotQuery(
        labels=labels,
        mode=str(mode),
        threshold=threshold,
        top_k=top_k,
        limit=limit,
        video_ids=_string_list(body, "video_ids", most=MAX_FILTER_ITEMS),
        titles=_string_list(body, "titles", most=MAX_FILTER_ITEMS),
        from_s=from_s,
        to_s=to_s,
        cursor=cursor,
    )


def encode_cursor(query: ShotQuery, cursor: Cursor) -> str:
    raw = json.dumps([query.fingerprint(), cursor.score, cursor.shot_id, cursor.returned]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(query: ShotQuery) -> Cursor | None:
    if query.cursor is None:
        return None
    bad = _invalid(
        "cursor",
        "cursor is not a next_cursor of this query; send the next_cursor of the previous page with the "
        "same labels, mode, threshold, top_k and filters (or leave it out for the first page).",
        "the next_cursor string of the previous page",
    )
    try:
        text = query.cursor + "=" * (-len(query.cursor) % 4)
        made_for, score, shot_id, returned = json.loads(base64.urlsafe_b64decode(text.encode()))
    except (ValueError, TypeError, binascii.Error):
        raise bad from None
    if made_for != query.fingerprint() or not isinstance(shot_id, str) or not isinstance(returned, int):
        raise bad
    if not isinstance(score, int | float) or isinstance(score, bool):
        raise bad
    return Cursor(float(score), shot_id, returned)


# -- answering -----------------------------------------------------------------------------------


def _check_labels(index: ScoreIndex, labels: Sequence[str], published: Mapping[str, int]) -> None:
    for i, label in enumerate(labels):
        if label not in index.labels and label not in published:
            known = sorted(set(index.labels) | set(published))
            raise ApiError(
                404,
                "not_found",
                f"labels[{i}] = {label!r} is neither published nor scored; publish it with `va publish "
                f"{label}` and run `va score-corpus`. Known labels: {known}.",
                field=f"labels[{i}]",
                expected=known,
            )


def describe_labels(index: ScoreIndex, labels: Sequence[str], published: Mapping[str, int]) -> dict[str, Any]:
    """Per label: the published version, the versions its scores come from, and what is stale or unscored."""
    out = {}
    for label in labels:
        column = index.labels.get(label)
        versions = column.versions if column is not None else {}
        scored = sum(versions.values())
        current = published.get(label)
        stale = scored - versions.get(current, 0) if current is not None else 0
        out[label] = {
            "published_version": current,
            "score_versions": {str(v): c for v, c in sorted(versions.items())},
            "scored": scored,
            "stale": stale,
            "unscored": index.n_shots - scored,
        }
    return out


def _video_rows(index: ScoreIndex, query: ShotQuery) -> np.ndarray | None:
    """The shot rows the video id / title filters allow (None: no such filter)."""
    if query.video_ids is None and query.titles is None:
        return None
    wanted: list[str] = []
    for i, vid in enumerate(query.video_ids or []):
        if vid not in index.shots_of:
            raise ApiError(
                404,
                "not_found",
                f"video_ids[{i}] = {vid!r} has no ingested shots; list titles with `va status`.",
                field=f"video_ids[{i}]",
                expected="the video_id of an ingested title",
            )
        wanted.append(vid)
    by_title: dict[str, list[str]] = {}
    for vid, title in zip(index.video_ids, index.titles, strict=True):
        by_title.setdefault(title, []).append(vid)
    for i, title in enumerate(query.titles or []):
        if title not in by_title:
            raise ApiError(
                404,
                "not_found",
                f"titles[{i}] = {title!r} is not the title of an ingested video (titles match exactly); "
                "list titles with `va status`.",
                field=f"titles[{i}]",
                expected="the exact title of an ingested video",
            )
        wanted.extend(by_title[title])
    return np.unique(np.concatenate([index.shots_of[v] for v in dict.fromkeys(wanted)]))


def _key(index: ScoreIndex, labels: Sequence[str], mode: str, rows: np.ndarray | None) -> np.ndarray:
    """The ranking score of ``rows`` (all shots when None): the lowest (all) or highest (any) label score."""
    columns = []
    for label in labels:
        column = index.labels.get(label)
        if column is None:
            n = index.n_shots if rows is None else len(rows)
            columns.append(np.full(n, np.nan, dtype=np.float32))
        else:
            columns.append(column.score if rows is None else column.score[rows])
    stacked = np.vstack(columns)
    if mode == "all":
        return stacked.min(axis=0)  # NaN (a label without a score) propagates: the shot does not pass
    with np.errstate(invalid="ignore"):
        return np.fmax.reduce(stacked, axis=0)


def _page_fast(
    index: ScoreIndex, column: LabelColumn, query: ShotQuery, cursor: Cursor | None, take: int
) -> np.ndarray:
    """One label, no title filter: a slice of the label's score order (time window applied as a mask)."""
    ranked = column.ranked
    negative = -ranked  # ascending
    end = len(ranked)
    if query.threshold is not None:
        end = int(np.searchsorted(negative, -np.float32(query.threshold), side="right"))
    start = 0
    if cursor is not None:
        s = -np.float32(cursor.score)
        lo = int(np.searchsorted(negative, s, side="left"))
        hi = int(np.searchsorted(negative, s, side="right"))
        after = int(np.searchsorted(index.ids, cursor.shot_id.encode(), side="right"))
        start = lo + int(np.searchsorted(column.order[lo:hi], after, side="left"))
    if query.from_s is None and query.to_s is None:
        return column.order[start : min(end, start + take)]
    picked: list[np.ndarray] = []
    got = 0
    step = max(4 * take, 4096)
    while start < end and got < take:
        chunk = column.order[start : min(end, start + step)]
        chunk = chunk[_in_window(index, chunk, query)]
        picked.append(chunk[: take - got])
        got += len(picked[-1])
        start += step
        step *= 4
    return np.concatenate(picked) if picked else np.array([], dtype=np.int64)


def _in_window(index: ScoreIndex, rows: np.ndarray, query: ShotQuery) -> np.ndarray:
    keep = np.ones(len(rows), dtype=bool)
    if query.from_s is not None:
        keep &= index.end_s[rows] > query.from_s
    if query.to_s is not None:
        keep &= index.start_s[rows] < query.to_s
    return keep


def _page_general(index: ScoreIndex, query: ShotQuery, cursor: Cursor | None, take: int) -> np.ndarray:
    rows = _video_rows(index, query)
    key = _key(index, query.labels, query.mode, rows)
    rows = np.arange(index.n_shots) if rows is None else rows
    keep = ~np.isnan(key)
    if query.threshold is not None:
        keep &= key >= np.float32(query.threshold)
    if cursor is not None:
        s = np.float32(cursor.score)
        after = int(np.searchsorted(index.ids, cursor.shot_id.encode(), side="right"))
        keep &= (key < s) | ((key == s) & (rows >= after))
    keep &= _in_window(index, rows, query)
    rows, key = rows[keep], key[keep]
    if len(rows) > 4 * take:  # only the best `take` (and their ties) need sorting
        kth = np.partition(key, len(key) - take)[len(key) - take]
        best = key >= kth
        rows, key = rows[best], key[best]
    order = np.lexsort((rows, -key))
    return rows[order[:take]]


def query_shots(index: ScoreIndex, query: ShotQuery, published: Mapping[str, int]) -> dict[str, Any]:
    """The answer of ``POST /v1/query/shots`` for ``query`` over ``index``."""
    _check_labels(index, query.labels, published)
    cursor = decode_cursor(query)
    returned = cursor.returned if cursor is not None else 0
    take = query.limit
    if query.top_k is not None:
        take = max(0, min(take, query.top_k - returned))
    rows = np.array([], dtype=np.int64)
    if take > 0:
        single = index.labels.get(query.labels[0]) if len(query.labels) == 1 else None
        if single is not None and query.video_ids is None and query.titles is None:
            rows = _page_fast(index, single, query, cursor, take)
        else:
            rows = _page_general(index, query, cursor, take)
    out_rows = _rows(index, rows, query.labels)
    key = _key(index, query.labels, query.mode, rows) if len(rows) else np.array([], np.float32)
    total = returned + len(out_rows)
    more = len(out_rows) == take and take > 0 and (query.top_k is None or total < query.top_k)
    next_cursor = None
    if more:
        last = Cursor(float(key[-1]), out_rows[-1]["shot_id"], total)
        next_cursor = encode_cursor(query, last)
    labels = describe_labels(index, query.labels, published)
    return {
        "labels": labels,
        "mode": query.mode,
        "stale": any(v["stale"] for v in labels.values()),
        "shots": out_rows,
        "next_cursor": next_cursor,
    }


def _rows(index: ScoreIndex, rows: np.ndarray, labels: Sequence[str]) -> list[dict[str, Any]]:
    columns = [(label, index.labels.get(label)) for label in labels]
    out = []
    for row in rows.tolist():
        scores: dict[str, np.float32 | None] = {}  # a float32 is written as itself (json_bytes)
        versions: dict[str, int | None] = {}
        for label, column in columns:
            value = column.score[row] if column is not None else None
            scores[label] = None if value is None or np.isnan(value) else value
            versions[label] = int(column.version[row]) if column is not None and column.version[row] >= 0 else None
        vrow = int(index.video_row[row])
        out.append(
            {
                "shot_id": index.shot_id(row),
                "video_id": index.video_ids[vrow],
                "title": index.titles[vrow],
                "start_s": round(float(index.start_s[row]), 3),
                "end_s": round(float(index.end_s[row]), 3),
                "scores": scores,
                "versions": versions,
            }
        )
    return out


def timeline(
    index: ScoreIndex, video_id: str, labels: Sequence[str] | None, published: Mapping[str, int]
) -> dict[str, Any]:
    """The answer of ``GET /v1/videos/{video_id}/timeline``: every shot of the title with each label's score."""
    if video_id not in index.shots_of:
        raise ApiError(
            404,
            "not_found",
            f"video_id {video_id!r} has no ingested shots; list titles with `va status`.",
            field="video_id",
            expected="the video_id of an ingested title",
        )
    names = list(labels) if labels else sorted(set(index.labels) | set(published))
    _check_labels(index, names, published)
    rows = index.shots_of[video_id]
    # float32 columns as they are: json_bytes writes each value as the float32 it is and NaN (no score) as null.
    scores: dict[str, np.ndarray] = {}
    for label in names:
        column = index.labels.get(label)
        scores[label] = column.score[rows] if column is not None else np.full(len(rows), np.nan, dtype=np.float32)
    vrow = int(index.video_row[rows[0]]) if len(rows) else 0
    described = describe_labels(index, names, published)
    return {
        "video_id": video_id,
        "title": index.titles[vrow] if len(rows) else "",
        "labels": described,
        "stale": any(v["stale"] for v in described.values()),
        # Columns, one entry per shot in time order: a track is read column by column, and 1000s of
        # shots x labels as objects would cost more to make and send than the query itself.
        "shot_ids": [b.decode() for b in index.ids[rows].tolist()],  # 8x faster than np.char.decode
        "start_s": index.start_s[rows].round(3),
        "end_s": index.end_s[rows].round(3),
        "scores": scores,
    }


def parse_label_param(raw: str | None) -> list[str] | None:
    if raw is None:
        return None
    names = [s.strip() for s in raw.split(",")]
    if not raw.strip() or any(not s for s in names):
        raise _invalid(
            "labels", f"labels is {raw!r}; send comma-separated label names (labels=a,b) or leave it out.", "a,b"
        )
    if len(names) > MAX_LABELS:
        raise _invalid("labels", f"labels names {len(names)} labels, more than {MAX_LABELS}.", f"<= {MAX_LABELS}")
    return list(dict.fromkeys(names))


# -- the ASGI apps ---------------------------------------------------------------------------------


class QueryRoutes:
    """The query apps of one scoring worker; :meth:`attach` gives them the worker's published versions."""

    def __init__(self, store_factory: Callable[[], Any]) -> None:
        self._store_factory = store_factory
        self._reader: ScoreReader | None = None
        self._published: Callable[[], dict[str, int]] = dict
        self._lock = threading.Lock()

    def attach(self, published: Callable[[], dict[str, int]]) -> None:
        self._published = published

    def reader(self) -> ScoreReader:
        with self._lock:
            if self._reader is None:
                self._reader = ScoreReader(self._store_factory())
            return self._reader

    async def shots(self, request: Request) -> Response:
        try:
            raw = await request.body()
            try:
                body = json.loads(raw or b"null")
            except ValueError as exc:
                raise _invalid("body", f"the body is not JSON ({exc}).", "a JSON object") from None
            query = parse_query(body)
            published = self._published()
            answer = await anyio.to_thread.run_sync(lambda: query_shots(self.reader().current(), query, published))
            answer["refreshing"] = self.reader().refreshing
        except VAError as exc:
            return error_response(exc)
        return Response(json_bytes(answer), media_type=JSON)

    async def video_timeline(self, request: Request) -> Response:
        try:
            unknown = [k for k in request.query_params if k != "labels"]
            if unknown:
                raise _invalid(
                    unknown[0], f"{unknown[0]!r} is not a timeline parameter; the only one is labels=a,b.", ["labels"]
                )
            labels = parse_label_param(request.query_params.get("labels"))
            video_id, published = request.path_params["video_id"], self._published()
            answer = await anyio.to_thread.run_sync(
                lambda: timeline(self.reader().current(), video_id, labels, published)
            )
            answer["refreshing"] = self.reader().refreshing
        except VAError as exc:
            return error_response(exc)
        return Response(json_bytes(answer), media_type=JSON)

    def query_app(self) -> Starlette:
        """Mounted at ``/v1/query``."""
        return Starlette(routes=[Route("/shots", self.shots, methods=["POST"])])

    def videos_app(self) -> Starlette:
        """Mounted at ``/v1/videos``."""
        return Starlette(routes=[Route("/{video_id:str}/timeline", self.video_timeline, methods=["GET"])])
