"""Reading rows of the corpus files: concurrent ``pread`` calls give exactly what indexing the mapping
gives, and populating a mapping changes nothing but when pages are mapped."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from annotator_core.corpus.reads import PREAD_MAX_ROWS, populate, read_rows


@pytest.fixture()
def mapped(tmp_path: Path) -> np.ndarray:
    x = np.random.default_rng(0).standard_normal((5000, 48)).astype(np.float32)
    np.save(tmp_path / "vectors.npy", x)
    return np.load(tmp_path / "vectors.npy", mmap_mode="r")


def test_concurrent_reads_return_the_rows_asked_in_their_order(mapped: np.ndarray) -> None:
    for size in (PREAD_MAX_ROWS - 7, 333):  # by pread, and through the mapping
        rows = np.random.default_rng(size).choice(mapped.shape[0], size=size, replace=False)
        rows = np.concatenate([rows, rows[:5], [0, mapped.shape[0] - 1]])  # repeats and both ends of the file
        assert np.array_equal(read_rows(mapped, rows), np.asarray(mapped)[rows])


def test_reads_of_one_row_and_of_none(mapped: np.ndarray) -> None:
    assert np.array_equal(read_rows(mapped, np.array([17])), np.asarray(mapped)[[17]])
    assert read_rows(mapped, np.array([], np.int64)).shape[0] == 0


def test_a_view_or_an_array_in_memory_is_indexed_as_usual(mapped: np.ndarray) -> None:
    """A slice of the mapping keeps the file's name and offset but not its first row: pread would be off."""
    view = mapped[100:]
    rows = np.array([0, 5, 3])
    assert np.array_equal(read_rows(view, rows), np.asarray(mapped)[100 + rows])
    plain = np.asarray(mapped).copy()
    assert np.array_equal(read_rows(plain, rows), plain[rows])


def mapped_kb(path: Path) -> int:
    """Resident kB of this process's mappings of ``path`` (from /proc/self/smaps)."""
    total, inside = 0, False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        if re.match(r"[0-9a-f]+-[0-9a-f]+ ", line):  # a mapping's header line: its range, ..., its path
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("Rss:"):
            total += int(line.split()[1])
    return total


def test_populate_maps_every_page_before_any_is_read(tmp_path: Path) -> None:
    codes = np.random.default_rng(2).integers(-127, 128, size=(20_000, 512), dtype=np.int8)
    path = tmp_path / "codes.npy"
    np.save(path, codes)
    mapped = np.load(path, mmap_mode="r")
    assert mapped_kb(path) < 1024  # opened, not read: nothing mapped yet (the header's page at most)
    if not populate(mapped):
        pytest.skip("this kernel has no MADV_POPULATE_READ (Linux < 5.14)")
    assert mapped_kb(path) >= codes.nbytes // 1024  # all 10 MB mapped, none of it read by us
    assert np.array_equal(np.asarray(mapped), codes)
    assert not populate(np.zeros(4))  # not a mapping: nothing to do
