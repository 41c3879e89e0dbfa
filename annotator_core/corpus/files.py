"""The compressed corpus on disk: int8 shot vectors beside LanceDB, memory-mapped by every worker.

One folder (``VA_CORPUS_DIR``, default ``DATA_DIR/corpus``) holds a
``manifest.json``, the partition ``centroids.npy`` and one or more segments.
A segment is a folder of ``.npy`` files, each opened with
``np.load(mmap_mode="r")`` so every service worker on a machine shares one copy
in the page cache. Cost per segment at 10M rows × 512 (what a worker maps; only
touched pages become resident, and they count once in PSS across workers):

- ``codes.npy``    int8 [n, dim], rows grouped by partition ........ 5.1 GB
- ``scales.npy``   float32 [dim], symmetric per-dimension scales ..... 2 KB
- ``offsets.npy`` / ``radii.npy``: each partition's row range and radius . 16 KB
- ``clusters.npy`` int32 [n], ingest's k-means cluster of each row ...... 40 MB
- ``ids.npy``      fixed-width bytes [n], the shot ids sorted ........ ~0.3 GB (30-byte ids)
- ``order.npy``    int32 [n], row of each sorted id (id → row by binary search) 40 MB
- ``rank.npy``     int32 [n], sorted position of each row (row → id) ...... 40 MB
- ``spans.npy``    float64 [n, 2], each shot's start and end seconds ..... 160 MB
- ``vectors.npy``  float32 [n, dim], the exact vectors, read only by row .. 20 GB on disk

The float32 copy is what a build trains on and re-scores its few hundred
candidates with: a row read from a mapped file costs microseconds, where a keyed
read of 1,000 shots from LanceDB took 0.4 s at 1M (measured). Only the rows a
build touches (~1,300 × 2 KB) enter the page cache, so it costs disk, not memory.

A Python dict of 10M ids would cost ~1 GB per worker and an object array of 10M
str another ~0.8 GB, so neither exists: id → row is ``np.searchsorted`` over
``ids.npy`` (O(log N)), row → id is two array reads.

The manifest is keyed by the shots table's version. :func:`sync_corpus` brings
a corpus up to the table: unchanged ids cost nothing, new shots become a new
segment (assigned to the existing centroids), removed shots are listed in a
``deleted`` file and skipped, re-clustered shots get their new cluster ids,
and only a changed width, a missing corpus or more than
:data:`REBUILD_FRACTION` new rows rebuild from scratch. Writers hold an
exclusive ``flock`` on the folder; files are written under fresh names and the
manifest is replaced atomically, so a reader never sees half a segment.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

from annotator_core.corpus.partitions import FIT_ROWS_PER_PARTITION, assign, fit_centroids, partitions_for
from annotator_core.corpus.reads import read_rows
from annotator_core.errors import NotFoundError
from annotator_core.records import SHOTS_TABLE

FORMAT = 3  # 2: with the float32 vectors.npy; 3: with spans.npy (search answers without LanceDB)
MANIFEST = "manifest.json"
# New rows past this fraction of the corpus rebuild it (fresh centroids) instead of adding a segment.
REBUILD_FRACTION = 0.5
MAX_SEGMENTS = 16
READ_BATCH = 65_536

# (ids S, vectors f32, clusters, spans [m, 2] of start and end seconds)
Batches = Callable[[], Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]]
Progress = Callable[[str], None]


@dataclass(frozen=True)
class Segment:
    """One segment's arrays, memory-mapped; rows ``start .. start + len`` of the corpus."""

    name: str
    start: int
    codes: np.ndarray
    scales: np.ndarray
    offsets: np.ndarray
    radii: np.ndarray
    clusters: np.ndarray
    ids: np.ndarray
    order: np.ndarray
    rank: np.ndarray
    vectors: np.ndarray
    spans: np.ndarray

    def __len__(self) -> int:
        return int(self.codes.shape[0])


@dataclass(frozen=True)
class Corpus:
    """A read-only view of the corpus files of one shots-table version."""

    folder: Path
    version: int
    dim: int
    centroids: np.ndarray  # float32 [P, dim], unit length
    segments: tuple[Segment, ...]
    deleted: np.ndarray  # sorted int64 corpus rows whose shots left the table
    cluster_max: int  # largest ingest cluster id, -1 when not clustered

    @property
    def n_rows(self) -> int:
        """Rows in the files, deleted ones included (row numbers run 0 .. n_rows - 1)."""
        return sum(len(s) for s in self.segments)

    def __len__(self) -> int:
        return self.n_rows - int(self.deleted.shape[0])

    @property
    def partitions(self) -> int:
        return int(self.centroids.shape[0])

    def rows_of(self, shot_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Corpus row of each id (int64), -1 for ids not in the corpus or deleted; O(log N) per id."""
        keys = _as_bytes(shot_ids)
        out = np.full(keys.shape[0], -1, dtype=np.int64)
        if not keys.shape[0]:
            return out
        lengths = np.char.str_len(keys)
        for seg in self.segments:
            if not len(seg):
                continue
            fits = lengths <= seg.ids.dtype.itemsize  # a longer id cannot be in this segment
            query = np.where(fits, keys, b"").astype(seg.ids.dtype)
            pos = np.minimum(np.searchsorted(seg.ids, query), len(seg) - 1)
            hit = fits & (seg.ids[pos] == query) & (out < 0)
            out[hit] = seg.start + seg.order[pos[hit]]
        if self.deleted.shape[0]:
            out[np.isin(out, self.deleted)] = -1
        return out

    def _located(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts = np.array([s.start for s in self.segments], dtype=np.int64)
        which = np.searchsorted(starts, rows, side="right") - 1
        return which, rows - starts[which]

    def _gather(
        self, rows: np.ndarray, tail: tuple[int, ...], dtype: Any, read: Callable[[Segment, np.ndarray], np.ndarray]
    ) -> np.ndarray:
        """``read(segment, local rows)`` of each segment's share of corpus ``rows``, in the order given."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((rows.shape[0], *tail), dtype)
        which, local = self._located(rows)
        for s, seg in enumerate(self.segments):
            pick = np.flatnonzero(which == s)
            if pick.shape[0]:
                out[pick] = read(seg, local[pick])
        return out

    def exact_vectors(self, rows: np.ndarray) -> np.ndarray:
        """The float32 vectors of corpus ``rows`` (from ``vectors.npy``), in the order given.

        A search's few rows are read with concurrent ``pread`` calls, a build's hundreds through the mapping
        (:func:`~annotator_core.corpus.reads.read_rows` says why).
        """
        return self._gather(rows, (self.dim,), np.float32, lambda seg, local: read_rows(seg.vectors, local))

    def coded_vectors(self, rows: np.ndarray) -> np.ndarray:
        """The int8 codes of corpus ``rows`` times their scales: the vectors as the codes hold them (float32,
        within half a step of the exact ones in every dimension; no disk read once the codes are mapped)."""

        def decode(seg: Segment, local: np.ndarray) -> np.ndarray:
            return np.asarray(seg.codes[local], np.float32) * np.asarray(seg.scales, np.float32)

        return self._gather(rows, (self.dim,), np.float32, decode)

    def clusters_of(self, rows: np.ndarray) -> np.ndarray:
        """The ingest cluster of each corpus row (int64)."""
        return self._gather(rows, (), np.int64, lambda seg, local: seg.clusters[local])

    def spans_of(self, rows: np.ndarray) -> np.ndarray:
        """The (start, end) seconds of each corpus row's shot, float64 [len(rows), 2] (as the table holds them)."""
        return self._gather(rows, (2,), np.float64, lambda seg, local: seg.spans[local])

    def ids_of(self, rows: np.ndarray) -> list[str]:
        """The shot id of each corpus row."""
        out: list[str] = []
        starts = np.array([s.start for s in self.segments], dtype=np.int64)
        for row in np.asarray(rows, dtype=np.int64).tolist():
            seg = self.segments[int(np.searchsorted(starts, row, side="right")) - 1]
            out.append(bytes(seg.ids[seg.rank[row - seg.start]]).decode())
        return out


def open_corpus(folder: Path) -> Corpus | None:
    """The corpus in ``folder`` as its manifest describes it, or None when there is none."""
    path = folder / MANIFEST
    if not path.exists():
        return None
    manifest = json.loads(path.read_text())
    if manifest.get("format") != FORMAT:
        return None
    segments, start = [], 0
    for name in manifest["segments"]:
        seg = _open_segment(folder / name, name, start)
        segments.append(seg)
        start += len(seg)
    deleted = np.load(folder / manifest["deleted"]) if manifest.get("deleted") else np.empty(0, np.int64)
    return Corpus(
        folder=folder,
        version=int(manifest["version"]),
        dim=int(manifest["dim"]),
        centroids=np.load(folder / manifest["centroids"], mmap_mode="r"),
        segments=tuple(segments),
        deleted=deleted,
        cluster_max=int(manifest.get("cluster_max", -1)),
    )


def _as_bytes(shot_ids: Sequence[str] | np.ndarray) -> np.ndarray:
    arr = np.asarray(shot_ids)
    if arr.dtype.kind == "S":
        return arr
    if arr.dtype.kind == "U":
        return np.char.encode(arr, "utf-8")
    return np.array([s.encode() if isinstance(s, str) else bytes(s) for s in arr.tolist()], dtype=bytes)


def _open_segment(path: Path, name: str, start: int) -> Segment:
    arrays = {key: np.load(path / f"{key}.npy", mmap_mode="r") for key in _SEGMENT_ARRAYS}
    return Segment(name=name, start=start, **arrays)


_SEGMENT_ARRAYS = ("codes", "scales", "offsets", "radii", "clusters", "ids", "order", "rank", "vectors", "spans")


# --------------------------------------------------------------------------- writing


@contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # one writer per machine; readers never block
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def sync_corpus(shots: Any, folder: Path, *, partitions: int = 0, progress: Progress | None = None) -> Corpus:
    """The corpus of ``shots``' current table version, brought up to date incrementally where possible."""
    say = progress or (lambda _line: None)
    try:
        table = shots.db.open_table(SHOTS_TABLE)
    except (ValueError, FileNotFoundError):
        raise NotFoundError(f"table 'shots' does not exist in {shots.uri}; run `va ingest PATH` first.") from None
    with _locked(folder):
        ds = table.to_lance()
        version = int(ds.version)
        current = open_corpus(folder)
        if current is not None and current.version == version:
            return current
        dim = int(ds.schema.field("vector").type.list_size)
        if current is None or current.dim != dim or len(current.segments) >= MAX_SEGMENTS:
            return _rebuild(ds, folder, version=version, dim=dim, partitions=partitions, say=say)
        return _extend(ds, folder, current, version=version, partitions=partitions, say=say)


def _rebuild(ds: Any, folder: Path, *, version: int, dim: int, partitions: int, say: Progress) -> Corpus:
    n = int(ds.count_rows())
    started = time.perf_counter()
    p = partitions_for(n, configured=partitions)
    if n == 0:
        centroids = np.zeros((1, dim), np.float32)
    else:
        rng = np.random.default_rng(version)
        take = np.sort(rng.choice(n, size=min(n, p * FIT_ROWS_PER_PARTITION), replace=False))
        sample = _vectors(ds.take(take.tolist(), columns=["vector"]), dim)
        centroids = fit_centroids(sample, partitions=p, seed=version)
    say(f"corpus: {n:,} shots into {centroids.shape[0]} partitions")

    def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
        for batch in ds.to_batches(columns=list(_READ_COLUMNS), batch_size=READ_BATCH):
            yield _columns(pa.Table.from_batches([batch]), dim)

    corpus = _write_corpus(folder, batches if n else None, version=version, centroids=centroids, say=say)
    say(f"corpus: written in {time.perf_counter() - started:.1f} s")
    return corpus


def _extend(ds: Any, folder: Path, current: Corpus, *, version: int, partitions: int, say: Progress) -> Corpus:
    now = ds.to_table(columns=["shot_id", "cluster_id"])
    ids_now = now.column("shot_id").cast(pa.binary()).to_numpy(zero_copy_only=False)
    rows = current.rows_of(ids_now)
    _refresh_clusters(folder, current, rows, now.column("cluster_id").to_numpy())
    new_offsets = np.flatnonzero(rows < 0)
    if new_offsets.shape[0] > REBUILD_FRACTION * max(len(current), 1):
        return _rebuild(ds, folder, version=version, dim=current.dim, partitions=partitions, say=say)
    still = np.zeros(current.n_rows, dtype=bool)
    still[rows[rows >= 0]] = True
    deleted = np.union1d(current.deleted, np.flatnonzero(~still)).astype(np.int64)
    say(f"corpus: {new_offsets.shape[0]:,} new shots, {deleted.shape[0] - current.deleted.shape[0]:,} removed")
    names = [s.name for s in current.segments]
    if new_offsets.shape[0]:
        dim = current.dim

        def batches() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
            for start in range(0, new_offsets.shape[0], READ_BATCH):
                chunk = new_offsets[start : start + READ_BATCH].tolist()
                yield _columns(ds.take(chunk, columns=list(_READ_COLUMNS)), dim)

        names.append(_write_segment(folder, batches, np.asarray(current.centroids), say=say))
    deleted_name = None
    if deleted.shape[0]:
        deleted_name = f"deleted-{uuid.uuid4().hex[:8]}.npy"
        np.save(folder / deleted_name, deleted)
    manifest = json.loads((folder / MANIFEST).read_text())
    return _commit(
        folder,
        version=version,
        dim=current.dim,
        centroids=manifest["centroids"],
        segments=names,
        deleted=deleted_name,
        cluster_max=max(current.cluster_max, _cluster_max(folder, names[len(current.segments) :])),
    )


def _refresh_clusters(folder: Path, corpus: Corpus, rows: np.ndarray, clusters: np.ndarray) -> None:
    """Rewrite a segment's ``clusters.npy`` where ingest re-clustered its shots (replaced, never truncated)."""
    found = rows >= 0
    fresh = np.full(corpus.n_rows, -1, np.int32)
    fresh[rows[found]] = clusters[found]
    for seg in corpus.segments:
        mine = fresh[seg.start : seg.start + len(seg)]
        if not np.array_equal(mine, seg.clusters):
            tmp = folder / seg.name / f"clusters.{uuid.uuid4().hex[:8]}.npy"
            np.save(tmp, mine)
            os.replace(tmp, folder / seg.name / "clusters.npy")


def _commit(folder: Path, **manifest: Any) -> Corpus:
    manifest = {"format": FORMAT, **manifest}
    tmp = folder / f"{MANIFEST}.{uuid.uuid4().hex[:8]}"
    tmp.write_text(json.dumps(manifest))
    os.replace(tmp, folder / MANIFEST)
    corpus = open_corpus(folder)
    assert corpus is not None
    return corpus


def _cluster_max(folder: Path, names: Sequence[str]) -> int:
    out = -1
    for name in names:
        clusters = np.load(folder / name / "clusters.npy", mmap_mode="r")
        if clusters.shape[0]:
            out = max(out, int(clusters.max()))
    return out


def write_corpus(
    folder: Path, batches: Batches, *, version: int, centroids: np.ndarray, progress: Progress | None = None
) -> Corpus:
    """Replace the corpus in ``folder`` with the rows of ``batches`` (called twice), keyed by ``version``.

    For corpora that do not come from LanceDB (benchmarks, tests that write 2M rows directly).
    """
    with _locked(folder):
        return _write_corpus(folder, batches, version=version, centroids=centroids, say=progress or (lambda _: None))


def _write_corpus(
    folder: Path, batches: Batches | None, *, version: int, centroids: np.ndarray, say: Progress
) -> Corpus:
    centroids_name = f"centroids-{uuid.uuid4().hex[:8]}.npy"
    np.save(folder / centroids_name, np.ascontiguousarray(centroids, dtype=np.float32))
    names = [_write_segment(folder, batches, centroids, say=say)] if batches is not None else []
    old = open_corpus(folder)
    old_manifest = json.loads((folder / MANIFEST).read_text()) if old is not None else {}
    corpus = _commit(
        folder,
        version=version,
        dim=int(centroids.shape[1]),
        centroids=centroids_name,
        segments=names,
        deleted=None,
        cluster_max=_cluster_max(folder, names),
    )
    if old is not None:  # mapped files stay readable to workers that still hold them (unlinked, not truncated)
        for seg in old.segments:
            shutil.rmtree(folder / seg.name, ignore_errors=True)
        for key in ("centroids", "deleted"):
            if old_manifest.get(key):
                (folder / old_manifest[key]).unlink(missing_ok=True)
    return corpus


def _write_segment(folder: Path, batches: Batches, centroids: np.ndarray, *, say: Progress) -> str:
    p, dim = centroids.shape
    # Pass 1: ids, clusters, each row's partition, per-dimension |max| and per-partition radius.
    ids_parts, cluster_parts, part_parts, span_parts = [], [], [], []
    absmax = np.zeros(dim, np.float32)
    radius_sq = np.zeros(p, np.float32)
    for ids, x, clusters, spans in batches():
        part = assign(x, centroids)
        diff = x - centroids[part]
        np.maximum.at(radius_sq, part, np.einsum("ij,ij->i", diff, diff))
        np.maximum(absmax, np.abs(x).max(axis=0), out=absmax)
        ids_parts.append(ids)
        cluster_parts.append(clusters.astype(np.int32))
        part_parts.append(part)
        span_parts.append(np.asarray(spans, np.float64).reshape(-1, 2))
        say(f"corpus: read {sum(len(a) for a in ids_parts):,} shots")
    ids_all = np.concatenate(ids_parts) if ids_parts else np.empty(0, "S1")
    partition = np.concatenate(part_parts) if part_parts else np.empty(0, np.int32)
    n = int(ids_all.shape[0])
    # Rows grouped by partition: position of each read row in the segment.
    by_partition = np.argsort(partition, kind="stable")
    position = np.empty(n, np.int64)
    position[by_partition] = np.arange(n)
    offsets = np.zeros(p + 1, np.int64)
    np.cumsum(np.bincount(partition, minlength=p), out=offsets[1:])

    name = f"seg-{uuid.uuid4().hex[:8]}"
    tmp = folder / f".{name}.tmp"
    tmp.mkdir(parents=True)
    scales = np.where(absmax > 0, absmax / 127.0, 1.0).astype(np.float32)
    np.save(tmp / "scales.npy", scales)
    np.save(tmp / "offsets.npy", offsets)
    # A small slack covers float32 rounding in the distance above.
    np.save(tmp / "radii.npy", (np.sqrt(radius_sq) + 1e-5).astype(np.float32))
    clusters_all = np.concatenate(cluster_parts) if cluster_parts else np.empty(0, np.int32)
    np.save(tmp / "clusters.npy", clusters_all[by_partition])
    spans_all = np.concatenate(span_parts) if span_parts else np.empty((0, 2), np.float64)
    np.save(tmp / "spans.npy", spans_all[by_partition])
    del spans_all, span_parts
    ids_in_rows = ids_all[by_partition]
    del ids_all, clusters_all
    order = np.argsort(ids_in_rows, kind="stable").astype(np.int32)
    np.save(tmp / "ids.npy", ids_in_rows[order])
    np.save(tmp / "order.npy", order)
    rank = np.empty(n, np.int32)
    rank[order] = np.arange(n, dtype=np.int32)
    np.save(tmp / "rank.npy", rank)
    del ids_in_rows, order, rank

    # Pass 2: quantise each batch and write its rows where their partition's range puts them.
    codes = np.lib.format.open_memmap(tmp / "codes.npy", mode="w+", dtype=np.int8, shape=(n, dim))
    exact = np.lib.format.open_memmap(tmp / "vectors.npy", mode="w+", dtype=np.float32, shape=(n, dim))
    done = 0
    for _ids, x, _clusters, _spans in batches():
        m = x.shape[0]
        codes[position[done : done + m]] = quantise(x, scales)
        exact[position[done : done + m]] = x
        done += m
        say(f"corpus: quantised {done:,} of {n:,} shots")
    codes.flush()
    exact.flush()
    del codes, exact
    os.replace(tmp, folder / name)
    return name


def quantise(x: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Symmetric int8 codes of ``x`` with per-dimension ``scales`` (x ≈ codes · scales)."""
    return np.clip(np.rint(x / scales), -127, 127).astype(np.int8)


_READ_COLUMNS = ("shot_id", "vector", "cluster_id", "start_s", "end_s")


def _columns(table: pa.Table, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    ids = np.array(table.column("shot_id").cast(pa.binary()).to_pylist(), dtype=object).astype(bytes)
    clusters = table.column("cluster_id").to_numpy().astype(np.int64)
    spans = np.stack([table.column(c).to_numpy().astype(np.float64) for c in ("start_s", "end_s")], axis=1)
    return ids, _vectors(table, dim), clusters, spans


def _vectors(table: pa.Table, dim: int) -> np.ndarray:
    values = table.column("vector").combine_chunks().values.to_numpy(zero_copy_only=False)
    return np.asarray(values, dtype=np.float32).reshape(-1, dim)
