"""The corpus map over HTTP (issue 15): a label's points on the map, and the shots inside a lasso or rectangle.

The coordinates come from ``shot_map`` (written by ingest and `va map`); this
router reads them once per table version into one cache shared by the app's
requests (ids, two float32 and a cluster id a shot: about 0.2 GB at 10M
shots), and never sends the browser more than ``VA_MAP_MAX_POINTS`` points:
past that, every labelled shot plus a seeded sample of the rest. A selection is
answered from the same stored coordinates, a page at a time.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from annotator_core.corpus_map import check_polygon, convex_hull, inside_polygon, rectangle, sample_points
from annotator_core.errors import NotFoundError, ValidationFailed
from annotator_core.records import SHOTS_TABLE
from serving.annotation.auth import Principal, viewer
from serving.annotation.context import ServiceContext, context
from serving.annotation.inputs import LabelName
from serving.annotation.presenters import feed_items, model_scores
from serving.http_errors import ApiError

router = APIRouter(tags=["map"])

HULL_POINTS = 5_000  # points of a cluster its outline is drawn around (a seeded sample past that)


@dataclass(frozen=True)
class MapPoints:
    """Every mapped shot that is still in ``shots``, sorted by shot id."""

    ids: np.ndarray  # object [N]
    xy: np.ndarray  # float32 [N, 2]
    clusters: np.ndarray  # int64 [N]
    layout_version: int
    key: tuple[int, int]  # (shot_map version, shots version)


class _MapCache:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.points: MapPoints | None = None


def map_points(ctx: ServiceContext) -> MapPoints:
    """The stored map joined with each shot's cluster, read again only when either table changed."""
    cache: _MapCache = ctx.shots.shared("corpus_map", _MapCache)
    key = (ctx.shots.shot_map_version(), ctx.shots.version() if ctx.shots.has_shots() else 0)
    with cache.lock:
        if cache.points is not None and cache.points.key == key:
            return cache.points
        placed = ctx.shots.read_shot_map(columns=["shot_id", "x", "y", "layout_version"])
        if placed.num_rows == 0 or not ctx.shots.has_shots():
            raise NotFoundError("there is no corpus map yet; run `va map` (ingest makes one when it finishes).")
        shots = ctx.shots.db.open_table(SHOTS_TABLE).to_lance().to_table(columns=["shot_id", "cluster_id"])
        shot_ids = shots.column("shot_id").to_numpy(zero_copy_only=False).astype(object)
        map_ids = placed.column("shot_id").to_numpy(zero_copy_only=False).astype(object)
        order = np.argsort(map_ids)
        map_ids = map_ids[order]
        by_shot = np.argsort(shot_ids)
        at = np.searchsorted(shot_ids[by_shot], map_ids)
        at = np.minimum(at, len(shot_ids) - 1)
        present = shot_ids[by_shot][at] == map_ids
        clusters = shots.column("cluster_id").to_numpy().astype(np.int64)[by_shot][at]
        xy = np.stack([placed.column(c).to_numpy()[order] for c in ("x", "y")], axis=1).astype(np.float32)
        versions = placed.column("layout_version").to_numpy()
        cache.points = MapPoints(
            ids=map_ids[present],
            xy=xy[present],
            clusters=clusters[present],
            layout_version=int(versions.max()) if len(versions) else 0,
            key=key,
        )
        return cache.points


def _label_exists(ctx: ServiceContext, label: str) -> None:
    ctx.store.labels.get(label)  # NotFoundError (404) naming the label


def _cluster_outlines(
    points: MapPoints, consensus: dict[str, bool], *, k: int, cap: int, seed: int = 0
) -> list[dict[str, Any]]:
    """Per cluster the data-diversity score counts: outline (hull), centre, size and labelled counts (capped)."""
    rng = np.random.default_rng(seed)
    row = {sid: i for i, sid in enumerate(points.ids.tolist())} if consensus else {}
    pos = np.zeros(max(k, int(points.clusters.max(initial=-1)) + 1), np.int64)
    neg = np.zeros_like(pos)
    for sid, value in consensus.items():
        i = row.get(sid)
        if i is not None and points.clusters[i] >= 0:
            (pos if value else neg)[points.clusters[i]] += 1
    out = []
    for cluster in range(len(pos)):
        members = np.flatnonzero(points.clusters == cluster)
        if len(members) == 0:
            continue
        if len(members) > HULL_POINTS:
            members = rng.choice(members, HULL_POINTS, replace=False)
        xy = points.xy[members]
        out.append(
            {
                "cluster": cluster,
                "shots": int((points.clusters == cluster).sum()),
                "centre": [float(v) for v in np.median(xy, axis=0)],
                "hull": convex_hull(xy).round(4).tolist(),
                "positive": int(pos[cluster]),
                "negative": int(neg[cluster]),
                "counted_positive": int(min(pos[cluster], cap)),
                "counted_negative": int(min(neg[cluster], cap)),
            }
        )
    return out


@router.get("/api/labels/{label}/map")
def label_map(
    request: Request,
    label: str = LabelName,
    max_points: int | None = Query(None, ge=1, le=5_000_000, description="at most this many points (default setting)"),
    _caller: Principal = Depends(viewer),
) -> dict[str, Any]:
    """Every shot on the corpus map (a sample past VA_MAP_MAX_POINTS, labelled shots always in) with its cluster,
    the label's consensus annotation (1, 0 or null) and the latest build's score, and the clusters' outlines with
    the labelled counts the data-diversity score counts."""
    ctx = context(request)
    _label_exists(ctx, label)
    points = map_points(ctx)
    consensus = ctx.store.annotations.consensus(label)
    labelled = np.fromiter((sid in consensus for sid in points.ids.tolist()), bool, count=len(points.ids))
    limit = max_points or ctx.settings.map_max_points
    rows = sample_points(len(points.ids), keep=labelled, limit=limit)
    ids = points.ids[rows].tolist()
    version, scores = model_scores(ctx, label, ids)
    k, cap = ctx.settings.n_clusters, ctx.settings.diversity_cap
    return {
        "label": label,
        "layout_version": points.layout_version,
        "build_version": version,
        "total": len(points.ids),
        "sampled": bool(len(rows) < len(points.ids)),
        "points": {
            "shot_id": ids,
            "x": points.xy[rows, 0].round(5).tolist(),
            "y": points.xy[rows, 1].round(5).tolist(),
            "cluster": points.clusters[rows].tolist(),
            "annotation": [None if sid not in consensus else int(consensus[sid]) for sid in ids],
            "score": [None if sid not in scores else round(scores[sid], 5) for sid in ids],
        },
        "clusters": _cluster_outlines(points, consensus, k=k, cap=cap),
        "diversity": {"k": k, "cap": cap},
    }


class Selection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    polygon: list[list[float]] | None = Field(
        None, max_length=2000, description="lasso: [[x, y], ...] in map coordinates, at least 3 vertices"
    )
    rect: list[float] | None = Field(None, description="rectangle: [x0, y0, x1, y1] in map coordinates")
    offset: int = Field(0, ge=0, le=100_000_000)
    limit: int = Field(50, ge=1, le=1000)


def selection_polygon(body: Selection) -> np.ndarray:
    """The polygon a selection names, or a 422 naming the field that is wrong."""
    if (body.polygon is None) == (body.rect is None):
        raise ApiError(422, "invalid", "send exactly one of polygon (a lasso) or rect (a rectangle).", field="polygon")
    field = "polygon" if body.polygon is not None else "rect"
    try:
        if body.polygon is not None:
            return check_polygon(body.polygon)
        assert body.rect is not None
        if len(body.rect) != 4:
            raise ValidationFailed(f"rect must be [x0, y0, x1, y1]; got {len(body.rect)} numbers.")
        return rectangle(*body.rect)
    except ValidationFailed as exc:
        raise ApiError(422, "invalid", str(exc), field=field) from None


@router.post("/api/labels/{label}/map/select")
def select(request: Request, body: Selection, label: str = LabelName, caller: Principal = Depends(viewer)) -> Any:
    """The shots whose stored map coordinates lie inside a polygon or rectangle, sorted by shot id, a page at a
    time (``offset``/``limit``; ``next_offset`` is null on the last page), as feed items to label from."""
    ctx = context(request)
    polygon = selection_polygon(body)
    _label_exists(ctx, label)
    points = map_points(ctx)
    inside = np.flatnonzero(inside_polygon(points.xy, polygon))
    page = inside[body.offset : body.offset + body.limit]
    ids = points.ids[page].tolist()
    _version, scores = model_scores(ctx, label, ids)
    items = feed_items(ctx, label, caller.name, [{"shot_id": sid, "score": scores.get(sid)} for sid in ids])
    for item, row in zip(items, page.tolist(), strict=True):
        item["x"], item["y"] = float(points.xy[row, 0]), float(points.xy[row, 1])
    end = body.offset + len(page)
    return {
        "label": label,
        "layout_version": points.layout_version,
        "total": len(inside),
        "offset": body.offset,
        "next_offset": end if end < len(inside) else None,
        "items": items,
    }
