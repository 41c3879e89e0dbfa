"""The HTTP API of the annotation service: decode, validate, call annotator_core, encode.

Reads need the viewer role, labelling and builds the annotator role, publish
and users the admin role (see ``auth``). Every error is the one JSON shape
of ``errors``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool

from annotator_core.annotation_store import AnnotationRow
from annotator_core.errors import ConflictError, NotFoundError
from annotator_core.shot_store import sql_in
from serving.annotation import review
from serving.annotation.app import ServiceContext
from serving.annotation.auth import Principal, annotator, context, viewer
from serving.annotation.errors import ApiError
from serving.annotation.media import check_shot_id

FEEDS = ("top_positive", "top_negative", "borderline", "random")
# Where an annotation came from: a recommender source, or one of the service's own ways in.
SOURCES = (*FEEDS, "search", "import", "example", "review", "undo", "disagreements", "")

router = APIRouter(tags=["annotation"])
LabelName = Path(min_length=1, max_length=100, description="Label name")


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewLabel(_Body):
    name: str = Field(min_length=1, max_length=100)
    description: str = Field("", max_length=5000)
    keywords: list[str] = Field(default_factory=list, max_length=100)
    positive_examples: list[str] = Field(default_factory=list, max_length=100)
    negative_examples: list[str] = Field(default_factory=list, max_length=100)


class LabelChange(_Body):
    description: str | None = Field(None, max_length=5000)
    keywords: list[str] | None = Field(None, max_length=100)
    positive_examples: list[str] | None = Field(None, max_length=100)
    negative_examples: list[str] | None = Field(None, max_length=100)


class AnnotationBody(_Body):
    value: StrictBool
    expected_version: int | None = Field(None, ge=0, description="The version you saw (0: none yet).")
    source: str = Field("", max_length=40)


class BatchItem(_Body):
    shot_id: str = Field(min_length=1, max_length=200)
    value: StrictBool | None = Field(description="true, false, or null to withdraw")
    expected_version: int | None = Field(None, ge=0)


class BatchBody(_Body):
    items: list[BatchItem]
    source: str = Field("", max_length=40)


# --------------------------------------------------------------------------- helpers


def _check_source(source: str) -> str:
    if source not in SOURCES:
        raise ApiError(
            422, "invalid", f"source {source!r} is not one of {', '.join(s for s in SOURCES if s)}.", field="source"
        )
    return source


def _annotation_out(row: AnnotationRow) -> dict[str, Any]:
    return {
        "shot_id": row.shot_id,
        "annotator": row.annotator,
        "value": row.value,
        "version": row.version,
        "source": row.source,
        "updated_at": row.updated_at.isoformat(),
    }


def _mine(ctx: ServiceContext, label: str, who: str, shot_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The caller's current {value, version} for each shot (version 0: never annotated).

    One query for all shots, withdrawn rows included (their version is what the next write must name).
    """
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from annotator_core.db import Annotation, Label

    out: dict[str, dict[str, Any]] = {sid: {"value": None, "version": 0} for sid in shot_ids}
    unique = list(dict.fromkeys(shot_ids))
    with Session(ctx.annotations.engine) as s:
        label_id = s.scalar(select(Label.id).where(Label.name == label))
        if label_id is None:
            raise NotFoundError(f"no label named {label!r}; create it first (POST /api/labels).")
        for start in range(0, len(unique), 500):
            rows = s.execute(
                select(Annotation.shot_id, Annotation.value, Annotation.version).where(
                    Annotation.label_id == label_id,
                    Annotation.annotator == who,
                    Annotation.shot_id.in_(unique[start : start + 500]),
                )
            )
            for sid, value, version in rows:
                out[sid] = {"value": value, "version": version}
    return out


def _shot_info(ctx: ServiceContext, shot_ids: list[str]) -> dict[str, dict[str, Any]]:
    rows = ctx.shots.get_shots(shot_ids, columns=["shot_id", "video_id", "start_s", "end_s"])
    titles = ctx.video_titles()
    return {
        r["shot_id"]: {
            "video_id": r["video_id"],
            "title": titles.get(r["video_id"], ""),
            "start_s": float(r["start_s"]),
            "end_s": float(r["end_s"]),
        }
        for r in rows
    }


def _require_shot(ctx: ServiceContext, shot_id: str, field: str = "shot_id") -> None:
    check_shot_id(shot_id, field=field)
    if not ctx.shots.get_shots([shot_id], columns=["shot_id"]):
        raise ApiError(
            404, "not_found", f"no shot {shot_id!r}; shot ids look like '<video_id>:<start_frame>'.", field=field
        )


def model_scores(ctx: ServiceContext, label: str, shot_ids: list[str]) -> tuple[int | None, dict[str, float]]:
    """(latest version, {shot_id: P(positive)}) for the given shots; (None, {}) before the first build."""
    from annotator_core.classifier import Classifier

    try:
        version = ctx.annotations.get_version(label)
    except NotFoundError:
        return None, {}
    if not shot_ids:
        return version.version, {}
    clf = Classifier.from_bytes(version.model)
    rows = ctx.shots.get_shots(shot_ids, columns=["shot_id", "vector"])
    if not rows or len(rows[0]["vector"]) != clf.dim:
        return version.version, {}
    matrix = np.asarray([r["vector"] for r in rows], dtype=np.float32)
    scores = clf.predict_proba(matrix)
    return version.version, {r["shot_id"]: float(s) for r, s in zip(rows, scores, strict=True)}


def _label_summary(ctx: ServiceContext, name: str) -> dict[str, Any]:
    info = ctx.annotations.get_label(name)
    readiness = ctx.workspace(name).readiness()
    out: dict[str, Any] = {
        "name": info.name,
        "description": info.description,
        "keywords": info.keywords,
        "positive_examples": info.positive_examples,
        "negative_examples": info.negative_examples,
        "created_by": info.created_by,
        "created_at": info.created_at.isoformat(),
        "counts": {"positive": readiness.n_pos, "negative": readiness.n_neg},
        "readiness": {
            "need_positive": readiness.need_pos,
            "need_negative": readiness.need_neg,
            "ready": readiness.ready,
        },
        "latest_version": None,
    }
    try:
        v = ctx.annotations.get_version(name)
    except NotFoundError:
        return out
    out["latest_version"] = _version_out(v)
    return out


def _version_out(v: Any) -> dict[str, Any]:
    extra = {k: val for k, val in (v.extra or {}).items() if k not in {"feeds", "snapshot"} and len(repr(val)) < 4000}
    return {
        "version": v.version,
        "created_at": v.created_at.isoformat(),
        "created_by": v.created_by,
        "n_pos": v.n_pos,
        "n_neg": v.n_neg,
        "model_quality": v.model_quality,
        "data_diversity": v.data_diversity,
        "encoder": v.encoder,
        "dim": v.dim,
        "published_at": v.published_at.isoformat() if v.published_at else None,
        "recommendation": extra.get("recommendation", ""),
        "extra": extra,
    }


def _feed_items(ctx: ServiceContext, label: str, who: str, items: list[Any]) -> list[dict[str, Any]]:
    dicts = [
        i if isinstance(i, dict) else {"shot_id": i.shot_id, "score": i.score, "labeled": i.labeled} for i in items
    ]
    ids = [d["shot_id"] for d in dicts]
    info = _shot_info(ctx, ids)
    mine = _mine(ctx, label, who, ids)
    return [{**d, **info.get(d["shot_id"], {}), "annotation": mine[d["shot_id"]]} for d in dicts]


# --------------------------------------------------------------------------- health, videos, shots


@router.get("/api/health")
def health(request: Request) -> dict[str, Any]:
    """Liveness and what the stores hold (no login needed)."""
    ctx = context(request)
    ctx.annotations.ping()
    from annotator_core.encoders import spec_has_text

    encoder = ctx.shots.encoder()
    return {"status": "ok", "stores": ctx.shots.counts(), "encoder": encoder, "has_text": spec_has_text(encoder)}


@router.get("/api/videos")
def videos(request: Request, _caller: Principal = Depends(viewer)) -> dict[str, Any]:
    rows = context(request).shots.videos()
    keys = ("video_id", "title", "duration_s", "fps", "width", "height", "n_shots", "status", "error")
    return {"videos": [{k: r.get(k) for k in keys} for r in sorted(rows, key=lambda r: str(r["title"]))]}


@router.get("/api/shots/{shot_id}")
def shot(
    request: Request,
    shot_id: str,
    label: str | None = Query(None, max_length=100),
    caller: Principal = Depends(viewer),
) -> dict[str, Any]:
    """A shot's time span and video; with ``label``, every annotator's annotation of it."""
    ctx = context(request)
    check_shot_id(shot_id)
    row = ctx.shots.get_shot(shot_id)
    out: dict[str, Any] = {k: row[k] for k in ("shot_id", "video_id", "start_frame", "end_frame", "start_s", "end_s")}
    out["cluster_id"] = row.get("cluster_id")
    out["title"] = ctx.video_titles().get(row["video_id"], "")
    if label is not None:
        rows = [r for r in ctx.annotations.annotations(label) if r.shot_id == shot_id]
        out["annotations"] = [_annotation_out(r) for r in rows]
        out["mine"] = _mine(ctx, label, caller.name, [shot_id])[shot_id]
    return out


# --------------------------------------------------------------------------- search


@router.get("/api/search")
def search(
    request: Request,
    q: str | None = Query(None, min_length=1, max_length=500, description="text to search for"),
    like: str | None = Query(None, max_length=200, description="a shot id: shots that look like it"),
    video: str | None = Query(None, max_length=200, description="only shots of this video id"),
    title: str | None = Query(None, min_length=1, max_length=200, description="only videos whose title has this"),
    label: str | None = Query(None, max_length=100, description="include your annotation for this label"),
    limit: int = Query(50, ge=1),
    caller: Principal = Depends(viewer),
) -> dict[str, Any]:
    """Text search (needs a text tower), search by example (``like``), or the shots of videos."""
    ctx = context(request)
    if limit > ctx.settings.search_limit:
        raise ApiError(
            422, "invalid", f"limit {limit} is above VA_SEARCH_LIMIT={ctx.settings.search_limit}.", field="limit"
        )
    if q and like:
        raise ApiError(422, "invalid", "give either q (text) or like (a shot id), not both.", field="like")
    if label is not None:
        ctx.annotations.get_label(label)
    video_ids: list[str] | None = None
    if video is not None:
        if "'" in video or "/" in video:
            raise ApiError(422, "invalid", f"video {video!r} is not a video id.", field="video")
        video_ids = [video]
    if title is not None:
        wanted = title.lower()
        matched = [vid for vid, t in ctx.video_titles().items() if wanted in t.lower()]
        video_ids = [v for v in matched if video_ids is None or v in video_ids]
    if video_ids is not None and not video_ids:
        return {"mode": "none", "results": []}
    where = sql_in("video_id", video_ids) if video_ids is not None else None
    if q:
        encoder = ctx.text_encoder()
        if not encoder.has_text:
            raise ApiError(
                422,
                "no_text_tower",
                f"text search needs a vision-language model, and these shots were embedded with "
                f"{encoder.name!r}, which has none. Search by example ('more like this') or by video instead, "
                "or ingest with a CLIP encoder.",
                field="q",
            )
        vector = encoder.embed_texts([q])[0]
        hits = ctx.shots.search(vector, k=limit, where=where)
        mode = "text"
    elif like:
        check_shot_id(like, field="like")
        try:
            vector = np.asarray(ctx.shots.get_shot(like, columns=["shot_id", "vector"])["vector"], dtype=np.float32)
        except NotFoundError as exc:
            raise ApiError(404, "not_found", str(exc), field="like") from None
        hits = [h for h in ctx.shots.search(vector, k=limit + 1, where=where) if h.shot_id != like][:limit]
        mode = "like"
    elif video_ids is not None:
        results = []
        for vid in video_ids:
            for r in ctx.shots.shots_of_video(vid):
                results.append(
                    {
                        "shot_id": r["shot_id"],
                        "video_id": r["video_id"],
                        "start_s": r["start_s"],
                        "end_s": r["end_s"],
                        "score": None,
                    }
                )
                if len(results) >= limit:
                    break
            if len(results) >= limit:
                break
        return _search_out(ctx, "video", results, label, caller)
    else:
        raise ApiError(422, "invalid", "say what to search: q (text), like (a shot id), video or title.", field="q")
    results = [
        {"shot_id": h.shot_id, "video_id": h.video_id, "start_s": h.start_s, "end_s": h.end_s, "score": h.score}
        for h in hits
    ]
    return _search_out(ctx, mode, results, label, caller)


def _search_out(
    ctx: ServiceContext, mode: str, results: list[dict[str, Any]], label: str | None, caller: Principal
) -> dict[str, Any]:
    titles = ctx.video_titles()
    for r in results:
        r["title"] = titles.get(r["video_id"], "")
    if label is not None:
        mine = _mine(ctx, label, caller.name, [r["shot_id"] for r in results])
        for r in results:
            r["annotation"] = mine[r["shot_id"]]
    return {"mode": mode, "results": results}


# --------------------------------------------------------------------------- labels


@router.get("/api/labels")
def list_labels(request: Request, _caller: Principal = Depends(viewer)) -> dict[str, Any]:
    """Every label with its counts, readiness, and latest model quality and data diversity."""
    ctx = context(request)
    return {"labels": [_label_summary(ctx, lbl.name) for lbl in ctx.annotations.list_labels()]}


@router.post("/api/labels", status_code=201)
def create_label(body: NewLabel, request: Request, caller: Principal = Depends(annotator)) -> dict[str, Any]:
    """Create a label; its example shots become the creator's first annotations (source 'example')."""
    ctx = context(request)
    _require_example_shots(ctx, body.positive_examples, body.negative_examples)
    ctx.annotations.create_label(
        body.name,
        description=body.description,
        keywords=body.keywords,
        created_by=caller.name,
        positive_examples=body.positive_examples,
        negative_examples=body.negative_examples,
    )
    for value, ids in ((True, body.positive_examples), (False, body.negative_examples)):
        for sid in ids:
            ctx.annotations.annotate(body.name, sid, caller.name, value, source="example")
    return _label_summary(ctx, body.name)


def _require_example_shots(ctx: ServiceContext, positive: list[str], negative: list[str]) -> None:
    for field, ids in (("positive_examples", positive), ("negative_examples", negative)):
        for sid in ids:
            _require_shot(ctx, sid, field)


@router.get("/api/labels/{label}")
def get_label(request: Request, label: str = LabelName, _caller: Principal = Depends(viewer)) -> dict[str, Any]:
    return _label_summary(context(request), label)


@router.patch("/api/labels/{label}")
def change_label(
    body: LabelChange, request: Request, label: str = LabelName, _caller: Principal = Depends(annotator)
) -> dict[str, Any]:
    ctx = context(request)
    fields = body.model_dump(exclude_none=True)
    if not fields:
        raise ApiError(422, "invalid", "nothing to change; send description, keywords or examples.", field="body")
    _require_example_shots(ctx, body.positive_examples or [], body.negative_examples or [])
    ctx.annotations.update_label(label, **fields)
    return _label_summary(ctx, label)


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
        row = ctx.annotations.annotate(
            label, shot_id, who, value, expected_version=expected, source=source, actor=actor
        )
    except ConflictError as exc:
        current = ctx.annotations.get_annotation(label, shot_id, who)
        raise ApiError(
            409,
            "conflict",
            str(exc),
            field="expected_version",
            current={"value": current.value if current else None, "version": current.version if current else 0},
        ) from None
    return _annotation_out(row)


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
    _check_source(body.source)
    ctx.annotations.get_label(label)
    _require_shot(ctx, shot_id)
    return _write(ctx, label, shot_id, caller.name, body.value, body.expected_version, body.source)


@router.delete("/api/labels/{label}/annotations/{shot_id}")
def delete_annotation(
    request: Request,
    shot_id: str,
    label: str = LabelName,
    expected_version: int | None = Query(None, ge=0),
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
    _check_source(body.source)
    ctx.annotations.get_label(label)
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


@router.get("/api/labels/{label}/annotations")
def list_annotations(
    request: Request,
    label: str = LabelName,
    value: bool | None = Query(None),
    annotator_name: str | None = Query(None, alias="annotator", max_length=100),
    limit: int = Query(1000, ge=1, le=100_000),
    offset: int = Query(0, ge=0),
    _caller: Principal = Depends(viewer),
) -> dict[str, Any]:
    """Review: every current annotation of the label with the latest model's score."""
    ctx = context(request)
    rows = ctx.annotations.annotations(label, annotator=annotator_name, value=value)
    page = rows[offset : offset + limit]
    ids = list(dict.fromkeys(r.shot_id for r in page))
    version, scores = model_scores(ctx, label, ids)
    info = _shot_info(ctx, ids)
    items = [{**_annotation_out(r), **info.get(r.shot_id, {}), "model_score": scores.get(r.shot_id)} for r in page]
    return {"total": len(rows), "model_version": version, "annotations": items}


@router.get("/api/labels/{label}/events")
def events(
    request: Request,
    label: str = LabelName,
    since_id: int = Query(0, ge=0),
    limit: int = Query(500, ge=1, le=10_000),
    _caller: Principal = Depends(viewer),
) -> dict[str, Any]:
    """The history of changes of a label's annotations, oldest first."""
    rows = context(request).annotations.events(label, since_id=since_id, limit=limit)
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
                "at": e.at.isoformat(),
            }
            for e in rows
        ]
    }


@router.post("/api/labels/{label}/events/{event_id}/undo")
def undo(
    request: Request, event_id: int = Path(ge=1), label: str = LabelName, caller: Principal = Depends(annotator)
) -> dict[str, Any]:
    """Undo one change: put back the value it replaced (a new event); 409 if the annotation changed since."""
    ctx = context(request)
    found = ctx.annotations.events(label, since_id=event_id - 1, limit=1)
    if not found or found[0].id != event_id:
        raise ApiError(404, "not_found", f"label {label!r} has no event {event_id}.", field="event_id")
    ev = found[0]
    if ev.annotator != caller.name and not caller.can("admin"):
        raise ApiError(
            403, "forbidden", f"event {event_id} is {ev.annotator!r}'s change; only they or an admin may undo it."
        )
    return _write(ctx, label, ev.shot_id, ev.annotator, ev.old_value, ev.version, "undo", actor=caller.name)


@router.get("/api/labels/{label}/disagreements")
def disagreements(request: Request, label: str = LabelName, _caller: Principal = Depends(viewer)) -> dict[str, Any]:
    """Shots annotators disagree on, and labelled shots the latest model confidently contradicts."""
    ctx = context(request)
    votes = review.votes_by_shot(ctx.annotations.annotations(label))
    consensus = ctx.annotations.consensus(label)
    version, scores = model_scores(ctx, label, list(consensus))
    return {
        "model_version": version,
        "annotators": review.annotator_disagreements(votes),
        "model": review.model_contradictions(consensus, scores),
    }


@router.get("/api/labels/{label}/agreement")
def agreement(request: Request, label: str = LabelName, _caller: Principal = Depends(viewer)) -> dict[str, Any]:
    """Share of shots where all annotators agree, Cohen's kappa (mean over pairs) and Fleiss' kappa."""
    return review.agreement(review.votes_by_shot(context(request).annotations.annotations(label)))
