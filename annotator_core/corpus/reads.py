"""Reading rows of the corpus's memory-mapped files: concurrent ``pread`` for a few cold rows, and
mapping every page of the codes up front (``MADV_POPULATE_READ``) so scans take no page faults.

Kept apart from :mod:`annotator_core.corpus.files` (the format and its writer): these two functions are
about how a process reads any mapped ``.npy`` array, not about what the corpus holds.
"""

from __future__ import annotations

import functools
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

READ_THREADS = 16
PREAD_MAX_ROWS = 64  # read_rows: up to this many rows by concurrent pread, more through the mapping
MADV_POPULATE_READ = 22  # linux/mman.h; Python's mmap module does not name it


def read_rows(array: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """``array[rows]``; for up to :data:`PREAD_MAX_ROWS` rows of a 2-D array memory-mapped from a ``.npy``
    file, read by :data:`READ_THREADS` concurrent ``pread`` calls.

    A search re-scores ~20 rows of the float32 copy that are mostly not in the page cache: a fault on the
    mapping reads ahead a whole window per row (20 cold rows: 300-500 ms here), concurrent reads take
    3-10 ms (the disk serves many at once; the GIL is released while each waits). A build's reads (its
    labelled shots, its few hundred candidates) are mostly cached from the build before, where indexing the
    mapping costs ~10 µs a row less than a Python-level read, so larger reads go through the mapping.
    """
    rows = np.asarray(rows, dtype=np.int64)
    filename, offset = getattr(array, "filename", None), getattr(array, "offset", None)
    row_bytes = int(array.shape[1]) * array.dtype.itemsize if array.ndim == 2 else 0
    if not filename or offset is None or not row_bytes or not 0 < rows.shape[0] <= PREAD_MAX_ROWS:
        return np.asarray(array[rows])
    out = np.empty((rows.shape[0], array.shape[1]), array.dtype)
    fd = os.open(filename, os.O_RDONLY)
    try:
        if os.fstat(fd).st_size != offset + array.shape[0] * row_bytes:  # a view, not the whole file's array
            return np.asarray(array[rows])

        def read(part: np.ndarray) -> None:
            for i in part.tolist():
                out[i] = np.frombuffer(os.pread(fd, row_bytes, offset + int(rows[i]) * row_bytes), array.dtype)

        parts = np.array_split(np.arange(rows.shape[0]), min(READ_THREADS, rows.shape[0]))
        list(_readers().map(read, parts))
    finally:
        os.close(fd)
    return out


@functools.cache
def _readers() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=READ_THREADS, thread_name_prefix="va-corpus-read")


def populate(array: np.ndarray) -> bool:
    """Map every page of a memory-mapped array into this process now (``MADV_POPULATE_READ``, Linux 5.14+).

    A process that scans pages it has not touched yet takes a fault per 64 KB: at 10M shots the first
    probe of 625k rows took 37 ms against 22 ms once mapped. Populating the codes once per corpus version
    (~0.35 s for 5.1 GB in the page cache) spares every later search and build those faults. False where
    the kernel or the array does not allow it; nothing else changes then."""
    mapping = getattr(array, "_mmap", None)
    if mapping is None:
        return False
    try:
        mapping.madvise(MADV_POPULATE_READ)
    except (OSError, ValueError):
        return False
    return True
