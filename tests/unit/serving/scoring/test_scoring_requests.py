"""Binary scoring payloads (raw float32 rows, Arrow IPC streams) as checked matrices, or a 4xx naming the field."""

from __future__ import annotations

import io
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from serving.http_errors import ApiError, body_of
from serving.scoring.requests import ARROW_STREAM, RAW_FLOAT32, matrix_from_body

DIM = 4
MAX_VECTORS = 3


def decode(body: bytes, content_type: str) -> np.ndarray:
    return matrix_from_body(body, content_type, dim=DIM, max_vectors=MAX_VECTORS)


def refused(body: bytes, content_type: str) -> tuple[int, dict[str, Any]]:
    """The status and the error body a client gets for this payload."""
    with pytest.raises(ApiError) as caught:
        decode(body, content_type)
    return caught.value.status_code, body_of(caught.value)["error"]


def arrow_stream(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def fixed_size(rows: np.ndarray, width: int | None = None) -> pa.FixedSizeListArray:
    return pa.FixedSizeListArray.from_arrays(pa.array(rows.ravel()), width or rows.shape[1])


ROWS = np.arange(2 * DIM, dtype=np.float32).reshape(2, DIM) / 10


def test_raw_little_endian_float32_rows() -> None:
    x = decode(ROWS.astype("<f4").tobytes(), RAW_FLOAT32)
    assert x.dtype == np.float32 and x.flags.c_contiguous
    np.testing.assert_array_equal(x, ROWS)


def test_raw_bytes_are_read_little_endian_whatever_the_sender_meant() -> None:
    x = decode(ROWS.astype(">f4").tobytes(), RAW_FLOAT32)  # a big-endian sender gets other numbers back
    np.testing.assert_array_equal(x, ROWS.astype(">f4").view("<f4"))


def test_raw_body_that_is_not_whole_rows_names_the_row_size() -> None:
    status, error = refused(b"\0" * (4 * DIM + 2), RAW_FLOAT32)
    assert status == 422 and error["field"] == "body" and error["code"] == "dimension_mismatch"
    assert error["expected"] == f"a multiple of {4 * DIM} bytes"
    assert f"has {4 * DIM + 2} bytes" in error["message"]


def test_raw_empty_body_asks_for_one_vector() -> None:
    status, error = refused(b"", RAW_FLOAT32)
    assert status == 422 and error["field"] == "vectors" and error["expected"] == f"[n >= 1, {DIM}]"


def test_too_many_rows_are_413_with_the_limit() -> None:
    status, error = refused(np.zeros((MAX_VECTORS + 1, DIM), "<f4").tobytes(), RAW_FLOAT32)
    assert status == 413 and error["code"] == "too_large" and error["field"] == "vectors"
    assert error["expected"] == f"at most {MAX_VECTORS} vectors" and "VA_SCORING_MAX_VECTORS" in error["message"]
    assert decode(np.zeros((MAX_VECTORS, DIM), "<f4").tobytes(), RAW_FLOAT32).shape == (MAX_VECTORS, DIM)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_a_non_finite_value_is_named_by_row_and_column(bad: float) -> None:
    rows = ROWS.copy()
    rows[1, 2] = bad
    status, error = refused(rows.astype("<f4").tobytes(), RAW_FLOAT32)
    assert status == 422 and error["field"] == "vectors[1][2]" and error["expected"] == "a finite float"


def test_arrow_fixed_size_list_column_named_vector() -> None:
    other = pa.array(["a", "b"])
    x = decode(arrow_stream(pa.table({"id": other, "vector": fixed_size(ROWS)})), ARROW_STREAM)
    np.testing.assert_array_equal(x, ROWS)


def test_arrow_without_a_vector_column_uses_the_first_and_casts_float64() -> None:
    x = decode(arrow_stream(pa.table({"embedding": fixed_size(ROWS.astype(np.float64))})), ARROW_STREAM)
    assert x.dtype == np.float32
    np.testing.assert_allclose(x, ROWS)


def test_arrow_variable_lists_of_the_right_width_are_accepted() -> None:
    x = decode(arrow_stream(pa.table({"vector": pa.array(ROWS.tolist(), pa.list_(pa.float32()))})), ARROW_STREAM)
    np.testing.assert_array_equal(x, ROWS)


def test_arrow_ragged_lists_name_the_width_found() -> None:
    ragged = pa.array([[0.1] * DIM, [0.1] * (DIM + 1)], pa.list_(pa.float32()))
    status, error = refused(arrow_stream(pa.table({"vector": ragged})), ARROW_STREAM)
    assert status == 422 and error["code"] == "dimension_mismatch" and error["field"] == "vector"
    assert error["expected"] == DIM and f"holds {DIM + 1}-value vectors" in error["message"]


def test_arrow_vectors_of_another_width_are_a_dimension_mismatch() -> None:
    narrow = np.zeros((2, DIM - 1), np.float32)
    status, error = refused(arrow_stream(pa.table({"vector": fixed_size(narrow)})), ARROW_STREAM)
    assert status == 422 and error["code"] == "dimension_mismatch" and error["expected"] == DIM


def test_arrow_column_that_is_not_a_list_names_the_type_expected() -> None:
    status, error = refused(arrow_stream(pa.table({"vector": pa.array([1, 2])})), ARROW_STREAM)
    assert status == 422 and error["field"] == "vector"
    assert error["expected"] == f"fixed_size_list<float32>[{DIM}]" and "int64" in error["message"]


def test_arrow_null_rows_are_refused() -> None:
    with_null = pa.array([[0.1] * DIM, None], pa.list_(pa.float32(), DIM))
    status, error = refused(arrow_stream(pa.table({"vector": with_null})), ARROW_STREAM)
    assert status == 422 and error["field"] == "vector" and "null" in error["message"]


def test_arrow_stream_with_no_columns_asks_for_a_vector_column() -> None:
    status, error = refused(arrow_stream(pa.table({})), ARROW_STREAM)
    assert status == 422 and error["field"] == "vector"


def test_a_body_that_is_not_an_arrow_stream() -> None:
    status, error = refused(b"not arrow at all", ARROW_STREAM)
    assert status == 422 and error["field"] == "body" and error["expected"] == "an Arrow IPC stream"


def test_an_empty_arrow_table_asks_for_one_vector() -> None:
    empty = pa.table({"vector": pa.array([], pa.list_(pa.float32(), DIM))})
    status, error = refused(arrow_stream(empty), ARROW_STREAM)
    assert status == 422 and error["field"] == "vectors"


@pytest.mark.parametrize("content_type", ["text/csv", "application/json", ""])
def test_other_content_types_are_415_listing_the_accepted_ones(content_type: str) -> None:
    status, error = refused(ROWS.tobytes(), content_type)
    assert status == 415 and error["code"] == "unsupported_media_type" and error["field"] == "Content-Type"
    assert error["expected"] == ["application/json", RAW_FLOAT32, ARROW_STREAM]
