"""The corpus map: a 2-D layout of the shot vectors, and the geometry the map view needs (issue 15).

Pure functions, numpy in and out. The layout is UMAP (umap-learn), chosen over
PaCMAP and openTSNE by ``benchmarks/corpus_map.py`` (figures in
benchmarks/README.md): it is fitted on a seeded sample of at most
``fit_sample`` shots, and every other shot is placed with the fitted model's
own ``transform``, so 10M shots cost one 100k fit plus a streamed placement.
Shots added later are placed without the model (it is not kept): at the
similarity-weighted mean of their nearest fitted shots, whose vectors and
coordinates the ``shot_map`` table keeps.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from annotator_core.errors import ValidationFailed

PLACE_CHUNK = 20_000
NEIGHBOURS = 15  # UMAP's own default neighbourhood
PLACE_NEIGHBOURS = 5
MAX_POLYGON_VERTICES = 2_000


@dataclass(frozen=True)
class Layout:
    """Map coordinates of every row of the matrix it was made from, and which rows the model was fitted on."""

    coords: np.ndarray  # float32 [N, 2]
    fitted: np.ndarray  # bool [N]


def fit_sample_rows(n: int, *, fit_sample: int, seed: int = 0) -> np.ndarray:
    """Sorted row numbers of the seeded fit sample (all rows when ``n <= fit_sample``)."""
    if fit_sample < 1:
        raise ValidationFailed(f"fit_sample must be at least 1, got {fit_sample}; set VA_MAP_FIT_SAMPLE >= 1.")
    if n <= fit_sample:
        return np.arange(n, dtype=np.int64)
    return np.sort(np.random.default_rng(seed).choice(n, fit_sample, replace=False))


def layout(matrix: np.ndarray, *, fit_sample: int = 100_000, seed: int = 0) -> Layout:
    """UMAP of ``matrix`` (unit rows): fitted on a seeded sample, the other rows placed by the model's ``transform``.

    Fewer than 4 rows cannot be embedded by UMAP: they are laid on a small circle. Cost: the fit is
    O(fit_sample) (about a minute for 100k x 512 on two cores); placement streams ``PLACE_CHUNK`` rows at a time.
    """
    n = len(matrix)
    coords = np.zeros((n, 2), np.float32)
    fitted = np.zeros(n, bool)
    if n == 0:
        return Layout(coords, fitted)
    rows = fit_sample_rows(n, fit_sample=fit_sample, seed=seed)
    fitted[rows] = True
    if len(rows) < 4:
        angle = 2 * np.pi * np.arange(n) / n
        return Layout(np.stack([np.cos(angle), np.sin(angle)], axis=1).astype(np.float32), np.ones(n, bool))
    import umap  # heavy (numba); only the ingest's map step needs it

    model: Any = umap.UMAP(
        n_neighbors=min(NEIGHBOURS, len(rows) - 1),
        metric="cosine",
        random_state=seed,
        low_memory=True,
        init="spectral" if len(rows) > 16 else "random",
    )
    with warnings.catch_warnings():  # a seeded UMAP says it runs on one thread; the layout is seeded on purpose
        warnings.filterwarnings("ignore", message="n_jobs value", category=UserWarning)
        coords[rows] = np.asarray(model.fit_transform(matrix[rows]), np.float32)
    rest = np.flatnonzero(~fitted)
    for start in range(0, len(rest), PLACE_CHUNK):
        chunk = rest[start : start + PLACE_CHUNK]
        coords[chunk] = np.asarray(model.transform(matrix[chunk]), np.float32)
    return Layout(coords, fitted)


def place_near(
    anchors: np.ndarray, anchor_coords: np.ndarray, vectors: np.ndarray, *, k: int = PLACE_NEIGHBOURS
) -> np.ndarray:
    """Coordinates of ``vectors`` (unit rows) at the similarity-weighted mean of their ``k`` most similar anchors.

    Exact cosine over the anchors in blocks of 4,096 rows: O(len(vectors) x len(anchors) x dim), about 10 s for
    10k new shots against 100k anchors of 512 dims; for incremental ingests, not for a whole catalog.
    """
    if len(anchors) == 0:
        raise ValidationFailed("no fitted shots to place new shots near; recompute the map with `va map --full`.")
    if len(anchors) != len(anchor_coords):
        raise ValidationFailed(f"{len(anchors)} anchors but {len(anchor_coords)} anchor coordinates; they must match.")
    k = max(1, min(k, len(anchors)))
    out = np.empty((len(vectors), 2), np.float32)
    for start in range(0, len(vectors), 4096):
        sims = vectors[start : start + 4096] @ anchors.T
        top = np.argpartition(-sims, k - 1, axis=1)[:, :k]
        weights = np.maximum(np.take_along_axis(sims, top, axis=1), 0.0) + 1e-6
        weights /= weights.sum(axis=1, keepdims=True)
        out[start : start + len(top)] = np.einsum("nk,nkd->nd", weights, anchor_coords[top])
    return out


def check_polygon(points: Any) -> np.ndarray:
    """``points`` as a float64 [V, 2] polygon, or ValidationFailed naming what is wrong with it."""
    try:
        polygon = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValidationFailed("polygon must be a list of [x, y] number pairs, e.g. [[0,0],[1,0],[0,1]].") from None
    if polygon.ndim != 2 or polygon.shape[1] != 2:
        raise ValidationFailed(f"polygon must be a list of [x, y] pairs; got an array of shape {polygon.shape}.")
    if len(polygon) < 3:
        raise ValidationFailed(f"polygon has {len(polygon)} vertices; a polygon needs at least 3.")
    if len(polygon) > MAX_POLYGON_VERTICES:
        raise ValidationFailed(f"polygon has {len(polygon)} vertices; simplify it to at most {MAX_POLYGON_VERTICES}.")
    if not np.isfinite(polygon).all():
        raise ValidationFailed("polygon has a vertex that is not a finite number (NaN or infinity); send finite x, y.")
    return polygon


def inside_polygon(points: np.ndarray, polygon: np.ndarray) -> np.ndarray:
    """bool [N]: which ``points`` [N, 2] lie inside ``polygon`` [V, 2] (even-odd rule, closed implicitly).

    Ray casting vectorised over the points, one pass per edge: O(N x V). A point exactly on an edge may fall
    either way.
    """
    polygon = check_polygon(polygon)
    x = np.asarray(points[:, 0], dtype=np.float64)
    y = np.asarray(points[:, 1], dtype=np.float64)
    inside = np.zeros(len(points), bool)
    lo = polygon.min(axis=0)
    hi = polygon.max(axis=0)
    box = (x >= lo[0]) & (x <= hi[0]) & (y >= lo[1]) & (y <= hi[1])
    idx = np.flatnonzero(box)
    bx, by = x[idx], y[idx]
    hit = np.zeros(len(idx), bool)
    x1, y1 = polygon[-1]
    for x2, y2 in polygon:
        crosses = (y1 > by) != (y2 > by)
        with np.errstate(divide="ignore", invalid="ignore"):
            at = x1 + (by - y1) * (x2 - x1) / (y2 - y1)
        hit ^= crosses & (bx < at)
        x1, y1 = x2, y2
    inside[idx] = hit
    return inside


def rectangle(x0: float, y0: float, x1: float, y1: float) -> np.ndarray:
    """The rectangle between two corners as a polygon; a rectangle with no area is refused."""
    if not all(np.isfinite(v) for v in (x0, y0, x1, y1)):
        raise ValidationFailed("rectangle corners must be finite numbers; send x0, y0, x1, y1.")
    if x0 == x1 or y0 == y1:
        raise ValidationFailed(f"rectangle ({x0}, {y0})-({x1}, {y1}) has no area; drag out a larger one.")
    return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)


def convex_hull(points: np.ndarray) -> np.ndarray:
    """Vertices [H, 2] of the convex hull of ``points`` [N, 2], counter-clockwise (monotone chain, O(N log N))."""
    pts = np.unique(np.asarray(points, dtype=np.float64), axis=0)
    if len(pts) < 3:
        return pts

    def half(seq: np.ndarray) -> list[np.ndarray]:
        chain: list[np.ndarray] = []
        for p in seq:
            while len(chain) >= 2:
                a, b = chain[-2], chain[-1]
                if (b[0] - a[0]) * (p[1] - a[1]) - (b[1] - a[1]) * (p[0] - a[0]) > 0:
                    break
                chain.pop()
            chain.append(p)
        return chain

    lower = half(pts)
    upper = half(pts[::-1])
    return np.array(lower[:-1] + upper[:-1])


def sample_points(n: int, *, keep: np.ndarray, limit: int, seed: int = 0) -> np.ndarray:
    """Sorted rows to draw when ``n`` points are too many: every ``keep`` row (labelled shots) plus a seeded random
    sample of the others, ``limit`` in all (more only when ``keep`` alone exceeds it)."""
    if limit < 1:
        raise ValidationFailed(f"max_points must be at least 1, got {limit}.")
    if n <= limit:
        return np.arange(n, dtype=np.int64)
    kept = np.flatnonzero(keep)
    others = np.flatnonzero(~keep)
    room = max(0, limit - len(kept))
    drawn = np.random.default_rng(seed).choice(others, min(room, len(others)), replace=False)
    return np.sort(np.concatenate([kept, drawn]).astype(np.int64))
