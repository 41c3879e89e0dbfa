"""Annotations over HTTP: set, withdraw, batch, a whole near-duplicate group, list, history, undo (of one
change or of a group's as one step), disagreements and agreement."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from annotator_core.duplicates import duplicate_groups
from annotator_core.errors import ConflictError, NotFoundError
from serving.annotation import review
from serving.annotation.auth import Principal, annotator, viewer
from serving.annotation.context import ServiceContext, context
from serving.annotation.inputs import MAX_ID, LabelName, check_shot_id, check_source, require_shot
from serving.annotation.presenters import annotation_out, mine, model_scores, shot_info, timestamp
from serving.http_errors import ApiError

router = APIRouter(tags=["annotation"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AnnotationBody(_Body):
    value: StrictBool
    expected_version: int | None = Field(None, ge=0, le=MAX_ID, description="The version you saw (0: none yet).")
    source: str = Field("", max_length=40)


class BatchItem(_Body):
    shot_id: str = Field(min_length=1, max_length=200)
    value: StrictBool | None = Field(description="true, false, or null to withdraw")
    expected_version: int | None = Field(None, ge=0, le=MAX_ID)


class BatchBody(_Body):
    items: list[BatchItem]
    source: str = Field("", max_length=40)


class GroupBody(_Body):
    value: StrictBool | None = Field(description="true, false, or null to withdraw every member's annotation")


GROUP_SOURCE = "group"  # the source of every annotation a group labelling records


# --------------------------------------------------------------------------- annotations


def _write(
    ctx: ServiceContext,
    label: str,
    shot_id: str,
    who: str,
    value: bool | None,
    expected: int | None,
    source: str,
    actor: str | None = None,
) -> dict[str, Any]:
    try:
        row = ctx.store.annotations.annotate(
            label, shot_id, who, value, expected_version=expected, source=source, actor=actor
        )
    except ConflictError as exc:
        current = ctx.store.annotations.get(label, shot_id, who)
        raise ApiError(
            409,
            "conflict",
            str(exc),
            field="expected_version",
            current={"value": current.value if current else None, "version": current.version if current else 0},
        ) from None
    return annotation_out(row)


@router.put("/api/labels/{label}/annotations/{shot_id}")
def put_annotation(
    body: AnnotationBody,
    request: Request,
    shot_id: str,
    label: str = LabelName,
    caller: Principal = Depends(annotator),
) -> dict[str, Any]:
    """Set your annotation of a shot; a stale ``expected_version`` is a 409 carrying the current one."""
    ctx = context(request)
    check_source(body.source)
    ctx.store.labels.get(label)
    require_shot(ctx, shot_id)
    return _write(ctx, label, shot_id, caller.name, body.value, body.expected_version, body.source)


@router.delete("/api/labels/{label}/annotations/{shot_id}")
def delete_annotation(
    request: Request,
    shot_id: str,
    label: str = LabelName,
    expected_version: int | None = Query(None, ge=0, le=MAX_ID),
    caller: Principal = Depends(annotator),
) -> dict[str, Any]:
    """Withdraw your annotation (kept in the history; undo brings it back)."""
    ctx = context(request)
    check_shot_id(shot_id)
    return _write(ctx, label, shot_id, caller.name, None, expected_version, "review")


@router.post("/api/labels/{label}/annotations:batch")
def batch_annotations(
    body: BatchBody, request: Request, label: str = LabelName, caller: Principal = Depends(annotator)
) -> dict[str, Any]:
    """Several annotations at once (at most VA_MAX_BATCH); each item succeeds or reports its own error."""
    ctx = context(request)
    if len(body.items) > ctx.settings.max_batch:
        raise ApiError(
            413,
            "too_large",
            f"{len(body.items)} items is more than VA_MAX_BATCH={ctx.settings.max_batch}; split the batch.",
            field="items",
        )
    check_source(body.source)
    ctx.store.labels.get(label)
    ids = [check_shot_id(i.shot_id, field="items.shot_id") for i in body.items]
    known = {r["shot_id"] for r in ctx.shots.get_shots(ids, columns=["shot_id"])}
    results = []
    for item in body.items:
        if item.shot_id not in known:
            results.append({"shot_id": item.shot_id, "error": {"code": "not_found", "message": "no such shot"}})
            continue
        try:
            results.append(
                _write(ctx, label, item.shot_id, caller.name, item.value, item.expected_version, body.source)
            )
        except ApiError as exc:
            results.append({"shot_id": item.shot_id, "error": {"code": exc.code, "message": str(exc), **exc.extra}})
    return {"results": results, "ok": sum(1 for r in results if "error" not in r)}


@router.post("/api/labels/{label}/groups/{shot_id}/annotations")
def annotate_group(
    body: GroupBody, request: Request, shot_id: str, label: str = LabelName, caller: Principal = Depends(annotator)
) -> dict[str, Any]:
    """Label the whole near-duplicate group of ``shot_id``: one annotation per member (source ``group``),
    all in one transaction and under one ``batch`` id, which undoes them all in one step."""
    ctx = context(request)
    ctx.store.labels.get(label)
    require_shot(ctx, shot_id)
    groups = duplicate_groups(ctx.shots, ctx.settings)
    group_id = groups.group_of(shot_id)
    members = groups.members(group_id)
    batch = uuid.uuid4().hex
    try:
        outcome = ctx.store.annotations.annotate_many(
            label, caller.name, [(sid, body.value) for sid in members], source=GROUP_SOURCE, batch=batch
        )
    except ConflictError as exc:
        raise ApiError(409, "conflict", str(exc), field="shot_id") from None
    return {
        "group_id": group_id,
        "group_size": len(members),
        "batch": batch if outcome.written else "",
        "written": outcome.written,
        "unchanged": outcome.unchanged,
        "annotations": mine(ctx, label, caller.name, members),
    }


@router.post("/api/labels/{label}/batches/{batch}/undo")
def undo_batch(
    request: Request,
    batch: str = Path(min_length=1, max_length=36, pattern=r"^[0-9a-f]+$"),
    label: str = LabelName,
    caller: Principal = Depends(annotator),
) -> dict[str, Any]:
    """Undo a group labelling as one step: every member's annotation goes back to what it was, together."""
    return _undo_batch(context(request), label, batch, caller)


def _undo_batch(ctx: ServiceContext, label: str, batch: str, caller: Principal) -> dict[str, Any]:
    try:
        first = ctx.store.annotations.events_of_batch(label, batch, limit=1)
    except NotFoundError as exc:
        raise ApiError(404, "not_found", str(exc), field="batch") from None
    if first[0].annotator != caller.name and not caller.can("admin"):
        raise ApiError(
            403, "forbidden", f"batch {batch} is {first[0].annotator!r}'s change; only they or an admin may undo it."
        )
    new_batch = uuid.uuid4().hex
    try:
        undone = ctx.store.annotations.undo_batch(label, batch, actor=caller.name, new_batch=new_batch)
    except ConflictError as exc:
        raise ApiError(409, "conflict", str(exc), field="batch") from None
    ids = [e.shot_id for e in undone]
    return {
        "undone": len(undone),
        "batch": new_batch,
        "annotator": first[0].annotator,
        "annotations": mine(ctx, label, first[0].annotator, ids),
    }


@router.get("/api/labels/{label}/annotations")
def list_annotations(
    request: Request,
    label: str = LabelName,
    value: bool | None = Query(None),
    annotator_name: str | None = Query(None, alias="annotator", max_length=100),
    limit: int = Query(1000, ge=1, le=100_000),
    offset: int = Query(0, ge=0, le=MAX_ID),
    _caller: Principal = Depends(viewer),
) -> dict[str, Any]:
    """Review: every current annotation of the label with the latest model's score."""
    ctx = context(request)
    rows = ctx.store.annotations.current(label, annotator=annotator_name, value=value)
    page = rows[offset : offset + limit]
    ids = list(dict.fromkeys(r.shot_id for r in page))
    version, scores = model_scores(ctx, label, ids)
    info = shot_info(ctx, ids)
    items = [{**annotation_out(r), **info.get(r.shot_id, {}), "model_score": scores.get(r.shot_id)} for r in page]
    return {"total": len(rows), "model_version": version, "annotations": items}


@router.get("/api/labels/{label}/events")
def events(
    request: Request,
    label: str = LabelName,
    since_id: int = Query(0, ge=0, le=MAX_ID),
    limit: int = Query(500, ge=1, le=10_000),
    _caller: Principal = Depends(viewer),
) -> dict[str, Any]:
    """The history of changes of a label's annotations, oldest first."""
    rows = context(request).store.annotations.events(label, since_id=since_id, limit=limit)
    return {
        "events": [
            {
                "id": e.id,
                "shot_id": e.shot_id,
                "annotator": e.annotator,
                "actor": e.actor,
                "old_value": e.old_value,
                "new_value": e.new_value,
                "source": e.source,
                "version": e.version,
                "at": timestamp(e.at),
                "batch": e.batch,
            }
            for e in rows
        ]
    }


@router.post("/api/labels/{label}/events/{event_id}/undo")
def undo(
    request: Request,
    event_id: int = Path(ge=1, le=MAX_ID),
    label: str = LabelName,
    caller: Principal = Depends(annotator),
) -> dict[str, Any]:
    """Undo one change: put back the value it replaced (a new event); 409 if the annotation changed since.

    An event of a group labelling (it has a ``batch``) undoes the whole group's change, as one step."""
    ctx = context(request)
    found = ctx.store.annotations.events(label, since_id=event_id - 1, limit=1)
    if not found or found[0].id != event_id:
        raise ApiError(404, "not_found", f"label {label!r} has no event {event_id}.", field="event_id")
    ev = found[0]
    if ev.annotator != caller.name and not caller.can("admin"):
        raise ApiError(
            403, "forbidden", f"event {event_id} is {ev.annotator!r}'s change; only they or an admin may undo it."
        )
    if ev.batch:
        return _undo_batch(ctx, label, ev.batch, caller)
    return _write(ctx, label, ev.shot_id, ev.annotator, ev.old_value, ev.version, "undo", actor=caller.name)


@router.get("/api/labels/{label}/disagreements")
def disagreements(request: Request, label: str = LabelName, _caller: Principal = Depends(viewer)) -> dict[str, Any]:
    """Shots annotators disagree on, and labelled shots the latest model confidently contradicts."""
    ctx = context(request)
    votes = review.votes_by_shot(ctx.store.annotations.current(label))
    consensus = ctx.store.annotations.consensus(label)
    version, scores = model_scores(ctx, label, list(consensus))
    return {
        "model_version": version,
        "annotators": review.annotator_disagreements(votes),
        "model": review.model_contradictions(consensus, scores),
    }


@router.get("/api/labels/{label}/agreement")
def agreement(request: Request, label: str = LabelName, _caller: Principal = Depends(viewer)) -> dict[str, Any]:
    """Share of shots where all annotators agree, Cohen's kappa (mean over pairs) and Fleiss' kappa."""
    return review.agreement(review.votes_by_shot(context(request).store.annotations.current(label)))
