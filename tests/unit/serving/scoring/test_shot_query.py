"""The label query's request side without a server: raw bodies, timeline parameters and cursors."""

from __future__ import annotations

import pytest

from serving.http_errors import ApiError
from serving.scoring.shot_query import (
    DEFAULT_LIMIT,
    Cursor,
    decode_cursor,
    encode_cursor,
    parse_query_body,
    parse_timeline_params,
)


def test_a_raw_body_becomes_a_checked_query_with_defaults():
    query = parse_query_body(b'{"labels": ["car chase", "car chase", "night"], "top_k": 5}')
    assert query.labels == ["car chase", "night"]  # repeated names are asked once
    assert (query.mode, query.top_k, query.limit, query.threshold) == ("all", 5, DEFAULT_LIMIT, None)


@pytest.mark.parametrize(
    ("raw", "field", "says"),
    [
        (b"{", "body", "not JSON"),
        (b"", "body", "JSON object"),
        (b'{"labels": ["a"], "top_k": 5, "treshold": 0.5}', "treshold", "not a query field"),
    ],
)
def test_a_bad_raw_body_is_a_422_naming_the_field(raw, field, says):
    with pytest.raises(ApiError) as caught:
        parse_query_body(raw)
    assert caught.value.status_code == 422 and caught.value.field == field
    assert says in str(caught.value)


def test_timeline_parameters_give_the_labels_or_none_for_every_label():
    assert parse_timeline_params({"labels": "a, b,a"}) == ["a", "b"]
    assert parse_timeline_params({}) is None


def test_an_unknown_timeline_parameter_is_a_422_naming_it():
    with pytest.raises(ApiError) as caught:
        parse_timeline_params({"labels": "a", "lables": "a"})
    assert caught.value.status_code == 422 and caught.value.field == "lables"
    assert "the only one is labels=a,b" in str(caught.value)


def test_a_cursor_reads_back_for_its_own_query_only():
    query = parse_query_body(b'{"labels": ["a"], "threshold": 0.5}')
    cursor = encode_cursor(query, Cursor(0.75, "v1:120", 100))
    again = parse_query_body(b'{"labels": ["a"], "threshold": 0.5, "limit": 10, "cursor": "%s"}' % cursor.encode())
    assert decode_cursor(again) == Cursor(0.75, "v1:120", 100)  # the page size may change between pages
    other = parse_query_body(b'{"labels": ["a"], "threshold": 0.6, "cursor": "%s"}' % cursor.encode())
    with pytest.raises(ApiError) as caught:
        decode_cursor(other)
    assert caught.value.field == "cursor"
