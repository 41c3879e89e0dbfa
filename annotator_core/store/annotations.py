"""Annotations: one current value per (label, shot, annotator), the append-only event log, and consensus.

Concurrency: every annotation row carries a ``version``. A write names the
version it read (``expected_version``); if someone changed the row since, the
write raises :class:`ConflictError` instead of silently overwriting. A write of
the value already stored changes nothing, so a repeated request is harmless.
An annotation and its event commit in one transaction or not at all.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from annotator_core.db import Annotation, AnnotationEvent, utcnow
from annotator_core.errors import ConflictError, NotFoundError, ValidationFailed
from annotator_core.store.batches import (
    INSERT_ANNOTATION,
    INSERT_EVENT,
    BulkPlan,
    checked_items,
    insert_rows,
    stamp,
    stored_states,
    update_annotations,
)
from annotator_core.store.database import IN_CHUNK, Database
from annotator_core.store.labels import label_by_name


@dataclass(frozen=True)
class AnnotationRow:
    label: str
    shot_id: str
    annotator: str
    value: bool | None  # None: withdrawn (the row stays, so its version keeps counting)
    source: str
    version: int
    updated_at: datetime


@dataclass(frozen=True)
class EventRow:
    id: int
    label: str
    shot_id: str
    annotator: str  # whose annotation changed
    old_value: bool | None
    new_value: bool | None
    source: str
    version: int
    at: datetime
    actor: str  # who made the change (the annotator, or e.g. an admin undoing it)
    batch: str = ""  # shared by the events of one many-shot change (a group labelling), undone together


@dataclass(frozen=True)
class BulkOutcome:
    """What :meth:`AnnotationLog.annotate_many` did, one count per item given."""

    written: int  # items that created or changed an annotation (one event each)
    unchanged: int  # items that asked for the value already stored


@dataclass(frozen=True)
class _Change:
    """One requested write of one annotator's annotation of one shot."""

    label: str
    shot_id: str
    annotator: str
    value: bool | None
    source: str
    actor: str


class AnnotationLog:
    def __init__(self, db: Database) -> None:
        self.db = db

    # -- writes ------------------------------------------------------------------

    def annotate(
        self,
        label: str,
        shot_id: str,
        annotator: str,
        value: bool | None,
        *,
        expected_version: int | None = None,
        source: str = "",
        actor: str | None = None,
    ) -> AnnotationRow:
        """Set (``True``/``False``) or withdraw (``None``) one annotator's annotation.

        ``actor`` is who makes the change when it is not the annotator (an admin undoing it); the
        event log records both.

        ``expected_version`` is the version the caller last saw (0: none yet);
        when given and stale, :class:`ConflictError` is raised unless the
        stored value already equals ``value``. Without it the write applies to
        whatever is current, still atomically with its event.
        """
        if not shot_id:
            raise ValidationFailed("shot_id is empty; pass the id of a shot (video_id:start_frame).")
        change = _Change(label, shot_id, annotator, value, source, actor or annotator)
        try:
            with self.db.atomic() as s:
                label_id = label_by_name(s, label).id
                row = _stored_row(s, label_id, shot_id, annotator)
                if _is_repeat(row, value):
                    return _unchanged(change, row)
                _check_expected_version(change, expected_version, row)
                old_value, old_version, now = (row.value if row else None), (row.version if row else 0), utcnow()
                row = _write_value(s, label_id, change, row, now)
                self._append_event(s, _event(label_id, change, old_value, old_version + 1, now))
                s.flush()
                return _annotation_row(label, row)
        except IntegrityError:
            return self._settle_concurrent_first_write(change)

    def _append_event(self, s: Session, ev: AnnotationEvent) -> None:
        s.add(ev)

    def annotate_many(
        self,
        label: str,
        annotator: str,
        values: Iterable[tuple[str, bool | None]],
        *,
        source: str = "",
        sources: Mapping[str, str] | None = None,
        actor: str | None = None,
        batch: str = "",
    ) -> BulkOutcome:
        """Set or withdraw many of one annotator's annotations of a label in one transaction: all or nothing.

        Each ``(shot_id, value)`` is applied in order as :meth:`annotate` without
        ``expected_version`` applies it: a repeat changes nothing, every change moves its row one
        version on and gets its event. Rows and events are written in batches (multi-row INSERTs;
        ``COPY`` on PostgreSQL), so an import of tens of thousands of rows is one short
        transaction; the rows it changes are locked while it runs (``FOR UPDATE`` on PostgreSQL,
        the write lock on SQLite). If another request creates one of these annotations meanwhile,
        nothing is written and :class:`ConflictError` says to try again. ``batch`` is recorded on every
        event, so :meth:`undo_batch` can take the whole change back as one step. ``sources`` gives some
        shots their own source (an import that keeps where each shot was picked); the rest get ``source``.
        """
        items = checked_items(values)
        who = actor or annotator
        try:
            with self.db.atomic() as s:
                label_id = label_by_name(s, label).id
                stored = stored_states(s, label_id, annotator, [sid for sid, _ in items])
                plan = BulkPlan(label_id, annotator, source, who, stored, stamp(s, utcnow()), batch)
                for shot_id, value in items:
                    plan.apply(shot_id, value, sources.get(shot_id, source) if sources else source)
                insert_rows(s, INSERT_ANNOTATION, plan.new_rows)
                update_annotations(s, plan.changed_rows)
                self._append_events(s, plan.events)
        except IntegrityError:
            raise ConflictError(
                f"annotations of {label!r} by {annotator!r} were created by a concurrent request while these "
                f"{len(items)} were written; nothing was written, send them again."
            ) from None
        return BulkOutcome(written=len(plan.events), unchanged=len(items) - len(plan.events))

    def undo_batch(self, label: str, batch: str, *, actor: str, new_batch: str = "") -> list[EventRow]:
        """Put back what every event of ``batch`` replaced, in one transaction: one undo of a group labelling.

        Each annotation must still be at the version its event made (else :class:`ConflictError` names
        the shot and nothing is written). The undo's own events share ``new_batch``, so it can be undone
        as one step too. Returns the undone events.
        """
        if not batch:
            raise ValidationFailed("batch is empty; pass the batch id of a group labelling (events carry it).")
        with self.db.atomic() as s:
            label_id = label_by_name(s, label).id
            found = list(
                s.scalars(
                    select(AnnotationEvent)
                    .where(AnnotationEvent.label_id == label_id, AnnotationEvent.batch == batch)
                    .order_by(AnnotationEvent.id)
                )
            )
            if not found:
                raise NotFoundError(f"label {label!r} has no change with batch {batch!r}; list its events.")
            annotators = {e.annotator for e in found}
            if len(annotators) != 1:
                raise ValidationFailed(f"batch {batch!r} changed {len(annotators)} annotators' annotations.")
            annotator = found[0].annotator
            stored = stored_states(s, label_id, annotator, [e.shot_id for e in found])
            for e in found:
                _row_id, value, version = stored.get(e.shot_id, (None, None, 0))
                if version != e.version:
                    raise ConflictError(
                        f"annotation of {e.shot_id!r} for {label!r} by {annotator!r} changed since this group "
                        f"labelling (it is now version {version} with value {value}); undo that change first."
                    )
            plan = BulkPlan(label_id, annotator, "undo", actor, stored, stamp(s, utcnow()), new_batch)
            for e in reversed(found):
                plan.apply(e.shot_id, e.old_value)
            insert_rows(s, INSERT_ANNOTATION, plan.new_rows)
            update_annotations(s, plan.changed_rows)
            self._append_events(s, plan.events)
            return [_event_row(label, e) for e in found]

    def _append_events(self, s: Session, events: list[tuple[Any, ...]]) -> None:
        insert_rows(s, INSERT_EVENT, events)

    def _settle_concurrent_first_write(self, change: _Change) -> AnnotationRow:
        """A concurrent request created the row first; if it wrote the same value, this is a repeat."""
        current = self.get(change.label, change.shot_id, change.annotator)
        if current is not None and current.value == change.value:
            return current
        raise ConflictError(
            f"annotation of {change.shot_id!r} for {change.label!r} by {change.annotator!r} was created by a "
            "concurrent request; reload it and apply your change again."
        ) from None

    # -- reads -------------------------------------------------------------------

    def current(self, label: str, *, annotator: str | None = None, value: bool | None = None) -> list[AnnotationRow]:
        """Current annotations of a label (withdrawn ones left out), oldest first."""
        with self.db.read() as s:
            lbl = label_by_name(s, label)
            # Columns, not ORM objects: a build reads every annotation of a label two or three times, and
            # building mapped instances was most of a 1,000-annotation read (py-spy, issue 12).
            q = select(
                Annotation.shot_id, Annotation.annotator, Annotation.value, Annotation.source, Annotation.version,
                Annotation.updated_at,
            ).where(Annotation.label_id == lbl.id, Annotation.value.is_not(None))  # fmt: skip
            if annotator is not None:
                q = q.where(Annotation.annotator == annotator)
            if value is not None:
                q = q.where(Annotation.value == value)
            rows = s.execute(q.order_by(Annotation.updated_at, Annotation.id))
            return [
                AnnotationRow(label, sid, who, v, source or "", version, at)
                for sid, who, v, source, version, at in rows
            ]

    def get(self, label: str, shot_id: str, annotator: str) -> AnnotationRow | None:
        with self.db.read() as s:
            row = _stored_row(s, label_by_name(s, label).id, shot_id, annotator)
            return _annotation_row(label, row) if row else None

    def values_and_versions(
        self, label: str, annotator: str, shot_ids: Sequence[str]
    ) -> dict[str, tuple[bool | None, int]]:
        """One annotator's ``(value, version)`` of each shot; ``(None, 0)`` where never annotated.

        Withdrawn rows are included: their version is what the next write must name. One query per
        :data:`IN_CHUNK` shots.
        """
        found: dict[str, tuple[bool | None, int]] = dict.fromkeys(shot_ids, (None, 0))
        unique = list(found)
        with self.db.read() as s:
            label_id = label_by_name(s, label).id
            for start in range(0, len(unique), IN_CHUNK):
                rows = s.execute(
                    select(Annotation.shot_id, Annotation.value, Annotation.version).where(
                        Annotation.label_id == label_id,
                        Annotation.annotator == annotator,
                        Annotation.shot_id.in_(unique[start : start + IN_CHUNK]),
                    )
                )
                for sid, value, version in rows:
                    found[sid] = (value, version)
        return found

    def events(self, label: str, *, since_id: int = 0, limit: int | None = None) -> list[EventRow]:
        with self.db.read() as s:
            lbl = label_by_name(s, label)
            e = AnnotationEvent
            q = (
                select(
                    e.id, e.shot_id, e.annotator, e.old_value, e.new_value, e.source, e.version, e.at, e.actor, e.batch
                )
                .where(e.label_id == lbl.id, e.id > since_id)
                .order_by(e.id)
            )  # columns, not ORM objects (see current)
            if limit is not None:
                q = q.limit(limit)
            return [
                EventRow(id_, label, sid, who, old, new, source, version, at, actor or who, batch or "")
                for id_, sid, who, old, new, source, version, at, actor, batch in s.execute(q)
            ]

    def events_of_batch(self, label: str, batch: str, *, limit: int | None = None) -> list[EventRow]:
        """The events of one many-shot change, oldest first; :class:`NotFoundError` when there are none."""
        with self.db.read() as s:
            lbl = label_by_name(s, label)
            q = (
                select(AnnotationEvent)
                .where(AnnotationEvent.label_id == lbl.id, AnnotationEvent.batch == batch)
                .order_by(AnnotationEvent.id)
            )
            if limit is not None:
                q = q.limit(limit)
            found = [_event_row(label, e) for e in s.scalars(q)]
        if not found:
            raise NotFoundError(f"label {label!r} has no change with batch {batch!r}; list its events.")
        return found

    def last_event_id(self, label: str) -> int:
        with self.db.read() as s:
            lbl = label_by_name(s, label)
            found = s.scalar(select(func.max(AnnotationEvent.id)).where(AnnotationEvent.label_id == lbl.id))
            return int(found or 0)

    def consensus(self, label: str) -> dict[str, bool]:
        """One training value per shot: the annotators' majority, ties to the latest change."""
        votes: dict[str, list[AnnotationRow]] = {}
        for row in self.current(label):
            votes.setdefault(row.shot_id, []).append(row)
        result: dict[str, bool] = {}
        for shot, rows in votes.items():
            pos = sum(1 for r in rows if r.value)
            neg = len(rows) - pos
            if pos != neg:
                result[shot] = pos > neg
            else:
                result[shot] = bool(max(rows, key=lambda r: r.updated_at).value)
        return result

    def counts(self, label: str) -> tuple[int, int]:
        """(positives, negatives) of the consensus of a label."""
        values = self.consensus(label).values()
        pos = sum(1 for v in values if v)
        return pos, len(values) - pos


# --------------------------------------------------------------------------- the steps of a write


def _stored_row(s: Session, label_id: int, shot_id: str, annotator: str) -> Annotation | None:
    return s.scalar(
        select(Annotation).where(
            Annotation.label_id == label_id,
            Annotation.shot_id == shot_id,
            Annotation.annotator == annotator,
        )
    )


def _is_repeat(row: Annotation | None, value: bool | None) -> bool:
    """Whether the write would store what is stored already (withdrawing what never existed included)."""
    return value is None if row is None else row.value == value


def _unchanged(change: _Change, row: Annotation | None) -> AnnotationRow:
    """The answer to a repeat: the stored row, whatever version the caller saw."""
    if row is None:
        return AnnotationRow(change.label, change.shot_id, change.annotator, None, change.source, 0, utcnow())
    return _annotation_row(change.label, row)


def _check_expected_version(change: _Change, expected_version: int | None, row: Annotation | None) -> None:
    current_version, current_value = (row.version, row.value) if row is not None else (0, None)
    if expected_version is not None and expected_version != current_version:
        raise ConflictError(
            f"annotation of {change.shot_id!r} for {change.label!r} by {change.annotator!r} changed since you read "
            f"it (you saw version {expected_version}, it is now version {current_version} with value "
            f"{current_value}); reload it and apply your change again."
        )


def _write_value(s: Session, label_id: int, change: _Change, row: Annotation | None, now: datetime) -> Annotation:
    """Insert the first value, or move the row one version on if nobody else moved it since it was read."""
    if row is None:
        row = Annotation(
            label_id=label_id,
            shot_id=change.shot_id,
            annotator=change.annotator,
            value=change.value,
            source=change.source,
            version=1,
            updated_at=now,
        )
        s.add(row)
        s.flush()
        return row
    read_version = row.version
    # Conditional on the version read: a concurrent writer makes this match nothing.
    result = s.execute(
        update(Annotation)
        .where(Annotation.id == row.id, Annotation.version == read_version)
        .values(value=change.value, source=change.source, version=read_version + 1, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(
            f"annotation of {change.shot_id!r} for {change.label!r} was changed by a concurrent request; "
            "reload it and apply your change again."
        )
    s.expire(row)
    return row


def _event(label_id: int, change: _Change, old_value: bool | None, version: int, at: datetime) -> AnnotationEvent:
    return AnnotationEvent(
        label_id=label_id,
        shot_id=change.shot_id,
        annotator=change.annotator,
        actor=change.actor,
        old_value=old_value,
        new_value=change.value,
        source=change.source,
        version=version,
        at=at,
    )


def _annotation_row(label: str, r: Annotation) -> AnnotationRow:
    return AnnotationRow(label, r.shot_id, r.annotator, r.value, r.source or "", r.version, r.updated_at)


def _event_row(label: str, e: AnnotationEvent) -> EventRow:
    return EventRow(
        e.id,
        label,
        e.shot_id,
        e.annotator,
        e.old_value,
        e.new_value,
        e.source,
        e.version,
        e.at,
        e.actor or e.annotator,
        e.batch or "",
    )
