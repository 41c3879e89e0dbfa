"""HTTP Range headers for the shot video route (RFC 9110 section 14): the byte span served, or 416."""

from __future__ import annotations

import pytest

from serving.annotation.media import parse_range
from serving.http_errors import ApiError

SIZE = 1000  # bytes in the file being served


@pytest.mark.parametrize(
    ("header", "span"),
    [
        ("bytes=0-499", (0, 499)),  # the first 500 bytes
        ("bytes=500-999", (500, 999)),
        ("bytes=999-999", (999, 999)),  # the last byte alone
        ("bytes=500-", (500, 999)),  # open range: to the end
        ("bytes=0-", (0, 999)),
        ("bytes=900-5000", (900, 999)),  # an end past the file is cut to the last byte
        ("bytes=-200", (800, 999)),  # suffix range: the last 200 bytes
        ("bytes=-1", (999, 999)),
        ("bytes=-5000", (0, 999)),  # a suffix longer than the file is the whole file
        ("bytes=0-1, 5-6", (0, 1)),  # several ranges: the first is served
        ("bytes = 10 - 20", (10, 20)),  # spaces are tolerated
    ],
)
def test_satisfiable_ranges_give_the_inclusive_span(header: str, span: tuple[int, int]) -> None:
    assert parse_range(header, SIZE) == span


@pytest.mark.parametrize(
    "header",
    [
        None,  # no Range header: the whole file, 200
        "",
        "bytes=500-100",  # last before first: invalid, so ignored
        "bytes=-",  # neither end
        "items=0-10",  # another unit
        "bytes=a-b",
        "bytes=0-10-20",
    ],
)
def test_missing_or_unreadable_ranges_are_ignored(header: str | None) -> None:
    assert parse_range(header, SIZE) is None


@pytest.mark.parametrize(
    ("header", "size"),
    [
        ("bytes=1000-", SIZE),  # starts one past the last byte
        ("bytes=1000-1200", SIZE),
        ("bytes=5000-6000", SIZE),
        ("bytes=-0", SIZE),  # a suffix of no bytes
        ("bytes=0-", 0),  # an empty file has no byte to serve
        ("bytes=-5", 0),
    ],
)
def test_unsatisfiable_ranges_are_416_with_the_file_size(header: str, size: int) -> None:
    with pytest.raises(ApiError) as caught:
        parse_range(header, size)
    error = caught.value
    assert (error.status_code, error.code) == (416, "range_not_satisfiable")
    assert error.extra["size"] == size  # what a client needs to ask again
    assert f"({size} bytes)" in str(error)
