"""Exact brute-force k-NN on the CPU (numba, ``parallel=True``): the public kernel entry points.

Two paths, same result format: ``(ids, scores)``, both ``(nq, k)``, rows sorted by score (descending,
ties by ascending row), padded with ``-1`` / ``-inf`` where fewer than ``k`` rows qualify.

* :func:`search_exact` scans float32 vectors: the reference, and the ``storage="float32"`` index.
* :func:`search_int8` scans int8 codes (4x less memory traffic than float32), keeps the best
  ``k * oversample`` candidates of every chunk, then re-ranks the merged candidates exactly against
  float32 or float16 originals (or, with no originals, against the dequantised codes).

Inner product is the score; for L2-normalised vectors that is the cosine similarity.  Nothing is
compiled at import time: each kernel compiles on first use and is cached on disk (``cache=True``).
"""

from __future__ import annotations

import functools

import numba
import numpy as np
from numba import njit, prange

from agentbus.memory._scan_cpu import quantize_queries, quantize_rows, scan_f32, scan_i8_batch, scan_i8_single
from agentbus.memory._simd import LANES

__all__ = ["padded_dim", "quantize", "search_exact", "search_int8"]

_OPTS = {"nogil": True, "cache": True, "fastmath": True}
_EMPTY_U8 = np.zeros(0, np.uint8)
_EMPTY_I64 = np.zeros(0, np.int64)
_EMPTY_F32 = np.zeros((0, 1), np.float32)
_EMPTY_U16 = np.zeros((0, 1), np.uint16)
# A filter that keeps fewer than 1/_SPARSE of the rows switches the scan to an explicit row list.
_SPARSE = 8
_MIN_ROWS_PER_CHUNK = 4096


@njit(inline="always", **_OPTS)  # type: ignore[misc]
def _ranked(s: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Order of entries by score descending, ties by id ascending."""
    by_id = np.argsort(ids, kind="mergesort")
    return by_id[np.argsort(-s[by_id], kind="mergesort")]


@njit(parallel=True, **_OPTS)  # type: ignore[misc]
def _merge(heap_s: np.ndarray, heap_i: np.ndarray, heap_n: np.ndarray, out_i: np.ndarray, out_s: np.ndarray) -> None:
    """Best ``out_i.shape[1]`` entries of all chunk heaps, per query."""
    nch, nq, _ = heap_s.shape
    m = out_i.shape[1]
    for q in prange(nq):
        tot = 0
        for c in range(nch):
            tot += heap_n[c, q]
        s = np.empty(tot, np.float32)
        ids = np.empty(tot, np.int64)
        t = 0
        for c in range(nch):
            for e in range(heap_n[c, q]):
                s[t] = heap_s[c, q, e]
                ids[t] = heap_i[c, q, e]
                t += 1
        order = _ranked(s, ids)
        for t in range(m):
            if t < tot:
                out_i[q, t] = ids[order[t]]
                out_s[q, t] = s[order[t]]
            else:
                out_i[q, t] = -1
                out_s[q, t] = -np.inf


@njit(parallel=True, **_OPTS)  # type: ignore[misc]
def _rerank(
    mode: int,
    f32: np.ndarray,
    u16: np.ndarray,
    lut: np.ndarray,
    codes: np.ndarray,
    scales: np.ndarray,
    queries: np.ndarray,
    cand: np.ndarray,
    out_i: np.ndarray,
    out_s: np.ndarray,
) -> None:
    """Exact scores of the candidates (mode 0: float32 rows, 1: float16 rows as uint16 + LUT, 2: int8)."""
    nq, m = cand.shape
    k = out_i.shape[1]
    d = queries.shape[1]
    for q in prange(nq):
        valid = 0
        while valid < m and cand[q, valid] >= 0:
            valid += 1
        s = np.empty(valid, np.float32)
        for t in range(valid):
            r = cand[q, t]
            acc = np.float32(0.0)
            if mode == 0:
                for i in range(d):
                    acc += f32[r, i] * queries[q, i]
            elif mode == 1:
                for i in range(d):
                    acc += lut[u16[r, i]] * queries[q, i]
            else:
                for i in range(d):
                    acc += (np.float32(codes[r, i]) - np.float32(128.0)) * queries[q, i]
                acc *= scales[r]
            s[t] = acc
        ids = cand[q, :valid].copy()
        order = _ranked(s, ids)
        for t in range(k):
            if t < valid:
                out_i[q, t] = ids[order[t]]
                out_s[q, t] = s[order[t]]
            else:
                out_i[q, t] = -1
                out_s[q, t] = -np.inf


@functools.cache
def _f16_lut() -> np.ndarray:
    return np.arange(1 << 16, dtype=np.uint16).view(np.float16).astype(np.float32)


def padded_dim(dim: int) -> int:
    """Width of an int8 code row for ``dim`` components (a multiple of the SIMD step)."""
    return (dim + LANES - 1) // LANES * LANES


def quantize(
    x: np.ndarray,
    out_codes: np.ndarray | None = None,
    out_scales: np.ndarray | None = None,
    out_half: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Codes ``(n, padded_dim)`` (uint8: int8 code + 128) and float32 scales ``(n,)`` of float32 rows.

    ``out_half`` (a float16 ``(n, d)`` array), when given, receives ``x`` converted in the same pass.
    """
    x = np.ascontiguousarray(x, dtype=np.float32)
    n, d = x.shape
    codes = np.empty((n, padded_dim(d)), np.uint8) if out_codes is None else out_codes
    scales = np.empty(n, np.float32) if out_scales is None else out_scales
    half = _EMPTY_U16 if out_half is None else out_half.view(np.uint16)
    if n:
        quantize_rows(x, codes, scales, half)
    return codes, scales


def _chunks(total: int) -> int:
    return max(1, min(numba.get_num_threads(), total // _MIN_ROWS_PER_CHUNK))


def _selection(mask: np.ndarray | None, n: int) -> tuple[np.ndarray, np.ndarray, int]:
    """(dense mask or empty, explicit row list or empty, number of selected rows)."""
    if mask is None:
        return _EMPTY_U8, _EMPTY_I64, n
    m = np.asarray(mask)[:n]
    if m.shape != (n,):
        raise ValueError(f"mask has {m.shape[0]} entries for {n} rows")
    m = m.view(np.uint8) if m.dtype == np.bool_ else m.astype(np.uint8, copy=False)
    live = int(np.count_nonzero(m))
    if live * _SPARSE < n:
        return _EMPTY_U8, np.flatnonzero(m).astype(np.int64), live
    return np.ascontiguousarray(m), _EMPTY_I64, live


def _empty_result(nq: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((nq, k), -1, np.int64), np.full((nq, k), -np.inf, np.float32)


def _heaps(total: int, nq: int, cap: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    nch = _chunks(total)
    return (np.empty((nch, nq, cap), np.float32), np.empty((nch, nq, cap), np.int64), np.zeros((nch, nq), np.int64))


def search_exact(
    vectors: np.ndarray, queries: np.ndarray, k: int, *, n: int | None = None, mask: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products of float32 ``queries`` ``(nq, d)`` over ``vectors[:n]``."""
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    n = vectors.shape[0] if n is None else n
    dense_mask, rows, live = _selection(mask, n)
    if live == 0 or k <= 0:
        return _empty_result(q.shape[0], max(k, 0))
    total = rows.shape[0] or n
    hs, hi, hn = _heaps(total, q.shape[0], min(k, live))
    scan_f32(vectors, n, q, dense_mask, rows, hs, hi, hn)
    out_i, out_s = _empty_result(q.shape[0], k)
    _merge(hs, hi, hn, out_i, out_s)
    return out_i, out_s


def search_int8(
    codes: np.ndarray,
    scales: np.ndarray,
    queries: np.ndarray,
    k: int,
    *,
    n: int | None = None,
    mask: np.ndarray | None = None,
    rerank: np.ndarray | None = None,
    oversample: int = 8,
) -> tuple[np.ndarray, np.ndarray]:
    """Top-``k`` by an int8 scan plus an exact re-rank of ``max(k * oversample, k + 24)`` candidates.

    ``rerank`` holds the original rows (float32 or float16, ``(>= n, d)``); without it the candidates
    are re-ranked against the dequantised codes (approximate).
    """
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    nq = q.shape[0]
    n = codes.shape[0] if n is None else n
    dense_mask, rows, live = _selection(mask, n)
    if live == 0 or k <= 0:
        return _empty_result(nq, max(k, 0))
    total = rows.shape[0] or n
    m = min(live, max(k * oversample, k + 24))
    nq4 = 1 if nq == 1 else (nq + 3) // 4 * 4
    qcodes = np.zeros((nq4, codes.shape[1]), np.int8)
    corr = np.zeros(nq, np.int64)
    quantize_queries(q, qcodes, corr)
    hs, hi, hn = _heaps(total, nq, m)
    if nq == 1:
        scan_i8_single(codes, scales, n, qcodes, int(corr[0]), dense_mask, rows, hs, hi, hn)
    else:
        scan_i8_batch(codes, scales, n, qcodes, corr, nq, dense_mask, rows, hs, hi, hn)
    cand, cand_s = _empty_result(nq, m)
    _merge(hs, hi, hn, cand, cand_s)
    out_i, out_s = _empty_result(nq, k)
    if rerank is None:
        _rerank(2, _EMPTY_F32, _EMPTY_U16, _f16_lut(), codes, scales, q, cand, out_i, out_s)
    elif rerank.dtype == np.float16:
        _rerank(1, _EMPTY_F32, rerank.view(np.uint16), _f16_lut(), codes, scales, q, cand, out_i, out_s)
    else:
        _rerank(0, rerank, _EMPTY_U16, _f16_lut(), codes, scales, q, cand, out_i, out_s)
    return out_i, out_s
