"""The request side of ``POST /v1/query/shots`` and ``GET /v1/videos/{video_id}/timeline`` (serving/scoring/query.py).

A body ``{"labels": [...], "mode"?: "all"|"any", "threshold"?: 0.8, "top_k"?: 100, "limit"?: 100,
"video_ids"?: [...], "titles"?: [...], "from_s"?: 0, "to_s"?: 60, "cursor"?: "..."}`` becomes a checked
:class:`ShotQuery`, and a timeline's ``labels=a,b`` a list of label names; every problem is a 422 naming
its field. A ``next_cursor`` is an opaque encoding (:func:`encode_cursor`) of the last row's score and
shot id, bound to the query it was made for.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from serving.http_errors import ApiError

MAX_LABELS = 32
MAX_LIMIT = 1000
DEFAULT_LIMIT = 100
MAX_TOP_K = 1_000_000
MAX_FILTER_ITEMS = 1000
MODES = ("all", "any")
QUERY_FIELDS = ("labels", "mode", "threshold", "top_k", "limit", "video_ids", "titles", "from_s", "to_s", "cursor")


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


def parse_query_body(raw: bytes) -> ShotQuery:
    """The :class:`ShotQuery` of a raw ``POST /v1/query/shots`` body (an empty body is JSON null: a 422)."""
    try:
        body = json.loads(raw or b"null")
    except ValueError as exc:
        raise _invalid("body", f"the body is not JSON ({exc}).", "a JSON object") from None
    return parse_query(body)


def parse_timeline_params(params: Mapping[str, str]) -> list[str] | None:
    """The labels a timeline asks for (None: every label), from its query string's parameters."""
    unknown = [k for k in params if k != "labels"]
    if unknown:
        raise _invalid(
            unknown[0], f"{unknown[0]!r} is not a timeline parameter; the only one is labels=a,b.", ["labels"]
        )
    return parse_label_param(params.get("labels"))
