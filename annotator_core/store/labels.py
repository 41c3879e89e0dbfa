"""Labels: what a label means (description, keywords, examples) and its recommender's state."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from annotator_core.db import Label
from annotator_core.errors import ConflictError, ValidationFailed
from annotator_core.store.database import Database, by_name, check_name

CHANGEABLE = frozenset({"description", "keywords", "positive_examples", "negative_examples"})


@dataclass(frozen=True)
class LabelInfo:
    id: int
    name: str
    description: str
    keywords: list[str]
    positive_examples: list[str]
    negative_examples: list[str]
    created_by: str
    created_at: datetime


class LabelStore:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create(
        self,
        name: str,
        *,
        description: str = "",
        keywords: Sequence[str] = (),
        created_by: str = "",
        positive_examples: Sequence[str] = (),
        negative_examples: Sequence[str] = (),
    ) -> LabelInfo:
        name = check_name(name, "label name")
        with self.db.atomic() as s:
            if s.scalar(select(Label).where(Label.name == name)) is not None:
                raise ConflictError(f"label {name!r} already exists; open it or pick another name.")
            label = Label(
                name=name,
                description=description,
                keywords=list(keywords),
                created_by=created_by,
                positive_examples=list(positive_examples),
                negative_examples=list(negative_examples),
            )
            s.add(label)
            s.flush()
        return _label_info(label)

    def get(self, name: str) -> LabelInfo:
        with self.db.read() as s:
            return _label_info(label_by_name(s, name))

    def all(self) -> list[LabelInfo]:
        with self.db.read() as s:
            return [_label_info(lbl) for lbl in s.scalars(select(Label).order_by(Label.name))]

    def update(self, name: str, **fields: Any) -> LabelInfo:
        bad = set(fields) - CHANGEABLE
        if bad:
            raise ValidationFailed(f"cannot change {sorted(bad)} of a label; changeable: {sorted(CHANGEABLE)}.")
        with self.db.atomic() as s:
            label = label_by_name(s, name)
            for key, value in fields.items():
                setattr(label, key, list(value) if key != "description" else value)
        return _label_info(label)

    def recommender_state(self, name: str) -> dict[str, Any]:
        with self.db.read() as s:
            return dict(label_by_name(s, name).recommender_state or {})

    def save_recommender_state(self, name: str, state: dict[str, Any]) -> None:
        with self.db.atomic() as s:
            label_by_name(s, name).recommender_state = state


def label_by_name(s: Session, name: str) -> Label:
    """The label row called ``name`` in this session (annotations and versions hang off its id)."""
    found: Label = by_name(s, Label, name, f"no label named {name!r}; create it first (POST /api/labels).")
    return found


def _label_info(lbl: Label) -> LabelInfo:
    return LabelInfo(
        id=lbl.id,
        name=lbl.name,
        description=lbl.description or "",
        keywords=list(lbl.keywords or []),
        positive_examples=list(lbl.positive_examples or []),
        negative_examples=list(lbl.negative_examples or []),
        created_by=lbl.created_by or "",
        created_at=lbl.created_at,
    )
