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

This module answers and serves; the parts it stands on are their own modules: the request parsing and
validation and the cursor (serving/scoring/shot_query.py), and the in-memory index of the tables and its
refresh (serving/scoring/score_index.py).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
import numpy as np
import orjson
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from annotator_core.errors import VAError
from serving.http_errors import ApiError, error_response
from serving.scoring.score_index import LabelColumn, ScoreIndex, ScoreReader
from serving.scoring.shot_query import (
    Cursor,
    ShotQuery,
    decode_cursor,
    encode_cursor,
    parse_query_body,
    parse_timeline_params,
)

JSON = "application/json"
_ORJSON_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def json_bytes(payload: Any) -> bytes:
    """``payload`` as JSON: numpy arrays and scalars written as they are (a float32 as the shortest decimal
    that reads back as that float32), NaN and infinities as null (never the invalid ``NaN`` token), and
    non-string keys as strings as ``json.dumps`` writes them."""
    return orjson.dumps(payload, option=_ORJSON_OPTIONS)


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
            query = parse_query_body(await request.body())
            published = self._published()
            answer = await anyio.to_thread.run_sync(lambda: query_shots(self.reader().current(), query, published))
            answer["refreshing"] = self.reader().refreshing
        except VAError as exc:
            return error_response(exc)
        return Response(json_bytes(answer), media_type=JSON)

    async def video_timeline(self, request: Request) -> Response:
        try:
            labels = parse_timeline_params(request.query_params)
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
