"""A title's label timeline for the web UI's title page (issue 15).

``GET /api/videos/{video_id}/timeline?labels=a,b`` answers, in one request, every shot of the title (time
order, as columns) and per label one track: each shot's score and the caller's own annotation of it.
A label whose newest version is published is scored from the ``scores`` table (what ``va score-corpus``
wrote, the catalog's published truth); a label still being annotated is scored by its newest build's
classifier on the shots' vectors; a label with no build has no scores. Each track says which
(``source``: ``scores``, ``build`` or ``none``) and the version.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Path, Query, Request

from annotator_core.errors import NotFoundError
from annotator_core.records import SCORES_TABLE
from annotator_core.shot_store import sql_in
from serving.annotation.auth import Principal, viewer
from serving.annotation.context import ServiceContext, context
from serving.annotation.presenters import mine
from serving.http_errors import ApiError

router = APIRouter(tags=["titles"])
MAX_TIMELINE_LABELS = 32


def _labels(ctx: ServiceContext, raw: str | None) -> list[str]:
    known = [info.name for info in ctx.store.labels.all()]
    if raw is None:
        return known
    names = [s.strip() for s in raw.split(",")]
    if not raw.strip() or any(not s for s in names):
        raise ApiError(
            422,
            "invalid",
            f"labels is {raw!r}; send comma-separated label names (labels=a,b) or leave it out for every label.",
            field="labels",
            expected="a,b",
        )
    if len(names) > MAX_TIMELINE_LABELS:
        raise ApiError(
            422,
            "invalid",
            f"labels names {len(names)} labels, more than {MAX_TIMELINE_LABELS}; ask for fewer.",
            field="labels",
            expected=f"at most {MAX_TIMELINE_LABELS} names",
        )
    for i, name in enumerate(names):
        if name not in known:
            raise ApiError(
                404,
                "not_found",
                f"labels[{i}] = {name!r} is not a label; create it first or pick one of {known[:20]}.",
                field=f"labels[{i}]",
                expected="the name of an existing label",
            )
    return list(dict.fromkeys(names))


def _published_scores(ctx: ServiceContext, label: str, shot_ids: list[str]) -> tuple[dict[str, float], int | None]:
    """The ``scores`` rows of these shots for ``label`` (shot -> score) and the newest version among them."""
    if not shot_ids or SCORES_TABLE not in ctx.shots.table_names():
        return {}, None
    dataset = ctx.shots.db.open_table(SCORES_TABLE).to_lance()
    quoted = label.replace("'", "''")
    found: dict[str, float] = {}
    newest: int | None = None
    for start in range(0, len(shot_ids), 1000):
        chunk = shot_ids[start : start + 1000]
        table = dataset.to_table(
            columns=["shot_id", "score", "version"], filter=f"label = '{quoted}' AND {sql_in('shot_id', chunk)}"
        )
        d = table.to_pydict()
        found.update(zip(d["shot_id"], (float(s) for s in d["score"]), strict=True))
        if d["version"]:
            newest = max(newest or 0, max(int(v) for v in d["version"]))
    return found, newest


def _track(ctx: ServiceContext, label: str, shot_ids: list[str], who: str) -> dict[str, Any]:
    versions = ctx.store.versions.all(label)
    latest = max(versions, key=lambda v: v.version) if versions else None
    scores: list[float | None] = [None] * len(shot_ids)
    source, version = "none", None
    if latest is not None and latest.published_at is not None:
        found, newest = _published_scores(ctx, label, shot_ids)
        if found:
            scores = [None if s not in found else round(found[s], 4) for s in shot_ids]
            source, version = "scores", newest
    if source == "none" and latest is not None and shot_ids:
        from annotator_core.classifier import Classifier

        ids, vectors, _clusters = ctx.shots.vectors_of(shot_ids)
        if len(ids):
            clf = Classifier.from_bytes(latest.model)
            at = {sid: i for i, sid in enumerate(ids)}
            probs = np.asarray(clf.predict_proba(vectors), dtype=np.float64).round(4).tolist()
            scores = [probs[at[s]] if s in at else None for s in shot_ids]
            source, version = "build", latest.version
    own = mine(ctx, label, who, shot_ids)
    return {
        "label": label,
        "source": source,
        "version": version,
        "scores": scores,
        "mine": [own[s]["value"] for s in shot_ids],
        "mine_versions": [own[s]["version"] for s in shot_ids],
    }


@router.get("/api/videos/{video_id}/timeline")
def timeline(
    request: Request,
    video_id: str = Path(min_length=1, max_length=200),
    labels: str | None = Query(None, max_length=5000),
    caller: Principal = Depends(viewer),
) -> dict[str, Any]:
    """Every shot of a title in time order and, per label, each shot's score and the caller's annotation."""
    ctx = context(request)
    try:
        video = ctx.shots.get_video(video_id)
    except NotFoundError:
        raise ApiError(
            404,
            "not_found",
            f"video_id {video_id!r} is not an ingested title; list titles with GET /api/videos.",
            field="video_id",
            expected="the video_id of an ingested title",
        ) from None
    names = _labels(ctx, labels)
    shots = ctx.shots.shots_of_video(video_id)
    shot_ids = [str(s["shot_id"]) for s in shots]
    return {
        "video_id": video_id,
        "title": str(video.get("title") or ""),
        "duration_s": float(video.get("duration_s") or 0.0),
        "shot_ids": shot_ids,
        "start_s": [round(float(s["start_s"]), 3) for s in shots],
        "end_s": [round(float(s["end_s"]), 3) for s in shots],
        "tracks": [_track(ctx, name, shot_ids, caller.name) for name in names],
    }
