"""The ANN index of the shots table: exact search below a size threshold, an IVF index above it.

Shot vectors are L2-normalised and compared by cosine, so the index is trained
with the cosine distance (an IVF-PQ index trained with the default L2 settings
is what returned recall@10 of 0.10). The index type is a setting; queries scan
``nprobes`` partitions and re-rank the larger of k and ``refine_factor`` x 10
candidates exactly, both settings applied by ``ShotStore.search``. Measured
choices are in benchmarks/README.md (``benchmarks/search_latency.py``,
``benchmarks/annotation_service.py`` for search over HTTP, 10M included).

Shots added after a build are appended to the index with ``optimize()`` (no
retraining); once they pass ``REBUILD_FRACTION`` of the indexed rows, the
partitions are retrained from scratch so the centroids follow the catalog.
Until then LanceDB scans the unindexed rows exactly, so no shot is missed.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from lancedb.index import HnswSq, IvfFlat, IvfPq, IvfRq, IvfSq

from annotator_core.records import SHOTS_TABLE
from annotator_core.shot_store import ShotStore

VECTOR_INDEX = "vector_idx"
REBUILD_FRACTION = 0.2
# With settings.index_partitions = 0: about sqrt(N) partitions, never fewer than this many rows each.
MIN_PARTITION_ROWS = 1000

KEY_COLUMNS = ("shot_id", "video_id")
INDEX_CONFIGS = {"IVF_FLAT": IvfFlat, "IVF_SQ": IvfSq, "IVF_RQ": IvfRq, "IVF_PQ": IvfPq, "IVF_HNSW_SQ": HnswSq}


@dataclass(frozen=True)
class IndexReport:
    action: str  # "exact" (below the threshold), "created", "extended", "rebuilt" or "current"
    rows: int
    index_type: str
    partitions: int
    seconds: float


def partitions_for(rows: int, *, configured: int = 0) -> int:
    """IVF partitions for ``rows`` vectors: the setting, else ~sqrt(N) with >= MIN_PARTITION_ROWS each."""
    if configured > 0:
        return configured
    return max(1, min(math.isqrt(rows), rows // MIN_PARTITION_ROWS))


def index_config(index_type: str, *, partitions: int) -> Any:
    try:
        config_class = INDEX_CONFIGS[index_type]
    except KeyError:
        raise ValueError(f"index type {index_type!r} is not one of {', '.join(INDEX_CONFIGS)}") from None
    options: dict[str, Any] = {"distance_type": "cosine", "num_partitions": partitions}
    if index_type == "IVF_RQ":
        options["num_bits"] = 4  # 1-bit RaBitQ codes rank too coarsely to refine from at k=10
    return config_class(**options)


def ensure_index(store: ShotStore, *, settings: Any) -> IndexReport:
    """Build, extend or leave the shots' vector index so that search stays fast and accurate."""
    started = time.perf_counter()
    index_type = str(settings.index_type)
    if not store.has_shots():
        return IndexReport("exact", 0, index_type, 0, 0.0)
    table = store.db.open_table(SHOTS_TABLE)
    ensure_key_indexes(table)
    rows = int(table.count_rows())
    partitions = partitions_for(rows, configured=settings.index_partitions)
    if rows < max(settings.index_threshold, 2 * MIN_PARTITION_ROWS):
        return IndexReport("exact", rows, index_type, 0, time.perf_counter() - started)

    existing = _vector_index_stats(table)
    if existing is not None and existing.index_type == index_type and existing.distance_type == "cosine":
        unindexed = int(existing.num_unindexed_rows or 0)
        if unindexed == 0:
            return IndexReport("current", rows, index_type, partitions, time.perf_counter() - started)
        if unindexed <= REBUILD_FRACTION * max(int(existing.num_indexed_rows or 0), 1):
            table.optimize()
            return IndexReport("extended", rows, index_type, partitions, time.perf_counter() - started)
    table.create_index(
        "vector", config=index_config(index_type, partitions=partitions), replace=True, name=VECTOR_INDEX
    )
    action = "created" if existing is None else "rebuilt"
    return IndexReport(action, rows, index_type, partitions, time.perf_counter() - started)


def ensure_key_indexes(table: Any) -> None:
    """BTREE indexes on the shot and video ids: lookups by id and keyed writes stop scanning the table."""
    indexed = {tuple(index.columns) for index in table.list_indices()}
    for column in KEY_COLUMNS:
        if (column,) not in indexed:
            table.create_scalar_index(column, index_type="BTREE")


def _vector_index_stats(table: Any) -> Any:
    for index in table.list_indices():
        if list(index.columns) == ["vector"]:
            return table.index_stats(index.name)
    return None
