"""Decoding and validation of scoring requests.

Every check raises :class:`~serving.http_errors.ApiError` naming the field, what was sent and what
is expected, so a client always gets a 4xx it can act on, never a 500.
Payloads: JSON lists of floats, raw little-endian float32 rows
(``application/octet-stream``) or an Arrow IPC stream
(``application/vnd.apache.arrow.stream``) with a fixed-size-list float column.
"""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from serving.http_errors import ApiError

RAW_FLOAT32 = "application/octet-stream"
ARROW_STREAM = "application/vnd.apache.arrow.stream"
BINARY_TYPES = (RAW_FLOAT32, ARROW_STREAM)


def check_matrix(x: np.ndarray, *, dim: int, max_vectors: int, field: str = "vectors") -> np.ndarray:
    """A C-contiguous float32 [n, dim] matrix of finite values, 1 <= n <= max_vectors."""
    if x.ndim != 2:
        raise ApiError(
            422,
            "invalid",
            f"{field} must be a list of vectors (a 2-d array), got {x.ndim} dimension(s).",
            field=field,
            expected=f"[n, {dim}]",
        )
    n = x.shape[0]
    if n == 0:
        raise ApiError(
            422, "invalid", f"{field} is empty; send at least one vector.", field=field, expected=f"[n >= 1, {dim}]"
        )
    if n > max_vectors:
        raise ApiError(
            413,
            "too_large",
            f"{field} holds {n} vectors, more than the {max_vectors} one request may carry "
            "(VA_SCORING_MAX_VECTORS); split the batch.",
            field=field,
            expected=f"at most {max_vectors} vectors",
        )
    if x.shape[1] != dim:
        raise ApiError(
            422,
            "dimension_mismatch",
            f"{field} have {x.shape[1]} values each but the served models expect {dim}; "
            "embed with the encoder the labels were trained on.",
            field=field,
            expected=dim,
        )
    if x.dtype != np.float32:
        x = x.astype(np.float32)
    finite = np.isfinite(x)
    if not finite.all():
        row, col = (int(v) for v in np.argwhere(~finite)[0])
        raise ApiError(
            422,
            "invalid",
            f"{field}[{row}][{col}] is {x[row, col]!r}; every value must be a finite number.",
            field=f"{field}[{row}][{col}]",
            expected="a finite float",
        )
    return np.ascontiguousarray(x)


def matrix_from_lists(rows: Sequence[Sequence[float]], *, dim: int, max_vectors: int) -> np.ndarray:
    """JSON rows (already typed as floats) as a checked matrix; ragged rows name the first bad row."""
    if len(rows) > max_vectors:
        return check_matrix(np.zeros((len(rows), dim), np.float32), dim=dim, max_vectors=max_vectors)
    for i, row in enumerate(rows):
        if len(row) != dim:
            raise ApiError(
                422,
                "dimension_mismatch",
                f"vectors[{i}] has {len(row)} values but the served models expect {dim}; "
                "embed with the encoder the labels were trained on.",
                field=f"vectors[{i}]",
                expected=dim,
            )
    x = np.asarray(rows, dtype=np.float32).reshape(len(rows), dim)
    return check_matrix(x, dim=dim, max_vectors=max_vectors)


def matrix_from_body(body: bytes, content_type: str, *, dim: int, max_vectors: int) -> np.ndarray:
    """A raw float32 or Arrow IPC body as a checked matrix."""
    if content_type == RAW_FLOAT32:
        if len(body) % (4 * dim):
            raise ApiError(
                422,
                "dimension_mismatch",
                f"body has {len(body)} bytes, not a whole number of {dim}-float32 rows ({4 * dim} bytes each); "
                "send little-endian float32 values, row after row.",
                field="body",
                expected=f"a multiple of {4 * dim} bytes",
            )
        x = np.frombuffer(body, dtype="<f4").reshape(-1, dim)
        return check_matrix(x, dim=dim, max_vectors=max_vectors)
    if content_type == ARROW_STREAM:
        return check_matrix(_arrow_matrix(body, dim=dim), dim=dim, max_vectors=max_vectors)
    raise ApiError(
        415,
        "unsupported_media_type",
        f"Content-Type {content_type!r} is not a vector payload; use application/json, {RAW_FLOAT32} "
        f"(float32 rows) or {ARROW_STREAM}.",
        field="Content-Type",
        expected=list(("application/json", *BINARY_TYPES)),
    )


def _arrow_matrix(body: bytes, *, dim: int) -> np.ndarray:
    import pyarrow as pa

    try:
        table = pa.ipc.open_stream(io.BytesIO(body)).read_all()
    except (pa.ArrowException, OSError) as exc:
        raise ApiError(
            422,
            "invalid",
            f"body is not an Arrow IPC stream ({exc}); write one with pyarrow.ipc.new_stream.",
            field="body",
            expected="an Arrow IPC stream",
        ) from None
    name = "vector" if "vector" in table.column_names else (table.column_names or [""])[0]
    if not name:
        raise ApiError(
            422, "invalid", "the Arrow stream has no columns; send a 'vector' column.", field="vector", expected=dim
        )
    column = table.column(name).combine_chunks()
    kind = column.type
    is_list = pa.types.is_fixed_size_list(kind) or pa.types.is_list(kind) or pa.types.is_large_list(kind)
    # Checked before any conversion: list<string> or list<list<float>> must not reach numpy.
    numeric = is_list and (pa.types.is_floating(kind.value_type) or pa.types.is_integer(kind.value_type))
    if not numeric:
        raise ApiError(
            422,
            "invalid",
            f"Arrow column {name!r} has type {kind}; expected fixed_size_list<float32>[{dim}] "
            "(a list of numbers per row).",
            field=name,
            expected=f"fixed_size_list<float32>[{dim}]",
        )
    if column.null_count:
        raise ApiError(
            422,
            "invalid",
            f"Arrow column {name!r} has null rows; every row must be a vector.",
            field=name,
            expected=dim,
        )
    if pa.types.is_fixed_size_list(kind):
        width = kind.list_size
    else:
        lengths = np.asarray(column.value_lengths())
        width = int(lengths[0]) if len(lengths) else dim
        if len(lengths) and not (lengths == width).all():
            bad = int(np.argmax(lengths != width))
            width = int(lengths[bad])
    values = np.asarray(column.flatten().to_numpy(zero_copy_only=False))
    if width != dim or (len(column) and values.size != len(column) * width):
        raise ApiError(
            422,
            "dimension_mismatch",
            f"Arrow column {name!r} holds {width}-value vectors but the served models expect {dim}; "
            "embed with the encoder the labels were trained on.",
            field=name,
            expected=dim,
        )
    return values.astype(np.float32, copy=False).reshape(len(column), dim)


def arrow_scores(labels: Sequence[str], scores: np.ndarray) -> bytes:
    """Scores as an Arrow IPC stream: one float32 column per label, one row per vector."""
    import pyarrow as pa

    table = pa.table({label: pa.array(scores[:, j]) for j, label in enumerate(labels)})
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def check_shot_ids(shot_ids: Sequence[str], *, max_items: int) -> list[str]:
    if not shot_ids:
        raise ApiError(
            422, "invalid", "shot_ids is empty; send at least one shot id.", field="shot_ids", expected="1 or more ids"
        )
    if len(shot_ids) > max_items:
        raise ApiError(
            413,
            "too_large",
            f"shot_ids holds {len(shot_ids)} ids, more than the {max_items} one request may carry; split it.",
            field="shot_ids",
            expected=f"at most {max_items} ids",
        )
    for i, sid in enumerate(shot_ids):
        if not isinstance(sid, str) or not sid.strip():
            raise ApiError(
                422,
                "invalid",
                f"shot_ids[{i}] is {sid!r}; shot ids look like '<video_id>:<start_frame>'.",
                field=f"shot_ids[{i}]",
                expected="'<video_id>:<start_frame>'",
            )
    return list(shot_ids)
