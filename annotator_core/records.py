"""Typed rows of the LanceDB tables, defined once; the Arrow schemas are derived from them.

The width of the shot vector comes from the encoder, so the shot record is
made per dimension by :func:`shot_model` (cached), all sharing :class:`ShotBase`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from typing import Literal, get_args

import pyarrow as pa
from lancedb.pydantic import LanceModel, Vector
from pydantic import Field, create_model, field_validator

VIDEOS_TABLE = "videos"
SHOTS_TABLE = "shots"
SCORES_TABLE = "scores"
DUPLICATES_TABLE = "duplicates"

VideoStatus = Literal["done", "failed"]


class VideoRecord(LanceModel):
    """One row of ``videos``: a title and what ingest made of it (zeros until it is probed)."""

    video_id: str  # content fingerprint: stable when the file moves or is re-ingested
    uri: str
    title: str
    duration_s: float = 0.0
    fps: float = 0.0
    width: int = 0
    height: int = 0
    n_frames: int = 0
    n_shots: int = 0
    # A plain string column (LanceDB has no Arrow type for a Literal), checked against VideoStatus.
    status: str = "done"
    error: str = ""  # failed: why; done: what was left out (stretches the decoder could not read), else empty
    ingested_at: datetime = Field(default_factory=lambda: datetime.now(UTC))
    encoder: str = ""

    @field_validator("status")
    @classmethod
    def _known_status(cls, value: str) -> str:
        if value not in get_args(VideoStatus):
            raise ValueError(f"video status {value!r} is not one of {get_args(VideoStatus)}")
        return value


class ShotBase(LanceModel):
    """Columns of ``shots`` other than the vector."""

    shot_id: str  # f"{video_id}:{start_frame}"
    video_id: str
    start_frame: int
    end_frame: int  # exclusive
    start_s: float  # start_frame / fps; on a variable-rate stream the frame's own timestamp (first frame at 0)
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


class ScoreRecord(LanceModel):
    """One row of ``scores``: a published label's score of one shot, keyed on (shot_id, label)."""

    shot_id: str
    label: str
    version: int  # the classifier version that scored it
    score: float  # stored as float32, the ONNX graph's own precision (see scores_schema)
    model_tag: str  # the BentoML model that scored it


class DuplicateRecord(LanceModel):
    """One row of ``duplicates``: a shot that has near-duplicates, keyed on shot_id.

    Only shots in a group of two or more have a row (a catalog's singletons cost nothing); a group is named by
    its representative's shot id, so ``group_id == shot_id`` exactly for the representative.
    """

    shot_id: str
    group_id: str  # the representative's shot_id
    representative: bool
    encoder: str  # the encoder whose vectors found the group (groups are redone when it changes)


def shot_id(video_id: str, start_frame: int) -> str:
    return f"{video_id}:{start_frame}"


def video_of(shot_id: str) -> str:
    """The video id inside a shot id (the inverse of :func:`shot_id`), with no table read."""
    return shot_id.rsplit(":", 1)[0]


def videos_schema() -> pa.Schema:
    return VideoRecord.to_arrow_schema()


def shots_schema(dim: int) -> pa.Schema:
    return shot_model(dim).to_arrow_schema()


def duplicates_schema() -> pa.Schema:
    return DuplicateRecord.to_arrow_schema()


@cache
def scores_schema() -> pa.Schema:
    """ScoreRecord's schema with ``score`` as float32: half the bytes per row at 100M rows, no precision lost."""
    schema = ScoreRecord.to_arrow_schema()
    index = schema.get_field_index("score")
    return schema.set(index, schema.field(index).with_type(pa.float32()))


SHOT_MAP_TABLE = "shot_map"


class ShotMapRecord(LanceModel):
    """One row of ``shot_map``: a shot's place on the corpus map (issue 15), keyed on shot_id.

    A table of its own, not two columns of ``shots``: a layout is recomputed far more often than a shot's vector
    changes, and updating two floats must not rewrite a 10M-row vector table.
    """

    shot_id: str
    x: float  # stored as float32 (see shot_map_schema)
    y: float
    layout_version: int  # the layout run that placed it; a full recompute starts a new one
    fitted: bool  # the layout was fitted on this shot (the anchors later shots are placed near)


@cache
def shot_map_schema() -> pa.Schema:
    """ShotMapRecord's schema with x and y as float32: 8 bytes a shot, 80 MB at 10M shots."""
    schema = ShotMapRecord.to_arrow_schema()
    for name in ("x", "y"):
        index = schema.get_field_index(name)
        schema = schema.set(index, schema.field(index).with_type(pa.float32()))
    return schema
