"""The shot store: ``videos`` and ``shots`` in LanceDB (a local folder or object storage).

Every write is a keyed ``merge_insert`` on the natural key, so writing the
same rows again changes no counts. The active-learning loop reads every shot
vector on every build; :meth:`ShotStore.vectors` keeps them as one float32
matrix, cached until the table's version changes.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from functools import cached_property
from typing import Any

import lancedb
import numpy as np
import pyarrow as pa

from annotator_core.errors import SETUP_FAILURE, DimensionMismatch, NotFoundError, StoreUnavailable
from annotator_core.records import (
    DUPLICATES_TABLE,
    SCORES_TABLE,
    SHOT_MAP_TABLE,
    SHOTS_TABLE,
    VIDEOS_TABLE,
    duplicates_schema,
    scores_schema,
    shot_map_schema,
    shots_schema,
    videos_schema,
)

# Columns a caller normally wants about a shot; the vector and thumbnail are asked for by name.
SHOT_INFO_COLUMNS = ["shot_id", "video_id", "start_frame", "end_frame", "start_s", "end_s", "cluster_id", "encoder"]
# What a search hit carries, and how many hits are always re-ranked exactly on the full vectors.
SEARCH_COLUMNS = ["shot_id", "video_id", "start_s", "end_s"]
RERANK_DEPTH = 10


@dataclass(frozen=True)
class VectorMatrix:
    """Every shot's vector as one matrix, row i belonging to ``ids[i]``."""

    ids: np.ndarray  # object array of shot ids
    matrix: np.ndarray  # float32 [N, dim], L2-normalised rows
    cluster_ids: np.ndarray  # int64 [N]; -1 where clustering has not run
    version: int

    def __len__(self) -> int:
        return len(self.ids)

    @cached_property
    def row_of(self) -> dict[str, int]:
        """shot_id -> row, built once per matrix (a dict of 1M ids takes ~0.1 s); the store caches the matrix."""
        return {sid: i for i, sid in enumerate(self.ids.tolist())}

    def index_of(self) -> dict[str, int]:
        return self.row_of


@dataclass(frozen=True)
class SearchHit:
    shot_id: str
    video_id: str
    start_s: float
    end_s: float
    score: float  # cosine similarity, higher is closer


class ShotStore:
    def __init__(
        self,
        uri: str,
        *,
        storage_options: Mapping[str, str] | None = None,
        nprobes: int = 32,
        refine_factor: int = 4,
    ) -> None:
        self.uri = uri
        self.nprobes = nprobes
        self.refine_factor = refine_factor
        self.storage_options = dict(storage_options or {})
        try:
            self.db = lancedb.connect(
                uri,
                storage_options=self.storage_options or None,
                # Every read sees the newest committed version (ingest may write meanwhile).
                read_consistency_interval=timedelta(0),
            )
        except Exception as exc:  # lancedb raises plain ValueError/OSError for bad URIs and options
            raise StoreUnavailable(
                f"VA_LANCEDB_URI={uri!r} cannot be opened ({exc}); fix the URI or VA_STORAGE_OPTIONS."
            ) from None
        self._lock = threading.Lock()
        self._cache: VectorMatrix | None = None
        self._shared: dict[str, Any] = {}
        self._shared_lock = threading.Lock()
        self._search_lock = threading.Lock()
        self._datasets: dict[str, Any] = {}  # table name -> Lance dataset kept open (see latest_dataset)
        self.upserts = 0  # merges through this store (_upsert), so far

    @classmethod
    def from_settings(cls, settings: Any) -> ShotStore:
        if not settings.lancedb_uri:
            settings.ensure_data_dir()
        return cls(
            settings.resolved_lancedb_uri,
            storage_options=settings.storage_options,
            nprobes=settings.search_nprobes,
            refine_factor=settings.search_refine_factor,
        )

    # -- tables ----------------------------------------------------------------

    def table_names(self) -> list[str]:
        return list(self.db.table_names())

    def has_shots(self) -> bool:
        return SHOTS_TABLE in self.table_names()

    def ensure_tables(self, dim: int) -> None:
        """Create ``videos`` and ``shots`` (vectors of ``dim``) if missing; refuse a different ``dim``."""
        names = self.table_names()
        if VIDEOS_TABLE not in names:
            self.db.create_table(VIDEOS_TABLE, schema=videos_schema(), exist_ok=True)
        if SHOTS_TABLE not in names:
            self.db.create_table(SHOTS_TABLE, schema=shots_schema(dim), exist_ok=True)
        elif self.dim() != dim:
            raise DimensionMismatch(
                f"the shots table at {self.uri} holds {self.dim()}-d vectors but the encoder makes {dim}-d ones; "
                "ingest with the encoder the table was made with, or point VA_LANCEDB_URI at a new folder."
            )

    def _table(self, name: str) -> Any:
        try:
            return self.db.open_table(name)
        except (ValueError, FileNotFoundError):
            raise NotFoundError(
                f"table {name!r} does not exist in {self.uri}; run `va ingest PATH` (or `va demo`) first."
            ) from None

    def dim(self) -> int:
        field = self._table(SHOTS_TABLE).schema.field("vector")
        return int(field.type.list_size)

    def encoder(self) -> str | None:
        """The encoder the shots were embedded with (None when there are no shots)."""
        if not self.has_shots():
            return None
        rows = self._table(SHOTS_TABLE).search().select(["encoder"]).limit(1).to_list()
        return rows[0]["encoder"] if rows else None

    def version(self) -> int:
        dataset = self.latest_dataset(SHOTS_TABLE)
        return int(dataset.version) if dataset is not None else 0

    def counts(self) -> dict[str, int]:
        names = self.table_names()
        out = {}
        for name in (VIDEOS_TABLE, SHOTS_TABLE):
            out[name] = int(self._table(name).count_rows()) if name in names else 0
        if VIDEOS_TABLE in names:
            out["videos_failed"] = int(self._table(VIDEOS_TABLE).count_rows("status = 'failed'"))
            # ingested with stretches the decoder could not read (their seconds are in the row's error)
            out["videos_damaged"] = int(self._table(VIDEOS_TABLE).count_rows("status = 'done' AND error != ''"))
        return out

    # -- writes ----------------------------------------------------------------

    def upsert_videos(self, rows: Sequence[Mapping[str, Any]] | pa.Table) -> None:
        self._upsert(VIDEOS_TABLE, "video_id", rows, videos_schema())

    def upsert_shots(self, rows: Sequence[Mapping[str, Any]] | pa.Table) -> None:
        if isinstance(rows, pa.Table):
            if rows.num_rows == 0:
                return
            dim = rows.schema.field("vector").type.list_size
        else:
            if not rows:
                return
            dim = len(rows[0]["vector"])
        self.ensure_tables(dim)
        self._upsert(SHOTS_TABLE, "shot_id", rows, shots_schema(dim))

    def _upsert(self, name: str, key: str | list[str], rows: Any, schema: pa.Schema) -> None:
        """Merge ``rows`` into table ``name`` keyed on ``key``, creating the table on its first write."""
        data = rows if isinstance(rows, pa.Table) else pa.Table.from_pylist(list(rows), schema=schema)
        if data.num_rows == 0:
            return
        self.upserts += 1  # tells caches of "no such table" (duplicates._GroupCache) to look again
        if name not in self.table_names():
            self.db.create_table(name, schema=schema, exist_ok=True)
        data = data.select(schema.names).cast(schema)
        (self._table(name).merge_insert(key).when_matched_update_all().when_not_matched_insert_all().execute(data))

    def set_cluster_ids(self, shot_ids: Sequence[str], cluster_ids: Sequence[int]) -> None:
        """Write ``cluster_id`` for the given shots (keyed, so a re-run is harmless)."""
        if len(shot_ids) != len(cluster_ids):
            raise ValueError(f"{len(shot_ids)} shot ids but {len(cluster_ids)} cluster ids")
        data = pa.table(
            {"shot_id": pa.array(list(shot_ids), pa.string()), "cluster_id": pa.array(cluster_ids, pa.int64())}
        )
        self._table(SHOTS_TABLE).merge_insert("shot_id").when_matched_update_all().execute(data)

    def relocate_videos(self, moves: Sequence[tuple[str, str, str]]) -> None:
        """Point done videos at where their files are now: ``(video_id, uri, title)`` each (a moved or renamed
        file keeps its fingerprint, shots and labels; only where to read it changes)."""
        table = self._table(VIDEOS_TABLE)
        for video_id, uri, title in moves:
            table.update(where=f"video_id = {_sql_str(video_id)}", values={"uri": uri, "title": title})

    def failed_at(self) -> dict[str, set[str]]:
        """The paths of the ``failed`` rows, each with the video ids that failed there (one read of those rows)."""
        found: dict[str, set[str]] = {}
        for row in self.videos(status="failed"):
            found.setdefault(row["uri"], set()).add(row["video_id"])
        return found

    def delete_failed_videos(self, video_ids: Sequence[str]) -> None:
        """Drop these ``failed`` rows (done rows with the same ids are left alone)."""
        if VIDEOS_TABLE not in self.table_names():
            return
        for start in range(0, len(video_ids), 1000):
            chunk = video_ids[start : start + 1000]
            self._table(VIDEOS_TABLE).delete(f"status = 'failed' AND {sql_in('video_id', chunk)}")

    def delete_video_shots(self, video_id: str) -> None:
        if self.has_shots():
            self._table(SHOTS_TABLE).delete(f"video_id = {_sql_str(video_id)}")

    # -- reads -----------------------------------------------------------------

    def get_shots(self, shot_ids: Sequence[str], *, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
        """Shots by id, in the order asked; ids that do not exist are left out."""
        if not shot_ids:
            return []
        cols = list(columns or SHOT_INFO_COLUMNS)
        if "shot_id" not in cols:
            cols = ["shot_id", *cols]
        found: dict[str, dict[str, Any]] = {}
        unique = list(dict.fromkeys(shot_ids))
        for start in range(0, len(unique), 1000):
            chunk = unique[start : start + 1000]
            where = "shot_id IN (" + ", ".join(_sql_str(s) for s in chunk) + ")"
            for row in self._table(SHOTS_TABLE).search().where(where).select(cols).limit(len(chunk)).to_list():
                found[row["shot_id"]] = row
        return [found[s] for s in shot_ids if s in found]

    def get_shot(self, shot_id: str, *, columns: Sequence[str] | None = None) -> dict[str, Any]:
        rows = self.get_shots([shot_id], columns=columns)
        if not rows:
            raise NotFoundError(f"no shot {shot_id!r}; shot ids look like '<video_id>:<start_frame>'.")
        return rows[0]

    def shots_of_video(self, video_id: str) -> list[dict[str, Any]]:
        rows = (
            self._table(SHOTS_TABLE)
            .search()
            .where(f"video_id = {_sql_str(video_id)}")
            .select(SHOT_INFO_COLUMNS)
            .limit(1_000_000)
            .to_list()
        )
        return sorted(rows, key=lambda r: r["start_frame"])

    def get_video(self, video_id: str) -> dict[str, Any]:
        rows = self._table(VIDEOS_TABLE).search().where(f"video_id = {_sql_str(video_id)}").limit(1).to_list()
        if not rows:
            raise NotFoundError(f"no video {video_id!r}; list videos with `va status`.")
        return rows[0]

    def videos(self, *, status: str | None = None) -> list[dict[str, Any]]:
        if VIDEOS_TABLE not in self.table_names():
            return []
        q = self._table(VIDEOS_TABLE).search()
        if status is not None:
            q = q.where(f"status = {_sql_str(status)}")
        return list(q.limit(10_000_000).to_list())

    def done_video_ids(self) -> set[str]:
        return {v["video_id"] for v in self.videos(status="done")}

    def failed_video_ids(self) -> set[str]:
        """Fingerprints of the videos whose last ingest failed (a changed file has a new fingerprint), but for
        failures of this machine's setup (:data:`~annotator_core.errors.SETUP_FAILURE`), which the next run
        tries again."""
        return {v["video_id"] for v in self.videos(status="failed") if not v["error"].startswith(SETUP_FAILURE)}

    def vectors(self) -> VectorMatrix:
        """All shot vectors as one float32 matrix with their ids, cached by table version."""
        table = self._table(SHOTS_TABLE)
        version = int(table.version)
        with self._lock:
            if self._cache is not None and self._cache.version == version:
                return self._cache
            data = table.to_lance().to_table(columns=["shot_id", "vector", "cluster_id"])
            dim = data.schema.field("vector").type.list_size
            vec = data.column("vector").combine_chunks()
            matrix = np.asarray(vec.values.to_numpy(zero_copy_only=False), dtype=np.float32).reshape(-1, dim)
            self._cache = VectorMatrix(
                ids=np.asarray(data.column("shot_id").to_pylist(), dtype=object),
                matrix=matrix,
                cluster_ids=data.column("cluster_id").to_numpy().astype(np.int64),
                version=version,
            )
            return self._cache

    def vectors_of(self, shot_ids: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
        """(ids found, float32 vectors, cluster ids) of the given shots, in the order asked; a keyed read
        through the BTREE index on ``shot_id``, so a build reads its few thousand shots, not the table."""
        unique = list(dict.fromkeys(shot_ids))
        dim = self.dim()
        found: dict[str, tuple[np.ndarray, int]] = {}
        table = self._table(SHOTS_TABLE)
        for start in range(0, len(unique), 1000):
            chunk = unique[start : start + 1000]
            data = (
                table.search()
                .where("shot_id IN (" + ", ".join(_sql_str(s) for s in chunk) + ")")
                .select(["shot_id", "vector", "cluster_id"])
                .limit(len(chunk))
                .to_arrow()
            )
            values = data.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False)
            matrix = np.asarray(values, dtype=np.float32).reshape(-1, dim)
            clusters = data.column("cluster_id").to_numpy()
            for i, sid in enumerate(data.column("shot_id").to_pylist()):
                found[sid] = (matrix[i], int(clusters[i]))
        ids = [s for s in shot_ids if s in found]
        vectors = np.stack([found[s][0] for s in ids]) if ids else np.empty((0, dim), np.float32)
        clusters_out = np.array([found[s][1] for s in ids], dtype=np.int64)
        return ids, vectors, clusters_out

    def shared(self, key: str, make: Any) -> Any:
        """An object derived from this store (the build's corpus scorer), made once by ``make()`` and kept."""
        with self._shared_lock:
            if key not in self._shared:
                self._shared[key] = make()
            return self._shared[key]

    def search(self, vector: np.ndarray, *, k: int = 20, where: str | None = None) -> list[SearchHit]:
        """Cosine nearest shots to ``vector``, optionally filtered by a SQL expression on shot columns.

        One Lance query on a dataset kept open between calls: going through the LanceDB table instead
        costs six round trips to its event loop a query and reopening drops the cached ANN index.
        """
        dataset = self._shots_dataset()
        query = np.asarray(vector, dtype=np.float32).ravel()
        dim = int(dataset.schema.field("vector").type.list_size)
        if query.shape[0] != dim:
            raise DimensionMismatch(f"query vector has {query.shape[0]} values; the shots table expects {dim}.")
        nearest = {
            "column": "vector",
            "q": query,
            "k": k,
            "metric": "cosine",
            "nprobes": self.nprobes,
            # The exact re-rank covers refine_factor x 10 candidates (recall@10 is what is promised) and every
            # hit returned, without reading refine_factor x k full vectors for a long result list.
            "refine_factor": max(1, math.ceil(self.refine_factor * RERANK_DEPTH / max(k, 1))),
        }
        found = dataset.to_table(
            columns=[*SEARCH_COLUMNS, "_distance"], nearest=nearest, filter=where or None, prefilter=bool(where)
        )
        columns = [found.column(name).to_pylist() for name in (*SEARCH_COLUMNS, "_distance")]
        return [
            SearchHit(str(sid), str(vid), float(start), float(end), 1.0 - float(distance))
            for sid, vid, start, end, distance in zip(*columns, strict=True)
        ]

    def search_like(self, shot_id: str, *, k: int = 20, where: str | None = None) -> list[SearchHit]:
        """The ``k`` shots most like ``shot_id`` (itself left out), its vector read through the shot-id index."""
        found = self._shots_dataset().to_table(columns=["vector"], filter=f"shot_id = {_sql_str(shot_id)}", limit=1)
        if found.num_rows == 0:
            raise NotFoundError(f"no shot {shot_id!r}; shot ids look like '<video_id>:<start_frame>'.")
        vector = found.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False)
        return [hit for hit in self.search(vector, k=k + 1, where=where) if hit.shot_id != shot_id][:k]

    def _shots_dataset(self) -> Any:
        """The shots table as a Lance dataset at its newest version, one per store so its index caches stay warm."""
        dataset = self.latest_dataset(SHOTS_TABLE)
        if dataset is None:
            self._table(SHOTS_TABLE)  # raises the NotFoundError that says to ingest first
        return dataset

    def latest_dataset(self, name: str) -> Any | None:
        """Table ``name`` as a Lance dataset at its newest version, kept open between calls; None while absent.

        A kept dataset costs one listing of its version folder per call (~0.03 ms here); opening the table
        through LanceDB costs a listing of the database folder and a manifest read (~1-3 ms), which every
        search and build used to pay several times over.
        """
        with self._search_lock:
            dataset = self._datasets.get(name)
            if dataset is not None:
                try:
                    latest = dataset.latest_version  # ingest may have written meanwhile
                except (OSError, ValueError, RuntimeError):  # the table was dropped: look it up again
                    dataset = None
                else:
                    if latest != dataset.version:
                        dataset = dataset.checkout_version(latest)
            if dataset is None:
                if name not in self.table_names():
                    self._datasets.pop(name, None)
                    return None
                dataset = self._table(name).to_lance()
            self._datasets[name] = dataset
            return dataset

    def sample(self, n: int, *, seed: int = 0) -> list[str]:
        """``n`` shot ids drawn uniformly without replacement (reproducible by seed)."""
        ids = self.vectors().ids
        rng = np.random.default_rng(seed)
        pick = rng.choice(len(ids), size=min(n, len(ids)), replace=False)
        return [str(ids[i]) for i in pick]

    def thumbnail(self, shot_id: str) -> bytes:
        return bytes(self.get_shot(shot_id, columns=["thumbnail"])["thumbnail"])

    # -- scores ----------------------------------------------------------------

    def upsert_scores(self, rows: Sequence[Mapping[str, Any]] | pa.Table) -> None:
        """Merge :class:`~annotator_core.records.ScoreRecord` rows keyed on (shot_id, label): a re-run changes
        nothing, a new version of a label replaces its rows."""
        self._upsert(SCORES_TABLE, ["shot_id", "label"], rows, scores_schema())

    def read_scores(
        self, *, label: str | None = None, version: int | None = None, columns: Sequence[str] | None = None
    ) -> pa.Table:
        """The ``scores`` rows, optionally of one label (and one of its versions), optionally only ``columns``;
        an empty table when nothing was scored yet."""
        schema = scores_schema()
        if SCORES_TABLE not in self.table_names():
            return schema.empty_table().select(list(columns or schema.names))
        table = self._table(SCORES_TABLE)
        where = []
        if label is not None:
            where.append(f"label = {_sql_str(label)}")
        if version is not None:
            where.append(f"version = {int(version)}")
        dataset = table.to_lance()
        return dataset.to_table(columns=list(columns or schema.names), filter=" AND ".join(where) or None)

    # -- near-duplicate groups (issue 16) ---------------------------------------

    def upsert_duplicates(self, rows: Sequence[Mapping[str, Any]] | pa.Table) -> None:
        """Merge :class:`~annotator_core.records.DuplicateRecord` rows keyed on shot_id: a re-run changes nothing."""
        self._upsert(DUPLICATES_TABLE, "shot_id", rows, duplicates_schema())

    def delete_duplicates(self, shot_ids: Sequence[str]) -> None:
        """Forget these shots' group rows (they became singletons, or their video was removed)."""
        if shot_ids and DUPLICATES_TABLE in self.table_names():
            self._table(DUPLICATES_TABLE).delete(sql_in("shot_id", shot_ids))

    def read_duplicates(self, *, columns: Sequence[str] | None = None) -> pa.Table:
        """Every ``duplicates`` row (an empty table before any shot was grouped)."""
        schema = duplicates_schema()
        dataset = self.latest_dataset(DUPLICATES_TABLE)
        if dataset is None:
            return schema.empty_table().select(list(columns or schema.names))
        return dataset.to_table(columns=list(columns or schema.names))

    # -- corpus map (issue 15) --------------------------------------------------

    def upsert_shot_map(self, rows: Sequence[Mapping[str, Any]] | pa.Table) -> None:
        """Merge :class:`~annotator_core.records.ShotMapRecord` rows keyed on shot_id: a re-run changes nothing."""
        self._upsert(SHOT_MAP_TABLE, "shot_id", rows, shot_map_schema())

    def read_shot_map(self, *, columns: Sequence[str] | None = None, where: str | None = None) -> pa.Table:
        """The ``shot_map`` rows (optionally only ``columns``, or those matching ``where``); empty before a map."""
        schema = shot_map_schema()
        if SHOT_MAP_TABLE not in self.table_names():
            return schema.empty_table().select(list(columns or schema.names))
        dataset = self._table(SHOT_MAP_TABLE).to_lance()
        return dataset.to_table(columns=list(columns or schema.names), filter=where)

    def delete_shot_map(self, shot_ids: Sequence[str]) -> None:
        """Forget these shots' places (their video was removed from ``shots``)."""
        if shot_ids and SHOT_MAP_TABLE in self.table_names():
            self._table(SHOT_MAP_TABLE).delete(sql_in("shot_id", shot_ids))

    def shot_map_version(self) -> int:
        """The ``shot_map`` table's version (0 before a map): caches of the map are keyed on it."""
        if SHOT_MAP_TABLE not in self.table_names():
            return 0
        return int(self._table(SHOT_MAP_TABLE).version)


def _sql_str(value: str) -> str:
    """A SQL string literal for LanceDB filters (quotes doubled, so ids cannot break out)."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_in(column: str, values: Iterable[str]) -> str:
    return f"{column} IN (" + ", ".join(_sql_str(v) for v in values) + ")"
