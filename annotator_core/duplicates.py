"""Near-duplicate groups as the service reads them: who is in which group, who is shown, how folds fold.

The ``duplicates`` table (:class:`~annotator_core.records.DuplicateRecord`) has one row per shot that
has near-duplicates; a group is named by its representative's shot id and singletons have no row.
:class:`DuplicateGroups` is that table in memory, compact enough for a catalog:

- the grouped shot ids as one sorted fixed-width bytes array (looked up by binary search), each row's
  group number as int32, the members ordered by group (int32) with each group's start, and each
  group's representative id: about ``L + 12`` bytes a grouped shot and ``L + 8`` a group, where ``L``
  is the longest shot id (about 50 bytes): 3M grouped shots in 1M groups cost ~0.2 GB, not the
  ~1 GB of Python strings in dicts. Singletons cost nothing.

:func:`duplicate_groups` keeps one per shot store, rebuilt when the table's version changes.

Shown once: a feed or a search shows a group's **representative** only (the others are "hidden"),
whatever their scores. The representative is the shot ingest chose to stand for the group, so the
same picture stands for the group in every feed and search, and an annotator who labelled it is not
shown its copy next build; its badge opens the others.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from annotator_core.classifier import Classifier
from annotator_core.corpus.scorer import CorpusView, FeedPicks
from annotator_core.errors import ValidationFailed
from annotator_core.records import DUPLICATES_TABLE

GROUPS_CACHE_KEY = "duplicate-groups"
ABSENT_RECHECK_S = 1.0  # how long a search believes "no duplicates table" (_GroupCache), unless this store wrote


def _bytes(values: Sequence[str] | np.ndarray) -> np.ndarray:
    """Shot ids as a fixed-width bytes array (UTF-8)."""
    encoded = [str(v).encode() for v in values]
    return np.array(encoded, dtype=bytes) if encoded else np.empty(0, dtype="S1")


def _column_bytes(column: pa.Array) -> np.ndarray:
    """An Arrow string column as a fixed-width bytes array: one vectorised cast for ASCII ids, else UTF-8."""
    values = column.to_numpy(zero_copy_only=False)
    try:
        return values.astype("S") if values.shape[0] else np.empty(0, dtype="S1")
    except UnicodeEncodeError:
        return _bytes(values)


@dataclass(frozen=True)
class DuplicateGroups:
    ids: np.ndarray  # S[n] sorted shot ids of every grouped shot
    group: np.ndarray  # int32 [n] group number of each (index into heads)
    hidden: np.ndarray  # bool [n] not the representative
    heads: np.ndarray  # S[g] each group's representative id (= its group id)
    starts: np.ndarray  # int32 [g + 1] where each group's members start in by_group
    by_group: np.ndarray  # int32 [n] rows ordered by group, the representative first
    version: int = 0  # the duplicates table version these came from (0: no table)

    @classmethod
    def empty(cls) -> DuplicateGroups:
        none = np.empty(0, dtype="S1")
        return cls(none, np.empty(0, np.int32), np.empty(0, bool), none, np.zeros(1, np.int32), np.empty(0, np.int32))

    @classmethod
    def from_table(cls, table: pa.Table, *, version: int = 0) -> DuplicateGroups:
        """From ``duplicates`` rows (shot_id, group_id, representative); a shot listed twice is refused."""
        if table.num_rows == 0:
            return cls.empty()
        for name in ("shot_id", "group_id"):
            if name not in table.column_names:
                raise ValidationFailed(f"duplicates rows need a {name!r} column; got {table.column_names}.")
        # Arrow sorts and dictionary-encodes the strings (C++); numpy keeps the fixed-width result.
        shot_col = table.column("shot_id").combine_chunks()
        order = pc.sort_indices(shot_col)
        shot = _column_bytes(shot_col.take(order))
        if shot.shape[0] > 1 and bool((shot[1:] == shot[:-1]).any()):
            twice = shot[1:][shot[1:] == shot[:-1]][0].decode()
            raise ValidationFailed(f"shot {twice!r} is in the duplicates table twice; rerun the duplicate detection.")
        encoded = pc.dictionary_encode(table.column("group_id").combine_chunks().take(order))
        names = _column_bytes(encoded.dictionary)
        by_name = np.argsort(names)
        heads = names[by_name]
        rank = np.empty(by_name.shape[0], dtype=np.int32)
        rank[by_name] = np.arange(by_name.shape[0], dtype=np.int32)
        group = rank[encoded.indices.to_numpy(zero_copy_only=False)]
        hidden = shot != heads[group]  # the representative is the shot its group is named after
        # Members by group, the representative first (False sorts before True).
        by_group = np.lexsort((hidden, group)).astype(np.int32)
        counts = np.bincount(group, minlength=heads.shape[0])
        starts = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        return cls(shot, group.astype(np.int32), hidden, heads, starts, by_group, int(version))

    # -- sizes -----------------------------------------------------------------

    def __len__(self) -> int:
        """How many shots are in a group (of two or more)."""
        return int(self.ids.shape[0])

    @property
    def n_groups(self) -> int:
        return int(self.heads.shape[0])

    @property
    def n_hidden(self) -> int:
        """Shots that are copies of another (not their group's representative)."""
        return int(self.hidden.sum())

    def nbytes(self) -> int:
        return int(sum(a.nbytes for a in (self.ids, self.group, self.hidden, self.heads, self.starts, self.by_group)))

    # -- lookups -----------------------------------------------------------------

    def rows_of(self, shot_ids: Sequence[str]) -> np.ndarray:
        """Row of each shot in :attr:`ids`, int64, -1 for a singleton (one binary search each)."""
        if not len(shot_ids) or not len(self):
            return np.full(len(shot_ids), -1, dtype=np.int64)
        wanted = _bytes(shot_ids)
        pos = np.searchsorted(self.ids, wanted)
        inside = pos < self.ids.shape[0]
        found = np.zeros(wanted.shape[0], dtype=bool)
        found[inside] = self.ids[pos[inside]] == wanted[inside]
        return np.where(found, pos, -1).astype(np.int64)

    def group_of(self, shot_id: str) -> str:
        """The group id of a shot (its representative's id); a singleton is its own group."""
        row = int(self.rows_of([shot_id])[0])
        return shot_id if row < 0 else self.heads[self.group[row]].decode()

    def size_of(self, shot_id: str) -> int:
        """How many shots are in the shot's group (1 for a singleton)."""
        row = int(self.rows_of([shot_id])[0])
        return 1 if row < 0 else int(self.starts[self.group[row] + 1] - self.starts[self.group[row]])

    def groups_of(self, shot_ids: Sequence[str]) -> tuple[list[str], list[int]]:
        """(group id, group size) of each shot, vectorised."""
        rows = self.rows_of(shot_ids)
        ids, sizes = [], []
        for sid, row in zip(shot_ids, rows.tolist(), strict=True):
            if row < 0:
                ids.append(str(sid))
                sizes.append(1)
            else:
                g = int(self.group[row])
                ids.append(self.heads[g].decode())
                sizes.append(int(self.starts[g + 1] - self.starts[g]))
        return ids, sizes

    def members(self, group_id: str) -> list[str]:
        """A group's shot ids, the representative first; ``[group_id]`` when it names no group."""
        g = int(np.searchsorted(self.heads, group_id.encode())) if self.n_groups else 0
        if g >= self.n_groups or self.heads[g] != group_id.encode():
            row = int(self.rows_of([group_id])[0])
            if row < 0:
                return [group_id]
            g = int(self.group[row])  # a member's id names its group too
        rows = self.by_group[self.starts[g] : self.starts[g + 1]]
        return [s.decode() for s in self.ids[rows]]

    def hidden_ids(self) -> list[str]:
        """Every shot that is not its group's representative: what feeds and search leave out."""
        return [s.decode() for s in self.ids[self.hidden]]

    def is_hidden(self, shot_ids: Sequence[str]) -> np.ndarray:
        """Whether each shot is a non-representative member of a group, bool [len(shot_ids)]."""
        rows = self.rows_of(shot_ids)
        out = np.zeros(rows.shape[0], dtype=bool)
        found = rows >= 0
        out[found] = self.hidden[rows[found]]
        return out

    def fold_groups(self, shot_ids: Sequence[str]) -> np.ndarray:
        """A group key per shot, int64: equal keys for shots of one group, a key of its own for a singleton.

        Grouped shots get their group number (0..g-1); singletons get g, g+1, ... in order.
        """
        rows = self.rows_of(shot_ids)
        keys = np.empty(rows.shape[0], dtype=np.int64)
        found = rows >= 0
        keys[found] = self.group[rows[found]]
        keys[~found] = self.n_groups + np.arange(int((~found).sum()), dtype=np.int64)
        return keys

    def first_of_each(self, shot_ids: Sequence[str]) -> list[int]:
        """Indices into ``shot_ids`` of the first shot of each group, in order (search results, collapsed)."""
        keys = self.fold_groups(shot_ids)
        _, first = np.unique(keys, return_index=True)
        return sorted(first.tolist())


class _GroupCache:
    """The groups of one shot store, rebuilt when the duplicates table has a new version.

    While there is no duplicates table (detection off or not run yet) a caller may accept that answer for
    ``absent_for`` seconds (searches: :data:`ABSENT_RECHECK_S`), unless this store wrote any table since:
    the lookup lists the database (~1.5 ms at 10M shots), and a search asks for the groups twice. A build
    always looks, so groups written just before it are folded.
    """

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.groups = DuplicateGroups.empty()
        self.absent: tuple[float, int] | None = None  # (when, shots.upserts then) of the last "no table"

    def get(self, shots: Any, *, absent_for: float = 0.0) -> DuplicateGroups:
        writes = int(getattr(shots, "upserts", 0))
        if self.absent is not None and self.absent[1] == writes and time.monotonic() - self.absent[0] < absent_for:
            return DuplicateGroups.empty()
        dataset = shots.latest_dataset(DUPLICATES_TABLE)
        if dataset is None:
            self.absent = (time.monotonic(), writes)
            return DuplicateGroups.empty()
        self.absent = None
        version = int(dataset.version)
        with self.lock:
            if self.groups.version != version:
                table = shots.read_duplicates(columns=["shot_id", "group_id"])
                self.groups = DuplicateGroups.from_table(table, version=version)
            return self.groups


def duplicate_groups(shots: Any, settings: Any = None, *, absent_for: float = 0.0) -> DuplicateGroups:
    """The shot store's near-duplicate groups, read once per version of the ``duplicates`` table.

    With ``VA_DUPLICATES=false`` in ``settings`` there are none: every shot is shown and folded alone.
    ``absent_for``: seconds a "no duplicates table" answer may be reused (see :class:`_GroupCache`).
    """
    if settings is not None and not getattr(settings, "duplicates", True):
        return DuplicateGroups.empty()
    cache: _GroupCache = shots.shared(GROUPS_CACHE_KEY, _GroupCache)
    return cache.get(shots, absent_for=absent_for)


# --------------------------------------------------------------------------- the feeds, each group once

TOP_FEEDS = ("top_positive", "top_negative")


def shown_once(
    corpus: CorpusView,
    clf: Classifier,
    groups: DuplicateGroups,
    *,
    labelled_ids: list[str],
    size: int,
    seed: int,
) -> FeedPicks:
    """The feeds with each near-duplicate group shown once, by its representative, and still ``size`` long.

    The hidden members (every group member but the representative) are excluded like labelled shots,
    so the borderline and random feeds are exact and the random one draws groups, not copies. The two
    top feeds include labelled shots and so cannot exclude that way: they are asked for more than
    ``size`` and the hidden members dropped, asking again (doubling) until ``size`` remain or the corpus
    has no more. Without groups this is one plain call.
    """
    hidden = groups.hidden_ids()
    if not hidden:
        return corpus.feeds(clf, labelled_ids=labelled_ids, size=size, seed=seed)
    excluded = list(dict.fromkeys([*labelled_ids, *hidden]))
    share = groups.n_hidden / max(1, corpus.n_shots)
    ask = min(corpus.n_shots, size + int(np.ceil(2 * share * size)) + 8)
    asks = 0
    while True:
        asks += 1
        picks = corpus.feeds(clf, labelled_ids=excluded, size=ask, seed=seed)
        feeds = {}
        full = True
        for name, items in picks.feeds.items():
            if name in TOP_FEEDS:
                drop = groups.is_hidden([sid for sid, _ in items])
                kept = [item for item, gone in zip(items, drop.tolist(), strict=True) if not gone]
                full = full and (len(kept) >= size or len(items) < ask)
                items = kept
            feeds[name] = items[:size]
        if full or ask >= corpus.n_shots:
            info = {**picks.info, "duplicates_hidden": len(hidden), "asked": ask, "asks": asks}
            return FeedPicks(feeds, info)
        ask = min(corpus.n_shots, 2 * ask)


def one_per_group(fold_keys: np.ndarray | None, y: np.ndarray) -> np.ndarray:
    """Rows to count for data diversity: the first labelled shot of each group in each class."""
    if fold_keys is None:
        return np.arange(y.shape[0])
    _, first = np.unique(np.stack([fold_keys, y.astype(np.int64)], axis=1), axis=0, return_index=True)
    return np.sort(first)
