"""The query routes' answers as bytes: each score the float32 the `scores` table holds, a missing one null."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pyarrow as pa

from serving.scoring.query import json_bytes, timeline
from serving.scoring.score_index import build_index

# Scores whose 7-decimal rounding is another float32 (the encoding before orjson wrote them that way).
SCORES = np.array([0.12345679, 0.99999994, 1.2345678e-05], dtype=np.float32)


def strict(data: bytes) -> Any:
    """Parse as JSON proper: the NaN / Infinity tokens json.dumps writes are refused."""

    def refuse(token: str) -> None:
        raise AssertionError(f"{token} is not JSON")

    return json.loads(data, parse_constant=refuse)


def _index() -> Any:
    """One title of four shots (ids out of time order); label "a" scores three of them, "b" none."""
    shots = pa.table(
        {
            "shot_id": ["t:10", "t:20", "t:30", "t:5"],
            "video_id": ["t"] * 4,
            "start_s": [0.4, 0.8, 1.2, 0.2],
            "end_s": [0.8, 1.2, 1.6, 0.4],
        }
    )
    videos = pa.table({"video_id": ["t"], "title": ["A title"]})
    scores = pa.table(
        {
            "shot_id": ["t:5", "t:10", "t:30"],
            "version": pa.array([1, 1, 1], pa.int64()),
            "score": pa.array(SCORES, pa.float32()),
        }
    )
    return build_index(shots, videos, {"a": scores})


def test_timeline_bytes_hold_each_stored_float32_and_null_where_unscored():
    answer = timeline(_index(), "t", None, {"a": 1, "b": 1})
    body = strict(json_bytes(answer))
    assert body["shot_ids"] == ["t:5", "t:10", "t:20", "t:30"]
    assert body["start_s"] == [0.2, 0.4, 0.8, 1.2] and body["end_s"] == [0.4, 0.8, 1.2, 1.6]
    a = body["scores"]["a"]
    assert a[2] is None  # t:20 has no score for "a"
    assert [np.float32(v) for v in (a[0], a[1], a[3])] == SCORES.tolist()
    assert body["scores"]["b"] == [None] * 4  # published, never scored
    assert body["labels"]["a"]["unscored"] == 1 and body["labels"]["b"]["unscored"] == 4


def test_json_bytes_writes_nan_and_infinity_as_null_and_keys_as_strings():
    values = np.array([np.nan, np.inf, -np.inf, 0.5], dtype=np.float32)
    body = strict(json_bytes({"v": values, "s": np.float32(np.nan), 1: "one"}))
    assert body == {"v": [None, None, None, 0.5], "s": None, "1": "one"}
