"""Typed rows of the LanceDB tables, defined once; the Arrow schemas are derived from them.

The width of the shot vector comes from the encoder, so the shot record is
made per dimension by :func:`shot_model` (cached), all sharing :class:`ShotBase`.
"""

from __future__ import annotations

from datetime import datetime
from functools import cache
from typing import Literal

import pyarrow as pa
from lancedb.pydantic import LanceModel, Vector
from pydantic import create_model

VIDEOS_TABLE = "videos"
SHOTS_TABLE = "shots"

VideoStatus = Literal["done", "failed"]


class VideoRecord(LanceModel):
    """One row of ``videos``: a title and what ingest made of it."""

    video_id: str  # content fingerprint: stable when the file moves or is re-ingested
    uri: str
    title: str
    duration_s: float
    fps: float
    width: int
    height: int
    n_frames: int
    n_shots: int
    status: str  # "done" | "failed"
    error: str
    ingested_at: datetime
    encoder: str


class ShotBase(LanceModel):
    """Columns of ``shots`` other than the vector."""

    shot_id: str  # f"{video_id}:{start_frame}"
    video_id: str
    start_frame: int
    end_frame: int  # exclusive
    start_s: float
    end_s: float
    thumbnail: bytes  # JPEG
    cluster_id: int  # -1 until clustering has run
    encoder: str


@cache
def shot_model(dim: int) -> type[ShotBase]:
    """The shot record whose ``vector`` is a fixed-size float32 list of ``dim``."""
    if dim <= 0:
        raise ValueError(f"vector dimension must be positive, got {dim}")
    model = create_model(f"ShotRecord{dim}", __base__=ShotBase, vector=(Vector(dim), ...))
    return model


def shot_id(video_id: str, start_frame: int) -> str:
    return f"{video_id}:{start_frame}"


def videos_schema() -> pa.Schema:
    return VideoRecord.to_arrow_schema()


def shots_schema(dim: int) -> pa.Schema:
    return shot_model(dim).to_arrow_schema()
