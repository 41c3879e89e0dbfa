"""The HTTP API of the annotation service: health, videos, shots, search and labels.

Decode, validate, call annotator_core, encode. Reads need the viewer role,
labelling the annotator role (see ``auth``); annotations are in
``annotations``, builds in ``builds``. Every error is the one JSON shape of
``serving.http_errors``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from annotator_core.duplicates import ABSENT_RECHECK_S, duplicate_groups
from annotator_core.errors import DimensionMismatch, NotFoundError, ValidationFailed
from annotator_core.shot_store import SearchHit, sql_in
from serving.annotation.auth import Principal, annotator, viewer
from serving.annotation.context import ServiceContext, context
from serving.annotation.inputs import MAX_ID, NAME_PATTERN, NAME_RULE, LabelName, check_shot_id, require_shot
from serving.annotation.presenters import annotation_out, group_fields, label_summary, mine, shot_info
from serving.http_errors import ApiError

router = APIRouter(tags=["annotation"])


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class NewLabel(_Body):
    name: str = Field(min_length=1, max_length=100, pattern=NAME_PATTERN, description=NAME_RULE)
    description: str = Field("", max_length=5000)
    keywords: list[str] = Field(default_factory=list, max_length=100)
    positive_examples: list[str] = Field(default_factory=list, max_length=100)
    negative_examples: list[str] = Field(default_factory=list, max_length=100)


class LabelChange(_Body):
    description: str | None = Field(None, max_length=5000)
    keywords: list[str] | None = Field(None, max_length=100)
    positive_examples: list[str] | None = Field(None, max_length=100)
    negative_examples: list[str] | None = Field(None, max_length=100)


# --------------------------------------------------------------------------- health, videos, shots


@router.get("/api/health")
def health(request: Request) -> dict[str, Any]:
    """Liveness and what the stores hold (no login needed)."""
    ctx = context(request)
    ctx.store.db.ping()
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
    out.update(group_fields(ctx, [shot_id])[shot_id])
    if label is not None:
        rows = [r for r in ctx.store.annotations.current(label) if r.shot_id == shot_id]
        out["annotations"] = [annotation_out(r) for r in rows]
        out["mine"] = mine(ctx, label, caller.name, [shot_id])[shot_id]
    return out


@router.get("/api/shots/{shot_id}/group")
def shot_group(
    request: Request,
    shot_id: str,
    label: str | None = Query(None, max_length=100, description="include your annotation for this label"),
    caller: Principal = Depends(viewer),
) -> dict[str, Any]:
    """The shot's near-duplicate group: every member (the representative first) with its span and title."""
    ctx = context(request)
    require_shot(ctx, shot_id)
    if label is not None:
        ctx.store.labels.get(label)
    groups = duplicate_groups(ctx.shots, ctx.settings)
    group_id = groups.group_of(shot_id)
    members = groups.members(group_id)
    info = shot_info(ctx, members)
    own = mine(ctx, label, caller.name, members) if label is not None else {}
    items = []
    for sid in members:
        item: dict[str, Any] = {"shot_id": sid, **info.get(sid, {}), "representative": sid == group_id}
        if label is not None:
            item["annotation"] = own[sid]
        items.append(item)
    return {"group_id": group_id, "group_size": len(members), "members": items}


# --------------------------------------------------------------------------- search

# A search asks the index for this many times ``limit`` hits, so that ``limit`` remain once each
# near-duplicate group is collapsed to one; it asks again (doubled) while too few remain.
SEARCH_OVERFETCH = 2
SEARCH_MAX_ASKS = 4


def _search_once_per_group(ctx: ServiceContext, find: Any, limit: int, *, like: str = "") -> list[SearchHit]:
    """``find(k)``'s hits with one per near-duplicate group, at most ``limit`` of them.

    A group is shown by its best-ranked member (the one that matched the query best, not necessarily
    the representative the feeds show); ``like``'s own group is left out, its copies are no news.
    """
    groups = duplicate_groups(ctx.shots, ctx.settings, absent_for=ABSENT_RECHECK_S)
    if not len(groups):
        return list(find(limit))
    own = groups.group_of(like) if like else None
    ask = limit * SEARCH_OVERFETCH
    for _ in range(SEARCH_MAX_ASKS):
        hits = list(find(ask))
        shown = [hits[i] for i in groups.first_of_each([h.shot_id for h in hits])]
        if own is not None:
            shown = [h for h, g in zip(shown, groups.groups_of([h.shot_id for h in shown])[0], strict=True) if g != own]
        if len(shown) >= limit or len(hits) < ask:
            break
        ask *= 2
    return shown[:limit]


@router.get("/api/search")
def search(
    request: Request,
    q: str | None = Query(None, min_length=1, max_length=500, description="text to search for"),
    like: str | None = Query(None, max_length=200, description="a shot id: shots that look like it"),
    like_label: str | None = Query(
        None,
        max_length=100,
        description="a label: shots like its positives and unlike its negatives, its labelled shots left out",
    ),
    video: str | None = Query(None, max_length=200, description="only shots of this video id"),
    title: str | None = Query(None, min_length=1, max_length=200, description="only videos whose title has this"),
    label: str | None = Query(None, max_length=100, description="include your annotation for this label"),
    limit: int = Query(50, ge=1, le=MAX_ID),
    caller: Principal = Depends(viewer),
) -> dict[str, Any]:
    """Text search (needs a text tower), search by example (``like``), more like a label's positives
    (``like_label``), or the shots of videos."""
    ctx = context(request)
    if limit > ctx.settings.search_limit:
        raise ApiError(
            422, "invalid", f"limit {limit} is above VA_SEARCH_LIMIT={ctx.settings.search_limit}.", field="limit"
        )
    if sum(bool(v) for v in (q, like, like_label)) > 1:
        raise ApiError(
            422, "invalid", "give one of q (text), like (a shot id) or like_label (a label), not several.", field="like"
        )
    if label is not None:
        ctx.store.labels.get(label)
    video_ids = _video_ids(ctx, video, title)
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
        hits = _search_once_per_group(ctx, lambda k: ctx.search().by_vector(vector, k=k, where=where), limit)
        mode = "text"
    elif like:
        check_shot_id(like, field="like")
        try:
            hits = _search_once_per_group(ctx, lambda k: ctx.search().like(like, k=k, where=where), limit, like=like)
        except NotFoundError as exc:
            raise ApiError(404, "not_found", str(exc), field="like") from None
        mode = "like"
    elif like_label:
        hits = _like_positives(ctx, like_label, where, limit)
        mode = "positives"
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
    return _search_out(ctx, mode, _hits_out(hits), label, caller)


class VectorSearch(_Body):
    vector: list[float] = Field(min_length=1, max_length=4096, description="an embedding as wide as the shots'")
    limit: int = Field(50, ge=1, le=MAX_ID)
    video: str | None = Field(None, max_length=200, description="only shots of this video id")
    title: str | None = Field(None, min_length=1, max_length=200, description="only videos whose title has this")
    label: str | None = Field(None, max_length=100, description="include your annotation for this label")


@router.post("/api/search/vector")
def search_by_vector(body: VectorSearch, request: Request, caller: Principal = Depends(viewer)) -> dict[str, Any]:
    """Search by vector: the shots nearest an embedding made elsewhere (same encoder as the shots)."""
    ctx = context(request)
    if body.limit > ctx.settings.search_limit:
        raise ApiError(
            422, "invalid", f"limit {body.limit} is above VA_SEARCH_LIMIT={ctx.settings.search_limit}.", field="limit"
        )
    if body.label is not None:
        ctx.store.labels.get(body.label)
    video_ids = _video_ids(ctx, body.video, body.title)
    if video_ids is not None and not video_ids:
        return {"mode": "none", "results": []}
    where = sql_in("video_id", video_ids) if video_ids is not None else None
    vector = np.asarray(body.vector, dtype=np.float32)
    if not np.isfinite(vector).all() or not np.any(vector):
        message = f"vector must be finite numbers, not all zero (cosine needs a direction); got {body.vector[:8]}..."
        raise ApiError(422, "invalid", message, field="vector")
    try:
        hits = _search_once_per_group(ctx, lambda k: ctx.search().by_vector(vector, k=k, where=where), body.limit)
    except DimensionMismatch as exc:
        raise ApiError(422, "invalid", str(exc), field="vector") from None
    return _search_out(ctx, "vector", _hits_out(hits), body.label, caller)


def _like_positives(ctx: ServiceContext, label: str, where: str | None, limit: int) -> list[SearchHit]:
    """Unlabelled shots nearest the label's relevance-feedback query (the direction of a model of its labels)."""
    ctx.store.labels.get(label)
    try:
        vector, labelled = ctx.workspace(label).positives_query()
    except ValidationFailed as exc:
        raise ApiError(422, "no_positives", str(exc), field="like_label") from None
    done = set(labelled)
    # A near-duplicate of a labelled shot is no news either: its whole group is left out, as the feeds do.
    groups = duplicate_groups(ctx.shots, ctx.settings, absent_for=ABSENT_RECHECK_S)
    done_groups = set(groups.groups_of(labelled)[0]) if len(groups) else set()

    def find(k: int) -> list[SearchHit]:
        # Ask past the labelled shots (likely the nearest) and their copies, more while too few remain, so
        # that fewer than k comes back only when the index has no more: what _search_once_per_group relies on.
        ask = k + len(done)
        while True:
            found = ctx.search().by_vector(vector, k=ask, where=where)
            hits = [h for h in found if h.shot_id not in done]
            if done_groups:
                keys = groups.groups_of([h.shot_id for h in hits])[0]
                hits = [h for h, g in zip(hits, keys, strict=True) if g not in done_groups]
            if len(hits) >= k or len(found) < ask:
                return hits[:k]
            ask *= 2

    return _search_once_per_group(ctx, find, limit)


def _video_ids(ctx: ServiceContext, video: str | None, title: str | None) -> list[str] | None:
    """The videos a search is limited to (None: all of them), from a video id and a title fragment."""
    video_ids: list[str] | None = None
    if video is not None:
        if "'" in video or "/" in video:
            raise ApiError(422, "invalid", f"video {video!r} is not a video id.", field="video")
        video_ids = [video]
    if title is not None:
        wanted = title.lower()
        matched = [vid for vid, t in ctx.video_titles().items() if wanted in t.lower()]
        video_ids = [v for v in matched if video_ids is None or v in video_ids]
    return video_ids


def _hits_out(hits: list[SearchHit]) -> list[dict[str, Any]]:
    return [
        {"shot_id": h.shot_id, "video_id": h.video_id, "start_s": h.start_s, "end_s": h.end_s, "score": h.score}
        for h in hits
    ]


def _search_out(
    ctx: ServiceContext, mode: str, results: list[dict[str, Any]], label: str | None, caller: Principal
) -> dict[str, Any]:
    titles = ctx.video_titles()
    groups = group_fields(ctx, [r["shot_id"] for r in results], absent_for=ABSENT_RECHECK_S)
    for r in results:
        r["title"] = titles.get(r["video_id"], "")
        r.update(groups[r["shot_id"]])
    if label is not None:
        own = mine(ctx, label, caller.name, [r["shot_id"] for r in results])
        for r in results:
            r["annotation"] = own[r["shot_id"]]
    return {"mode": mode, "results": results}


# --------------------------------------------------------------------------- labels


@router.get("/api/labels")
def list_labels(request: Request, _caller: Principal = Depends(viewer)) -> dict[str, Any]:
    """Every label with its counts, readiness, and latest model quality and data diversity."""
    ctx = context(request)
    return {"labels": [label_summary(ctx, lbl.name) for lbl in ctx.store.labels.all()]}


@router.post("/api/labels", status_code=201)
def create_label(body: NewLabel, request: Request, caller: Principal = Depends(annotator)) -> dict[str, Any]:
    """Create a label; its example shots become the creator's first annotations (source 'example')."""
    ctx = context(request)
    _require_example_shots(ctx, body.positive_examples, body.negative_examples)
    ctx.store.labels.create(
        body.name,
        description=body.description,
        keywords=body.keywords,
        created_by=caller.name,
        positive_examples=body.positive_examples,
        negative_examples=body.negative_examples,
    )
    for value, ids in ((True, body.positive_examples), (False, body.negative_examples)):
        for sid in ids:
            ctx.store.annotations.annotate(body.name, sid, caller.name, value, source="example")
    return label_summary(ctx, body.name)


def _require_example_shots(ctx: ServiceContext, positive: list[str], negative: list[str]) -> None:
    for field, ids in (("positive_examples", positive), ("negative_examples", negative)):
        for sid in ids:
            require_shot(ctx, sid, field)


@router.get("/api/labels/{label}")
def get_label(request: Request, label: str = LabelName, _caller: Principal = Depends(viewer)) -> dict[str, Any]:
    return label_summary(context(request), label)


@router.patch("/api/labels/{label}")
def change_label(
    body: LabelChange, request: Request, label: str = LabelName, _caller: Principal = Depends(annotator)
) -> dict[str, Any]:
    ctx = context(request)
    fields = body.model_dump(exclude_none=True)
    if not fields:
        raise ApiError(422, "invalid", "nothing to change; send description, keywords or examples.", field="body")
    _require_example_shots(ctx, body.positive_examples or [], body.negative_examples or [])
    ctx.store.labels.update(label, **fields)
    return label_summary(ctx, label)
