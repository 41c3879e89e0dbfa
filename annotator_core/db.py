"""SQL tables of the annotation store (SQLAlchemy 2 declarative models).

The schema is created and upgraded by the Alembic migrations in
``annotator_core/migrations``; these models are what the store code queries
(``annotator_core/store``). The ``jobs`` table of the same chain belongs to the
annotation service, which declares and queries it (``serving/annotation/jobs.py``).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map = {dict[str, Any]: JSON, list[Any]: JSON}


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))  # admin | annotator | viewer
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    token_hash: Mapped[str | None] = mapped_column(String(128), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Label(Base):
    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    description: Mapped[str] = mapped_column(Text, default="")
    keywords: Mapped[list[Any]] = mapped_column(JSON, default=list)
    positive_examples: Mapped[list[Any]] = mapped_column(JSON, default=list)
    negative_examples: Mapped[list[Any]] = mapped_column(JSON, default=list)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    recommender_state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class Annotation(Base):
    """The current value of one annotator's annotation of one shot for one label."""

    __tablename__ = "annotations"
    __table_args__ = (
        UniqueConstraint("label_id", "shot_id", "annotator", name="uq_annotation"),
        Index("ix_annotations_label", "label_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"))
    shot_id: Mapped[str] = mapped_column(String(200))
    annotator: Mapped[str] = mapped_column(String(100))
    value: Mapped[bool | None] = mapped_column(Boolean, nullable=True)  # None: withdrawn
    source: Mapped[str] = mapped_column(String(40), default="")
    version: Mapped[int] = mapped_column(Integer, default=1)  # optimistic concurrency
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AnnotationEvent(Base):
    """Append-only log: every change anyone made, so nothing is ever lost."""

    __tablename__ = "annotation_events"
    __table_args__ = (Index("ix_events_label", "label_id", "id"), Index("ix_events_batch", "label_id", "batch"))

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"))
    shot_id: Mapped[str] = mapped_column(String(200))
    annotator: Mapped[str] = mapped_column(String(100))  # whose annotation changed
    actor: Mapped[str] = mapped_column(String(100), default="", server_default="")  # who changed it
    old_value: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    new_value: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    source: Mapped[str] = mapped_column(String(40), default="")
    version: Mapped[int] = mapped_column(Integer)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # The events of one request that changed many annotations at once (a whole near-duplicate group),
    # undone together; "" for a single change.
    batch: Mapped[str] = mapped_column(String(36), default="", server_default="")


class ClassifierVersion(Base):
    __tablename__ = "classifier_versions"
    __table_args__ = (UniqueConstraint("label_id", "version", name="uq_classifier_version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label_id: Mapped[int] = mapped_column(ForeignKey("labels.id", ondelete="CASCADE"))
    version: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    created_by: Mapped[str] = mapped_column(String(100), default="")
    snapshot_event_id: Mapped[int] = mapped_column(Integer, default=0)  # last event included
    snapshot: Mapped[list[Any]] = mapped_column(JSON, default=list)  # [[shot_id, value], …]
    n_pos: Mapped[int] = mapped_column(Integer)
    n_neg: Mapped[int] = mapped_column(Integer)
    model_quality: Mapped[float] = mapped_column(Float)
    data_diversity: Mapped[float] = mapped_column(Float)
    model: Mapped[bytes] = mapped_column(LargeBinary)
    encoder: Mapped[str] = mapped_column(String(300))
    dim: Mapped[int] = mapped_column(Integer)
    shots_table_version: Mapped[int] = mapped_column(Integer, default=0)
    extra: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)  # feeds, recommendation, timings
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
