"""Near-duplicate shots: a partition-local self-join by cosine similarity, joined into groups by union-find.

The join never compares every shot with every other. Shots are split into
about √N IVF partitions (spherical k-means centroids, the same
:mod:`annotator_core.corpus.partitions` code the compressed corpus uses); each
partition is joined with itself in blocks of matrix products, and a shot near
the boundary of its partition is also a member of its second-nearest one, so a
pair split by a boundary is still compared. Cost: N·P·dim for the assignment
plus Σ mₚ²·dim for the joins, about 2·N^1.5·dim multiply-adds for balanced
partitions (1e12 at 1M × 512: tens of seconds on two cores; see
benchmarks/near_duplicates.py).

Which shots count as "near the boundary": two unit vectors with cosine ≥ t lie
within r = √(2 − 2t) of each other, so a shot x can have such a neighbour in
the partition of c₂ (its second-nearest centroid, c₁ its nearest) only if its
distance to their bisector, (x·c₁ − x·c₂)/‖c₁ − c₂‖, is at most r. That bound
is the worst case (the copy displaced straight across the boundary); a copy's
offset is spread over all dimensions, so a shot joins c₂ when the distance is
within :data:`BOUNDARY_SHARE` of r (a few tens of percent of shots do). A
neighbour beyond the second partition can still be missed; the unit tests and
the benchmark measure the recall against brute force.

Groups: the pairs are edges, the connected components with two or more shots
are groups, and each group's representative is its longest shot, ties broken by
the earliest start and then the smallest shot id, so the same shots always give
the same groups and the same names.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from annotator_core.corpus.partitions import fit_centroids, partitions_for
from annotator_core.errors import ValidationFailed

# Cosine thresholds per encoder family, calibrated by benchmarks/near_duplicates.py (see benchmarks/README.md).
HANDCRAFTED_THRESHOLD = 0.96  # precision 1.0 on the benchmark: re-encodes and crops (>= 0.98) are found
# Random-weight CLIPs (tests, benchmarks) put distinct shots at a median cosine of 0.94 (benchmark): only
# shots that are the same picture group.
RANDOM_WEIGHTS_THRESHOLD = 0.999
RANDOM_CLIP_PREFIX = "random-clip:"
CLIP_THRESHOLD = 0.95  # not calibrated here: no CLIP weights are reachable offline (the value SemDeDup-style work uses)

BRUTE_FORCE_ROWS = 4096  # at most this many shots are joined as one partition (exact)
BLOCK_ROWS = 1024  # query rows per matrix product: 1024 × a 4,000-shot partition is 16 MB of float32
FIT_ROWS_PER_PARTITION = 32  # sample rows per centroid for the k-means fit
ASSIGN_CHUNK = 32_768
NEAR_PARTITIONS = 2  # a shot joins its nearest partition and, near the boundary, its second-nearest
# A shot is "near the boundary" when its distance to the bisector is within this share of r = √(2 − 2t);
# the whole of r is the worst case, but a copy's offset is spread over every dimension (benchmarked).
BOUNDARY_SHARE = 0.25


def default_threshold(encoder: str) -> float:
    """The cosine at and above which two shots of ``encoder`` are near-duplicates, when no setting overrides it."""
    if encoder == "handcrafted":
        return HANDCRAFTED_THRESHOLD
    if encoder == "tiny-clip" or encoder.startswith(RANDOM_CLIP_PREFIX):
        return RANDOM_WEIGHTS_THRESHOLD
    return CLIP_THRESHOLD


def check_threshold(threshold: float) -> float:
    if not 0.0 < threshold <= 1.0:
        raise ValidationFailed(
            f"near-duplicate threshold {threshold!r} is not a cosine in (0, 1]; set VA_DUPLICATE_THRESHOLD "
            "to e.g. 0.95, or to 0 for the encoder's default."
        )
    return threshold


class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size."""

    def __init__(self, n: int) -> None:
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, a: int) -> int:
        parent = self.parent
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra == rb:
            return
        if self.size[ra] < self.size[rb]:
            ra, rb = rb, ra
        self.parent[rb] = ra
        self.size[ra] += self.size[rb]

    def components(self) -> np.ndarray:
        """The root of each element, int64 [n]."""
        return np.fromiter((self.find(a) for a in range(len(self.parent))), dtype=np.int64, count=len(self.parent))


@dataclass(frozen=True)
class Partitioning:
    """Which partitions each shot belongs to: its nearest, and the next nearest ones it lies near the boundary of."""

    centroids: np.ndarray  # float32 [P, dim], unit length
    primary: np.ndarray  # int32 [N]
    extra: np.ndarray  # int32 [N, NEAR_PARTITIONS - 1]; -1 where the shot is far from that partition

    def members(self) -> list[np.ndarray]:
        """Row indices (sorted) of each partition's members, primary and boundary alike."""
        rows = np.arange(len(self.primary), dtype=np.int64)
        near = self.extra >= 0
        part = np.concatenate([self.primary, self.extra[near]])
        row = np.concatenate([rows, np.broadcast_to(rows[:, None], self.extra.shape)[near]])
        order = np.lexsort((row, part))
        bounds = np.searchsorted(part[order], np.arange(len(self.centroids) + 1))
        return [row[order[bounds[p] : bounds[p + 1]]] for p in range(len(self.centroids))]


def partition(
    vectors: np.ndarray,
    *,
    threshold: float,
    partitions: int = 0,
    centroids: np.ndarray | None = None,
    boundary_share: float = BOUNDARY_SHARE,
    seed: int = 0,
) -> Partitioning:
    """Assign unit-length ``vectors`` to IVF partitions (fitted on a seeded sample unless ``centroids`` are given)."""
    n = vectors.shape[0]
    if centroids is None:
        k = partitions_for(n, configured=partitions)
        if n <= BRUTE_FORCE_ROWS or k < 2:
            centroids = np.zeros((1, vectors.shape[1]), np.float32)
        else:
            rng = np.random.default_rng(seed)
            sample = np.sort(rng.choice(n, size=min(n, k * FIT_ROWS_PER_PARTITION), replace=False))
            centroids = fit_centroids(np.asarray(vectors[sample], np.float32), partitions=k, seed=seed)
    near = min(NEAR_PARTITIONS, len(centroids))
    if near < 2:
        return Partitioning(centroids, np.zeros(n, np.int32), np.full((n, 0), -1, np.int32))
    radius = math.sqrt(max(0.0, 2.0 - 2.0 * threshold))
    primary = np.empty(n, np.int32)
    extra = np.full((n, near - 1), -1, np.int32)
    for start in range(0, n, ASSIGN_CHUNK):
        sims = np.asarray(vectors[start : start + ASSIGN_CHUNK], np.float32) @ centroids.T
        top = np.empty((sims.shape[0], near), np.int64)
        top_sims = np.empty((sims.shape[0], near), np.float32)
        every = np.arange(sims.shape[0])
        for k in range(near):  # `near` argmax passes: cheaper than an argpartition of the whole row
            top[:, k] = np.argmax(sims, axis=1)
            top_sims[:, k] = sims[every, top[:, k]]
            sims[every, top[:, k]] = -np.inf
        end = start + sims.shape[0]
        primary[start:end] = top[:, 0]
        for k in range(1, near):
            spread = np.linalg.norm(centroids[top[:, 0]] - centroids[top[:, k]], axis=1)
            gap = (top_sims[:, 0] - top_sims[:, k]) / np.maximum(spread, 1e-12)  # distance to the bisector
            extra[start:end, k - 1] = np.where(gap <= boundary_share * radius, top[:, k], -1)
    return Partitioning(centroids, primary, extra)


def similar_pairs(
    vectors: np.ndarray,
    *,
    threshold: float,
    queries: np.ndarray | None = None,
    partitions: int = 0,
    boundary_share: float = BOUNDARY_SHARE,
    seed: int = 0,
) -> np.ndarray:
    """Every pair of rows of ``vectors`` (unit length) with cosine ≥ ``threshold``, found partition by partition.

    Returns int64 [k, 2] with ``i < j`` in each row, sorted. With ``queries`` (row indices), only pairs with
    at least one query row are looked for: an incremental ingest joins its new shots against the partitions
    they fall in, and the pairs among old shots are not computed again.
    """
    check_threshold(threshold)
    n = vectors.shape[0]
    if n < 2 or (queries is not None and len(queries) == 0):
        return np.zeros((0, 2), np.int64)
    layout = partition(vectors, threshold=threshold, partitions=partitions, boundary_share=boundary_share, seed=seed)
    is_query = None
    if queries is not None:
        is_query = np.zeros(n, bool)
        is_query[np.asarray(queries, np.int64)] = True
    found: list[np.ndarray] = []
    for members in layout.members():
        if len(members) < 2:
            continue
        found.extend(_join(vectors, members, threshold=threshold, is_query=is_query))
    if not found:
        return np.zeros((0, 2), np.int64)
    pairs = np.concatenate(found)
    keys = np.unique(pairs[:, 0] * n + pairs[:, 1])  # a boundary pair can be found in two partitions
    return np.stack([keys // n, keys % n], axis=1)


def _join(
    vectors: np.ndarray, members: np.ndarray, *, threshold: float, is_query: np.ndarray | None
) -> list[np.ndarray]:
    """Pairs within one partition: each block of query rows against the members after it (or all, for queries)."""
    local = None if is_query is None else np.flatnonzero(is_query[members])
    if local is not None and not len(local):
        return []  # no new shot fell in this partition: nothing to read
    x = np.asarray(vectors[members], np.float32)
    out: list[np.ndarray] = []
    if local is None:
        for start in range(0, len(members), BLOCK_ROWS):
            sims = x[start : start + BLOCK_ROWS] @ x[start:].T  # the upper triangle only: each pair once
            qi, mj = np.nonzero(np.triu(sims >= threshold, k=1))
            if len(qi):
                out.append(np.stack([members[start + qi], members[start + mj]], axis=1))
        return out
    for start in range(0, len(local), BLOCK_ROWS):
        rows = local[start : start + BLOCK_ROWS]
        qi, mj = np.nonzero((x[rows] @ x.T) >= threshold)
        keep = rows[qi] != mj
        a, b = members[rows[qi][keep]], members[mj[keep]]
        if len(a):
            out.append(np.stack([np.minimum(a, b), np.maximum(a, b)], axis=1))
    return out


@dataclass(frozen=True)
class Membership:
    """One shot's place in a group (only shots in a group of two or more have one)."""

    group_id: str  # the representative's shot id
    representative: bool


def group_near_duplicates(
    *,
    shot_ids: Sequence[str],
    durations: np.ndarray,
    starts: np.ndarray,
    pairs: np.ndarray,
    existing: Mapping[str, str] | None = None,
) -> dict[str, Membership]:
    """Each grouped shot's group: the connected components of ``pairs`` (row indices into ``shot_ids``) and of
    the ``existing`` groups (shot id -> group id), with the longest shot as representative (ties: earliest
    start, then smallest shot id). Shots in no pair and no existing group are left out (singletons)."""
    n = len(shot_ids)
    if len(durations) != n or len(starts) != n:
        raise ValidationFailed(
            f"{n} shot ids but {len(durations)} durations and {len(starts)} starts; give one of each per shot."
        )
    sets = UnionFind(n)
    for a, b in np.asarray(pairs, np.int64).reshape(-1, 2).tolist():
        sets.union(a, b)
    if existing:
        row_of = {sid: i for i, sid in enumerate(shot_ids)}
        anchors: dict[str, int] = {}
        for sid, group in existing.items():
            row = row_of.get(sid)
            if row is None:
                continue  # a shot whose video was removed since
            anchor = anchors.setdefault(group, row)
            sets.union(anchor, row)
    roots = sets.components()
    counts = np.bincount(roots, minlength=n)
    grouped = np.flatnonzero(counts[roots] >= 2)
    if not len(grouped):
        return {}
    ids = np.asarray(shot_ids, dtype=object)[grouped]
    # Representative first within each group: sort by (root, -duration, start, shot id).
    order = np.lexsort((ids.astype(str), np.asarray(starts)[grouped], -np.asarray(durations)[grouped], roots[grouped]))
    out: dict[str, Membership] = {}
    current_root, current_rep = -1, ""
    for k in order.tolist():
        root, sid = int(roots[grouped[k]]), str(ids[k])
        if root != current_root:
            current_root, current_rep = root, sid
        out[sid] = Membership(group_id=current_rep, representative=sid == current_rep)
    return out
