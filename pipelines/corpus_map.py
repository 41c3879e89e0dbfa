"""The corpus map step of ingest and of `va map`: lay the shot vectors out in 2-D and keep it in ``shot_map``.

A full run fits the layout on a seeded sample (``VA_MAP_FIT_SAMPLE``) and places
every other shot with the fitted model (``annotator_core.corpus_map.layout``).
An incremental run (the end of an ingest, when a map exists) places only the
shots the map lacks, near their most similar fitted shots, and forgets shots
that left ``shots``; it falls back to a full run when there is no map yet or
the map's fitted shots are gone. Every write is a keyed merge, so a re-run
writes the same rows.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from annotator_core.corpus_map import layout, place_near
from annotator_core.records import shot_map_schema
from annotator_core.settings import Settings
from annotator_core.shot_store import ShotStore

WRITE_CHUNK = 200_000


@dataclass(frozen=True)
class MapReport:
    mode: str  # "full", "incremental" or "none"
    shots: int  # shots in the map afterwards
    placed: int  # shots this run laid out or placed
    removed: int  # map rows of shots no longer in ``shots``
    fitted: int  # shots the layout was fitted on
    layout_version: int
    seconds: float


def map_shots(store: ShotStore, *, settings: Settings, full: bool = False, seed: int = 0) -> MapReport:
    """Bring ``shot_map`` up to date with ``shots``: a full layout when asked or needed, else place the new shots."""
    started = time.perf_counter()
    if not store.has_shots():
        return MapReport("none", 0, 0, 0, 0, 0, 0.0)
    vectors = store.vectors()
    existing = store.read_shot_map(columns=["shot_id", "x", "y", "layout_version", "fitted"])
    ids = vectors.ids
    mapped = existing.column("shot_id").to_numpy(zero_copy_only=False).astype(object)
    in_corpus = np.isin(mapped, ids)
    gone = mapped[~in_corpus].tolist()
    fitted_kept = existing.column("fitted").to_numpy(zero_copy_only=False).astype(bool) & in_corpus
    previous = int(pa.compute.max(existing.column("layout_version")).as_py() or 0) if existing.num_rows else 0

    if gone:
        store.delete_shot_map(gone)
    if full or not fitted_kept.any():
        result = layout(vectors.matrix, fit_sample=settings.map_fit_sample, seed=seed)
        version = previous + 1
        _write(store, ids, result.coords, result.fitted, version)
        return MapReport(
            "full", len(ids), len(ids), len(gone), int(result.fitted.sum()), version, time.perf_counter() - started
        )

    new_rows = np.flatnonzero(~np.isin(ids, mapped))
    if len(new_rows):
        row_of = vectors.row_of
        anchor_ids = mapped[fitted_kept]
        anchors = vectors.matrix[[row_of[sid] for sid in anchor_ids.tolist()]]
        anchor_coords = np.stack(
            [existing.column(c).to_numpy(zero_copy_only=False)[fitted_kept] for c in ("x", "y")], axis=1
        ).astype(np.float32)
        coords = place_near(anchors, anchor_coords, vectors.matrix[new_rows])
        _write(store, ids[new_rows], coords, np.zeros(len(new_rows), bool), previous)
    return MapReport(
        "incremental",
        len(ids),
        len(new_rows),
        len(gone),
        int(fitted_kept.sum()),
        previous,
        time.perf_counter() - started,
    )


def _write(store: ShotStore, ids: np.ndarray, coords: np.ndarray, fitted: np.ndarray, version: int) -> None:
    schema = shot_map_schema()
    for start in range(0, len(ids), WRITE_CHUNK):
        end = start + WRITE_CHUNK
        n = len(ids[start:end])
        table = pa.table(
            {
                "shot_id": pa.array(ids[start:end].tolist(), pa.string()),
                "x": pa.array(coords[start:end, 0], pa.float32()),
                "y": pa.array(coords[start:end, 1], pa.float32()),
                "layout_version": pa.array(np.full(n, version, np.int64)),
                "fitted": pa.array(fitted[start:end]),
            },
            schema=schema,
        )
        store.upsert_shot_map(table)
