"""The int8 scoring kernel: ``codes @ w`` with int8 codes and int16 weights, summed exactly in int32.

numpy has no integer GEMV (its int8 ``dot`` is a scalar loop), so the first
kernel converted each cache-sized block of codes to float32 and ran an sgemv:
~3.8 M rows × 512 a second per core here. This one is compiled by numba; LLVM
turns the widening multiply-add into AVX2 ``vpmaddwd`` (16 int16 products a
cycle), so it reads the codes at memory speed: ~20 M rows × 512 a second per
core on the 2-core machine (1M rows: 50 ms against 200–290 ms; measured by
``benchmarks/al_scale.py --kernels``). It releases the GIL, so shards on
threads run in parallel.

The weights are quantised to int16 with one step ``q`` (``|w| ≤ 16383·q``, so
a row's sum stays below 2³¹ even at 127·16383·1024); the rounding of each
weight is at most ``q/2``, which moves a row's score by at most
``q/2 · Σ|code| ≤ q/2 · 127 · dim``: :func:`weight_error` is that bound, and the
candidate margin includes it, so no feed row is lost to it.
"""

from __future__ import annotations

import numpy as np
from numba import njit

WEIGHT_LEVELS = 16383  # int16 with headroom: 127 × 16383 × 1024 < 2**31


def quantise_weights(folded: np.ndarray) -> tuple[np.ndarray, float]:
    """(int16 weights, step) with ``folded ≈ weights · step``; a zero vector gets step 1."""
    largest = float(np.abs(folded).max()) if folded.size else 0.0
    step = largest / WEIGHT_LEVELS if largest > 0 else 1.0
    weights = np.rint(np.asarray(folded, np.float64) / step).astype(np.int16)
    return weights, step


def weight_error(step: float, dim: int) -> float:
    """The most the int16 rounding of the weights can move one row's score (codes are within ±127)."""
    return 0.5 * step * 127.0 * dim


@njit(nogil=True, cache=True, fastmath=True, boundscheck=False)
def _scores(codes: np.ndarray, weights: np.ndarray, step: float, offset: float, out: np.ndarray) -> None:
    n, dim = codes.shape
    for i in range(n):
        acc = np.int32(0)
        for j in range(dim):
            acc += np.int32(codes[i, j]) * np.int32(weights[j])
        # numba types the sum int64; truncating it to int32 (exact: |sum| < 2**31) lets LLVM keep the whole
        # reduction in int32 lanes (vpmaddwd). Without it the loop ran 4x slower (212 vs 52 ms per 1M rows).
        out[i] = np.float32(np.int32(acc) * step + offset)


def score_codes(codes: np.ndarray, weights: np.ndarray, step: float, offset: float, *, out: np.ndarray) -> None:
    """``out = (codes @ weights) · step + offset`` for int8 ``codes`` (rows × dim, C order) and int16 ``weights``."""
    if codes.shape[0]:
        _scores(np.asarray(codes), weights, float(step), float(offset), out)


@njit(nogil=True, cache=True, fastmath=True, boundscheck=False)
def _float_scores(rows: np.ndarray, weights: np.ndarray, offset: float, out: np.ndarray) -> None:
    n, dim = rows.shape
    bias = np.float32(offset)
    for i in range(n):
        acc = np.float32(0.0)
        for j in range(dim):
            acc += rows[i, j] * weights[j]
        out[i] = acc + bias


def score_rows(rows: np.ndarray, weights: np.ndarray, offset: float, *, out: np.ndarray) -> None:
    """``out = rows @ weights + offset`` for float32 ``rows`` (n × dim) and ``weights`` (dim), in float32.

    The in-memory scorer's scan. OpenBLAS serialises BLAS calls from different threads, so an ``sgemv``
    scan on the build's scan thread made the quality CV's small BLAS calls wait for the whole scan
    (1M × 512 on 2 cores: quality 35 → 184 ms, build slower than doing both in turn); this loop holds no
    BLAS lock and no GIL, and on one core it reads the rows faster than that ``sgemv`` did on two.
    """
    if rows.shape[0]:
        # any row stride (a strided or memory-mapped view is read in place, never copied)
        _float_scores(np.asarray(rows, dtype=np.float32), np.ascontiguousarray(weights, dtype=np.float32), offset, out)
