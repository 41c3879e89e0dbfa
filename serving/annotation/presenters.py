"""The JSON shapes of the annotation API: what a label, a version, an annotation or a feed item looks like.

Every router answers with these, so one thing has one shape wherever it appears.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import numpy as np

from annotator_core.duplicates import duplicate_groups
from annotator_core.errors import NotFoundError
from annotator_core.feeds import next_feed
from annotator_core.store import AnnotationRow
from serving.annotation.context import ServiceContext


def timestamp(at: datetime) -> str:
    """ISO 8601 in UTC with its offset, the same whether the database returned the time zone or not."""
    return (at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)).isoformat()


def annotation_out(row: AnnotationRow) -> dict[str, Any]:
    return {
        "shot_id": row.shot_id,
        "annotator": row.annotator,
        "value": row.value,
        "version": row.version,
        "source": row.source,
        "updated_at": timestamp(row.updated_at),
    }


def mine(ctx: ServiceContext, label: str, who: str, shot_ids: list[str]) -> dict[str, dict[str, Any]]:
    """The caller's current {value, version} for each shot (version 0: never annotated)."""
    found = ctx.store.annotations.values_and_versions(label, who, shot_ids)
    return {sid: {"value": value, "version": version} for sid, (value, version) in found.items()}


def shot_info(ctx: ServiceContext, shot_ids: list[str]) -> dict[str, dict[str, Any]]:
    spans = ctx.search().spans(shot_ids)
    titles = ctx.video_titles()
    return {
        sid: {"video_id": video_id, "title": titles.get(video_id, ""), "start_s": start_s, "end_s": end_s}
        for sid, (video_id, start_s, end_s) in spans.items()
    }


def group_fields(ctx: ServiceContext, shot_ids: list[str], *, absent_for: float = 0.0) -> dict[str, dict[str, Any]]:
    """``{group_id, group_size}`` of each shot: its near-duplicate group (a singleton is a group of 1).
    ``absent_for``: see :func:`annotator_core.duplicates.duplicate_groups` (searches pass a second)."""
    ids, sizes = duplicate_groups(ctx.shots, ctx.settings, absent_for=absent_for).groups_of(shot_ids)
    return {sid: {"group_id": g, "group_size": n} for sid, g, n in zip(shot_ids, ids, sizes, strict=True)}


def model_scores(ctx: ServiceContext, label: str, shot_ids: list[str]) -> tuple[int | None, dict[str, float]]:
    """(latest version, {shot_id: P(positive)}) for the given shots; (None, {}) before the first build."""
    from annotator_core.classifier import Classifier

    try:
        version = ctx.store.versions.get(label)
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


def label_summary(ctx: ServiceContext, name: str) -> dict[str, Any]:
    info = ctx.store.labels.get(name)
    readiness = ctx.workspace(name).readiness()
    out: dict[str, Any] = {
        "name": info.name,
        "description": info.description,
        "keywords": info.keywords,
        "positive_examples": info.positive_examples,
        "negative_examples": info.negative_examples,
        "created_by": info.created_by,
        "created_at": timestamp(info.created_at),
        "counts": {"positive": readiness.n_pos, "negative": readiness.n_neg},
        "readiness": {
            "need_positive": readiness.need_pos,
            "need_negative": readiness.need_neg,
            "ready": readiness.ready,
        },
        "latest_version": None,
    }
    try:
        v = ctx.store.versions.get(name)
    except NotFoundError:
        return out
    out["latest_version"] = version_out(v)
    return out


def version_out(v: Any) -> dict[str, Any]:
    extra = {k: val for k, val in (v.extra or {}).items() if k not in {"feeds", "snapshot"} and len(repr(val)) < 4000}
    return {
        "version": v.version,
        "created_at": timestamp(v.created_at),
        "created_by": v.created_by,
        "n_pos": v.n_pos,
        "n_neg": v.n_neg,
        "model_quality": v.model_quality,
        "data_diversity": v.data_diversity,
        "encoder": v.encoder,
        "dim": v.dim,
        "published_at": timestamp(v.published_at) if v.published_at else None,
        "recommendation": extra.get("recommendation", ""),
        "next_feed": next_feed(v.version),
        "extra": extra,
    }


def feed_items(ctx: ServiceContext, label: str, who: str, items: list[Any]) -> list[dict[str, Any]]:
    dicts = [
        i if isinstance(i, dict) else {"shot_id": i.shot_id, "score": i.score, "labeled": i.labeled} for i in items
    ]
    ids = [d["shot_id"] for d in dicts]
    info = shot_info(ctx, ids)
    own = mine(ctx, label, who, ids)
    groups = group_fields(ctx, ids)
    return [{**d, **info.get(d["shot_id"], {}), **groups[d["shot_id"]], "annotation": own[d["shot_id"]]} for d in dicts]
