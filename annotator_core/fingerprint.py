"""Perceptual fingerprints of shots for near-duplicate detection, and an exact Hamming join that scales.

A copy that is brightened, letterboxed, mirrored or cropped moves far from its
source in embedding space (the ``handcrafted`` encoder puts such copies below
distinct shots), so near-duplicate detection also compares a fingerprint made
to ignore exactly those edits. A shot's fingerprint is two 63-bit codes of its
thumbnail (the middle frame, kept on the shots row):

- grayscale, with dark flat border rows and columns trimmed (letterbox and
  pillarbox bars), so a letterboxed copy hashes its picture, not its bars;
- ``full``: the trimmed picture; ``crop``: its centre :data:`CROP_SHARE`, so a
  copy cropped (zoomed) by about 10 % matches its source's ``crop`` code;
- each code is the signs of the 63 lowest non-constant 2-D DCT coefficients of
  the picture shrunk to 32 × 32 (pHash without the median): a sign ignores any
  gain and offset of the brightness, so a brighter or more contrasted copy
  keeps its code except where clipping bites;
- mirroring negates exactly the coefficients of odd horizontal frequency, so a
  mirrored copy's code is the source's XOR :data:`MIRROR_MASK`; distances
  are taken both ways.

The distance of two shots is the smallest Hamming distance over (full, full),
(full, crop) and (crop, full), each as is and mirrored.

The join is multi-index hashing (Norouzi et al.): each code is cut into
:data:`BANDS` bands of 21 bits; two codes within ``k`` bits agree within
``k // BANDS`` bits on at least one band (pigeonhole), so probing every band
value within that radius in a direct-address table finds every pair, and
each candidate is then checked on the whole code. Exact for every ``k``; the
cost is (query codes)·BANDS·Σ_{i≤r} C(21, i) probes plus the candidates they
hit, (index codes) / 2²¹ a probe for random codes: a whole-corpus join of N
shots asks N codes of an index of 4N (both codes, as is and mirrored). At the
default k = 8 (r = 2: 232 probes a band) see benchmarks/near_duplicates.py for
the time per million. A flat picture (black, a plain card) has no fingerprint.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import partial
from itertools import combinations

import cv2
import numpy as np

from annotator_core.errors import ValidationFailed

SIDE = 32  # the picture is shrunk to SIDE × SIDE before the DCT
FREQUENCIES = 8  # the FREQUENCIES × FREQUENCIES lowest coefficients, less the constant one: 63 bits
CODE_BITS = FREQUENCIES * FREQUENCIES - 1
CROP_SHARE = 0.9  # the ``crop`` code hashes the centre 90 % of each side
BORDER_DARK = 40  # a border row or column is a bar when its mean is under this (of 255) ...
BORDER_FLAT = 8  # ... and its standard deviation under this
BORDER_KEEP = 0.3  # trim nothing if less than this share of a side would remain (a dark scene, not bars)
FLAT_STD = 3.0  # a picture whose gray levels vary less than this (black, a plain card) has no fingerprint
BANDS = 3
BAND_BITS = 21  # BANDS × BAND_BITS = CODE_BITS
BAND_MASK = (1 << BAND_BITS) - 1
QUERY_CHUNK = 16_384  # query codes probed at once: 16k × 232 probes is ~4M int64 per array
MAX_DISTANCE = 31  # half the bits: beyond this, codes are no closer than chance

# Bit b holds the coefficient (u, v) with u·8 + v = b + 1 (v: horizontal frequency); mirroring negates odd v.
MIRROR_MASK = sum(1 << (k - 1) for k in range(1, FREQUENCIES * FREQUENCIES) if (k % FREQUENCIES) % 2 == 1)
NO_CODE = -1  # a shot whose thumbnail could not be read: never paired by fingerprint


@dataclass(frozen=True)
class Fingerprint:
    """The two codes of one shot (non-negative ints below 2**63)."""

    full: int
    crop: int


def trim_borders(gray: np.ndarray) -> np.ndarray:
    """``gray`` without the dark, flat rows and columns at its edges (letterbox and pillarbox bars)."""

    def span(means: np.ndarray, stds: np.ndarray) -> tuple[int, int]:
        """The first and one past the last row (or column) that is not a bar."""
        picture = np.flatnonzero((means >= BORDER_DARK) | (stds >= BORDER_FLAT))
        return (int(picture[0]), int(picture[-1]) + 1) if len(picture) else (0, 0)

    g = gray.astype(np.float32)
    squares = g * g
    row_means, col_means = g.mean(axis=1), g.mean(axis=0)
    row_stds = np.sqrt(np.maximum(squares.mean(axis=1) - row_means**2, 0))
    col_stds = np.sqrt(np.maximum(squares.mean(axis=0) - col_means**2, 0))
    top, bottom = span(row_means, row_stds)
    left, right = span(col_means, col_stds)
    if bottom - top < BORDER_KEEP * g.shape[0] or right - left < BORDER_KEEP * g.shape[1]:
        return gray
    return gray[top:bottom, left:right]


def dct_code(gray: np.ndarray) -> int:
    """The signs of the 63 lowest non-constant DCT coefficients of ``gray`` shrunk to 32 × 32, as one int."""
    small = cv2.resize(np.ascontiguousarray(gray, np.float32), (SIDE, SIDE), interpolation=cv2.INTER_AREA)
    coefficients = cv2.dct(small)[:FREQUENCIES, :FREQUENCIES].ravel()[1:]
    bits = (coefficients > 0).astype(np.uint64)
    return int((bits << np.arange(CODE_BITS, dtype=np.uint64)).sum())


def fingerprint_gray(gray: np.ndarray) -> Fingerprint | None:
    """The fingerprint of one grayscale picture (uint8 or float, [H, W]); None for a flat one, whose DCT signs
    would be noise (every black frame would match every other)."""
    if gray.ndim != 2 or min(gray.shape) < 2:
        raise ValidationFailed(f"a fingerprint needs a 2-D grayscale picture, not one of shape {gray.shape}.")
    picture = trim_borders(gray)
    if float(np.std(picture)) < FLAT_STD:
        return None
    h, w = picture.shape
    dh, dw = round(h * (1 - CROP_SHARE) / 2), round(w * (1 - CROP_SHARE) / 2)
    return Fingerprint(full=dct_code(picture), crop=dct_code(picture[dh : h - dh, dw : w - dw]))


def fingerprint_jpeg(jpeg: bytes) -> Fingerprint | None:
    """The fingerprint of a JPEG thumbnail (decoded at a quarter size, in gray); None if it cannot be read or
    is flat."""
    gray = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_REDUCED_GRAYSCALE_4) if jpeg else None
    if gray is None or min(gray.shape) < 2:
        return None
    return fingerprint_gray(gray)


def check_distance(max_distance: int) -> int:
    if not 0 <= max_distance <= MAX_DISTANCE:
        raise ValidationFailed(
            f"fingerprint distance {max_distance!r} is not a number of bits in 0..{MAX_DISTANCE}; set "
            "VA_DUPLICATE_FINGERPRINT_DISTANCE to e.g. 8, or to -1 to turn the fingerprint off."
        )
    return max_distance


def _popcount(x: np.ndarray) -> np.ndarray:
    return np.bitwise_count(x.view(np.uint64))


def _probe_masks(radius: int) -> np.ndarray:
    """Every BAND_BITS-bit mask with at most ``radius`` bits set (the band values a probe visits)."""
    masks = [0]
    for r in range(1, radius + 1):
        masks.extend(sum(1 << b for b in bits) for bits in combinations(range(BAND_BITS), r))
    return np.asarray(masks, np.int64)


def hamming_join(
    index: np.ndarray, queries: np.ndarray, *, max_distance: int, threads: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Every (query row, index row) whose codes differ in at most ``max_distance`` bits: int64 arrays, unsorted,
    each pair once. Multi-index hashing, exact (see the module doc). ``threads`` > 1 probes chunks of the
    queries at once (numpy releases the GIL in the array work: 1M codes at d ≤ 8 took 71 s on one thread)."""
    check_distance(max_distance)
    index, queries = np.asarray(index, np.int64), np.asarray(queries, np.int64)
    masks = _probe_masks(max_distance // BANDS)
    found_q: list[np.ndarray] = []
    found_x: list[np.ndarray] = []
    for band in range(BANDS):
        shift = band * BAND_BITS
        keys = (index >> shift) & BAND_MASK
        order = np.argsort(keys, kind="stable")
        by_key = index[order]  # the codes in band-key order: a probe's bucket is one contiguous run
        counts = np.bincount(keys, minlength=1 << BAND_BITS).astype(np.int32)
        starts = (np.cumsum(counts, dtype=np.int64) - counts).astype(np.int32)  # the index fits int32 (< 2**31)

        probe = partial(
            _probe_band, queries=queries, shift=shift, masks=masks, counts=counts, starts=starts, by_key=by_key,
            order=order, max_distance=max_distance,
        )  # fmt: skip
        chunks = range(0, len(queries), QUERY_CHUNK)
        if threads > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(max_workers=threads) as pool:
                found = list(pool.map(probe, chunks))
        else:
            found = [probe(begin) for begin in chunks]
        for pair in found:
            if pair is not None:
                found_q.append(pair[0])
                found_x.append(pair[1])
    if not found_q:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    qi, x = np.concatenate(found_q), np.concatenate(found_x)
    keys = np.unique(qi * max(1, len(index)) + x)  # a pair close on several bands was found once per band
    return keys // max(1, len(index)), keys % max(1, len(index))


def _probe_band(
    begin: int,
    *,
    queries: np.ndarray,
    shift: int,
    masks: np.ndarray,
    counts: np.ndarray,
    starts: np.ndarray,
    by_key: np.ndarray,
    order: np.ndarray,
    max_distance: int,
) -> tuple[np.ndarray, np.ndarray] | None:
    """(query rows, index rows) within ``max_distance`` among the queries from ``begin``, probing one band."""
    q = queries[begin : begin + QUERY_CHUNK]
    probes = (((q >> shift) & BAND_MASK)[:, None] ^ masks[None, :]).ravel()
    hits = counts[probes]
    occupied = np.flatnonzero(hits)
    first, hits = starts[probes[occupied]], hits[occupied]
    ends = np.cumsum(hits, dtype=np.int64)
    total = int(ends[-1]) if len(ends) else 0
    if not total:
        return None
    # candidate j of a probe's run sits at first + j: repeat each run's start, add the offset within it
    position = np.repeat(first - (ends - hits).astype(np.int32), hits) + np.arange(total, dtype=np.int32)
    differ = np.repeat(q[occupied // len(masks)], hits)
    np.bitwise_xor(differ, by_key[position], out=differ)
    close = np.flatnonzero(_popcount(differ) <= max_distance)
    run = np.searchsorted(ends, close, side="right")  # which probe each close candidate came from
    return begin + occupied[run] // len(masks), order[position[close]]


def fingerprint_pairs(
    full: np.ndarray, crop: np.ndarray, *, max_distance: int, queries: np.ndarray | None = None, threads: int = 1
) -> np.ndarray:
    """Every pair of rows whose fingerprint distance (see the module doc) is at most ``max_distance``.

    ``full`` and ``crop`` are int64 [N] codes (:data:`NO_CODE` for a shot without one). Returns int64 [k, 2]
    with ``i < j``, sorted. With ``queries`` (row indices) only pairs with at least one query row are looked
    for, as :func:`annotator_core.near_duplicates.similar_pairs` does for an incremental ingest.
    """
    full, crop = np.asarray(full, np.int64), np.asarray(crop, np.int64)
    n = len(full)
    rows = np.flatnonzero(full != NO_CODE)
    asked = rows if queries is None else np.intersect1d(np.asarray(queries, np.int64), rows)
    if n < 2 or not len(asked):
        return np.zeros((0, 2), np.int64)
    # The probes cost per query code and the index costs little, so the variants go in the index: every full
    # and crop code, each as is and mirrored. The queries are the asked rows' full codes: in a whole-corpus join
    # (crop_a, full_b) is found when b asks; an incremental join also asks its crops, since old shots do not
    # ask. A crop is never compared with a crop (both zoomed is the same as neither).
    mirror = np.int64(MIRROR_MASK)
    index_rows = np.tile(rows, 4)
    index_crop = np.repeat([False, False, True, True], len(rows))
    index_codes = np.concatenate([full[rows], full[rows] ^ mirror, crop[rows], crop[rows] ^ mirror])
    query_rows = asked if queries is None else np.tile(asked, 2)
    query_crop = np.repeat([False, True], len(asked))[: len(query_rows)]
    query_codes = np.where(query_crop, crop[query_rows], full[query_rows])
    qi, xi = hamming_join(index_codes, query_codes, max_distance=max_distance, threads=threads)
    a, b = query_rows[qi], index_rows[xi]
    keep = (a != b) & ~(query_crop[qi] & index_crop[xi])
    a, b = a[keep], b[keep]
    keys = np.unique(np.minimum(a, b) * n + np.maximum(a, b))
    return np.stack([keys // n, keys % n], axis=1)


def fingerprint_distance(first: Fingerprint, second: Fingerprint) -> int:
    """The distance :func:`fingerprint_pairs` thresholds, for two shots (brute force; tests and reports)."""
    pairs = [(first.full, second.full), (first.full, second.crop), (first.crop, second.full)]
    return min(bin(a ^ b ^ m).count("1") for a, b in pairs for m in (0, MIRROR_MASK))
