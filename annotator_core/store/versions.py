"""Classifier versions: each build of a label saved under the label's next version number."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from annotator_core.db import ClassifierVersion, utcnow
from annotator_core.errors import ConflictError, NotFoundError
from annotator_core.store.database import Database
from annotator_core.store.labels import label_by_name

NUMBER_ATTEMPTS = 5


@dataclass(frozen=True)
class VersionInfo:
    label: str
    version: int
    created_at: datetime
    created_by: str
    snapshot_event_id: int
    snapshot: list[list[Any]]
    n_pos: int
    n_neg: int
    model_quality: float
    data_diversity: float
    model: bytes
    encoder: str
    dim: int
    shots_table_version: int
    extra: dict[str, Any]
    published_at: datetime | None


class VersionStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def save(
        self,
        label: str,
        *,
        model: bytes,
        encoder: str,
        dim: int,
        n_pos: int,
        n_neg: int,
        model_quality: float,
        data_diversity: float,
        snapshot: list[list[Any]],
        snapshot_event_id: int,
        shots_table_version: int = 0,
        created_by: str = "",
        extra: dict[str, Any] | None = None,
    ) -> VersionInfo:
        """Save a classifier as the label's next version number."""
        for _attempt in range(NUMBER_ATTEMPTS):
            try:
                with self.db.atomic() as s:
                    lbl = label_by_name(s, label)
                    last = s.scalar(
                        select(func.max(ClassifierVersion.version)).where(ClassifierVersion.label_id == lbl.id)
                    )
                    row = ClassifierVersion(
                        label_id=lbl.id,
                        version=int(last or 0) + 1,
                        created_by=created_by,
                        snapshot_event_id=snapshot_event_id,
                        snapshot=snapshot,
                        n_pos=n_pos,
                        n_neg=n_neg,
                        model_quality=float(model_quality),
                        data_diversity=float(data_diversity),
                        model=model,
                        encoder=encoder,
                        dim=dim,
                        shots_table_version=shots_table_version,
                        extra=extra or {},
                    )
                    s.add(row)
                    s.flush()
                    return _version_info(label, row)
            except IntegrityError:
                continue  # two builds raced for the same number; take the next one
        raise ConflictError(f"could not allocate a version number for {label!r}; try the build again.")

    def all(self, label: str) -> list[VersionInfo]:
        """Every version of a label, oldest first."""
        with self.db.read() as s:
            lbl = label_by_name(s, label)
            rows = s.scalars(
                select(ClassifierVersion)
                .where(ClassifierVersion.label_id == lbl.id)
                .order_by(ClassifierVersion.version)
            )
            return [_version_info(label, r) for r in rows]

    def get(self, label: str, version: int | None = None) -> VersionInfo:
        """A version of a label's classifier; ``None`` means the latest."""
        with self.db.read() as s:
            lbl = label_by_name(s, label)
            q = select(ClassifierVersion).where(ClassifierVersion.label_id == lbl.id)
            if version is None:
                q = q.order_by(ClassifierVersion.version.desc()).limit(1)
            else:
                q = q.where(ClassifierVersion.version == version)
            row = s.scalar(q)
            if row is None:
                what = "no classifier version yet" if version is None else f"no version {version}"
                raise NotFoundError(f"label {label!r} has {what}; build one first.")
            return _version_info(label, row)

    def mark_published(self, label: str, version: int) -> None:
        with self.db.atomic() as s:
            lbl = label_by_name(s, label)
            row = s.scalar(
                select(ClassifierVersion).where(
                    ClassifierVersion.label_id == lbl.id, ClassifierVersion.version == version
                )
            )
            if row is None:
                raise NotFoundError(f"label {label!r} has no version {version}; build one first.")
            row.published_at = utcnow()


def _version_info(label: str, r: ClassifierVersion) -> VersionInfo:
    return VersionInfo(
        label=label,
        version=r.version,
        created_at=r.created_at,
        created_by=r.created_by or "",
        snapshot_event_id=r.snapshot_event_id,
        snapshot=list(r.snapshot or []),
        n_pos=r.n_pos,
        n_neg=r.n_neg,
        model_quality=r.model_quality,
        data_diversity=r.data_diversity,
        model=r.model,
        encoder=r.encoder,
        dim=r.dim,
        shots_table_version=r.shots_table_version,
        extra=dict(r.extra or {}),
        published_at=r.published_at,
    )
