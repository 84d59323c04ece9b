"""Parallel CPU scan kernels (numba).  Public entry points live in :mod:`agentbus.memory.kernels_cpu`.

Every scan splits the rows into ``nch`` contiguous chunks (one per ``prange`` iteration).  Each chunk
keeps its own bounded min-heap per query (``heap_s``/``heap_i``/``heap_n``, shaped ``(nch, nq, cap)``),
so no synchronisation happens inside the scan.  Rows are selected either densely (all rows ``< n``,
optionally masked by ``mask[row] != 0``) or by an explicit ascending row list ``rows`` (used when a
filter keeps few rows); an empty ``mask``/``rows`` means "none".  The row mask is applied inside the
scan, so filters, deletions and expiry act before the top-k, never after.
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

from agentbus.memory._simd import (
    f32_to_f16_bits,
    tile_gather_1x1,
    tile_gather_2x4,
    tile_gather_8x1,
    tile_rows_1x1,
    tile_rows_2x4,
    tile_rows_8x1,
)

__all__ = ["heap_offer", "quantize_queries", "quantize_rows", "scan_f32", "scan_i8_batch", "scan_i8_single"]

_OPTS = {"nogil": True, "cache": True, "fastmath": True}


@njit(inline="always", **_OPTS)  # type: ignore[misc]
def heap_offer(hs: np.ndarray, hi: np.ndarray, size: int, s: float, idx: int) -> int:
    """Offer ``(s, idx)`` to the min-heap ``hs``/``hi`` holding ``size`` entries; returns the new size."""
    cap = hs.shape[0]
    if size < cap:
        pos = size
        while pos > 0:
            parent = (pos - 1) >> 1
            if hs[parent] <= s:
                break
            hs[pos] = hs[parent]
            hi[pos] = hi[parent]
            pos = parent
        hs[pos] = s
        hi[pos] = idx
        return size + 1
    if s <= hs[0]:
        return size
    pos = 0
    while True:
        child = 2 * pos + 1
        if child >= cap:
            break
        if child + 1 < cap and hs[child + 1] < hs[child]:
            child += 1
        if hs[child] >= s:
            break
        hs[pos] = hs[child]
        hi[pos] = hi[child]
        pos = child
    hs[pos] = s
    hi[pos] = idx
    return size


@njit(parallel=True, **_OPTS)  # type: ignore[misc]
def quantize_rows(x: np.ndarray, codes: np.ndarray, scales: np.ndarray, half: np.ndarray) -> None:
    """Stored rows: per-row symmetric int8 ``c`` in [-127, 127] with ``x[r] ~= c * scales[r]``, kept as
    ``uint8`` ``c + 128``.  Pad columns hold 128 (a code of 0).  When ``half`` has rows, it also gets
    the float16 bit patterns of ``x`` (the re-rank copy), in the same parallel pass."""
    d = x.shape[1]
    with_half = half.shape[0] > 0
    for r in prange(x.shape[0]):
        if with_half:
            for i in range(d):
                half[r, i] = f32_to_f16_bits(x[r, i])
        amax = np.float32(0.0)
        for i in range(d):
            a = abs(x[r, i])
            if a > amax:
                amax = a
        inv = np.float32(127.0) / amax if amax > 0.0 else np.float32(0.0)
        for i in range(d):
            v = min(np.float32(127.0), max(np.float32(-127.0), np.rint(x[r, i] * inv)))
            codes[r, i] = np.uint8(np.int32(v) + 128)
        for i in range(d, codes.shape[1]):
            codes[r, i] = 128
        scales[r] = amax / np.float32(127.0)


@njit(**_OPTS)  # type: ignore[misc]
def quantize_queries(x: np.ndarray, codes: np.ndarray, corr: np.ndarray) -> None:
    """Queries: per-row symmetric int8 in [-63, 63] (so uint8 x int8 pair sums fit in int16).

    ``corr[j] = 128 * sum(codes[j])`` undoes the +128 of the stored rows: the signed dot product is
    ``tile(row, q) - corr[j]``.  The query scale is left out: it does not change the ranking.
    """
    d = x.shape[1]
    for j in range(x.shape[0]):
        amax = np.float32(0.0)
        for i in range(d):
            amax = max(amax, abs(x[j, i]))
        inv = np.float32(63.0) / amax if amax > 0.0 else np.float32(0.0)
        total = np.int64(0)
        for i in range(d):
            c = np.int32(min(np.float32(63.0), max(np.float32(-63.0), np.rint(x[j, i] * inv))))
            codes[j, i] = np.int8(c)
            total += c
        for i in range(d, codes.shape[1]):
            codes[j, i] = 0
        corr[j] = 128 * total


@njit(inline="always", **_OPTS)  # type: ignore[misc]
def _bounds(total: int, nch: int, c: int, align: int) -> tuple[int, int]:
    """Rows ``[start, end)`` of chunk ``c``; chunk sizes are multiples of ``align``."""
    step = ((total + nch - 1) // nch + align - 1) // align * align
    start = min(total, c * step)
    return start, min(total, start + step)


@njit(parallel=True, **_OPTS)  # type: ignore[misc]
def scan_i8_single(
    codes: np.ndarray,
    scales: np.ndarray,
    n: int,
    qcode: np.ndarray,
    corr: int,
    mask: np.ndarray,
    rows: np.ndarray,
    heap_s: np.ndarray,
    heap_i: np.ndarray,
    heap_n: np.ndarray,
) -> None:
    """One query (``qcode`` ``(1, dpad)``): approximate scores ``(codes . q - corr) * scale``, 8 rows a tile."""
    nch = heap_s.shape[0]
    dense = rows.shape[0] == 0
    has_mask = dense and mask.shape[0] > 0
    total = n if dense else rows.shape[0]
    for c in prange(nch):
        buf = np.empty(8, np.int32)
        hs = heap_s[c, 0]
        hi = heap_i[c, 0]
        cap = hs.shape[0]
        size = 0
        thr = -np.inf
        start, end = _bounds(total, nch, c, 8)
        p = start
        while p < end:
            if p + 8 <= end:
                width = 8
                if dense:
                    if has_mask:
                        live = 0
                        for t in range(8):
                            live += mask[p + t]
                        if live == 0:
                            p += 8
                            continue
                    tile_rows_8x1(codes, p, qcode, 0, buf)
                else:
                    tile_gather_8x1(codes, rows, p, qcode, 0, buf)
            else:
                width = 1
                if dense:
                    tile_rows_1x1(codes, p, qcode, 0, buf)
                else:
                    tile_gather_1x1(codes, rows, p, qcode, 0, buf)
            for t in range(width):
                r = p + t if dense else rows[p + t]
                if has_mask and mask[r] == 0:
                    continue
                s = (buf[t] - corr) * scales[r]
                if s > thr:
                    size = heap_offer(hs, hi, size, s, r)
                    if size == cap:
                        thr = hs[0]
            p += width
        heap_n[c, 0] = size


@njit(parallel=True, **_OPTS)  # type: ignore[misc]
def scan_i8_batch(
    codes: np.ndarray,
    scales: np.ndarray,
    n: int,
    qcodes: np.ndarray,
    corr: np.ndarray,
    nq: int,
    mask: np.ndarray,
    rows: np.ndarray,
    heap_s: np.ndarray,
    heap_i: np.ndarray,
    heap_n: np.ndarray,
) -> None:
    """Many queries (``qcodes`` is ``(nq4, dpad)``, nq4 a multiple of 4): 2 rows x 4 queries a tile.

    Each pair of rows is read from memory once for all queries, so a batch costs compute, not bandwidth.
    """
    nch = heap_s.shape[0]
    nq4 = qcodes.shape[0]
    dense = rows.shape[0] == 0
    has_mask = dense and mask.shape[0] > 0
    total = n if dense else rows.shape[0]
    for c in prange(nch):
        dots = np.zeros((2, nq4), np.int32)  # this pair of rows against every query
        one = np.empty(8, np.int32)
        cap = heap_s.shape[2]
        thr = np.full(nq, -np.inf, np.float32)
        sizes = np.zeros(nq, np.int64)
        start, end = _bounds(total, nch, c, 2)
        p = start
        while p < end:
            width = 2 if p + 2 <= end else 1
            r0 = p if dense else rows[p]
            r1 = (p + 1 if dense else rows[p + 1]) if width == 2 else r0
            ok0 = not has_mask or mask[r0] != 0
            ok1 = width == 2 and (not has_mask or mask[r1] != 0)
            if not ok0 and not ok1:
                p += width
                continue
            for j in range(0, nq4, 4):
                if width == 2:
                    if dense:
                        tile_rows_2x4(codes, p, qcodes, j, dots)
                    else:
                        tile_gather_2x4(codes, rows, p, qcodes, j, dots)
                else:
                    for t in range(4):
                        if dense:
                            tile_rows_1x1(codes, p, qcodes, j + t, one)
                        else:
                            tile_gather_1x1(codes, rows, p, qcodes, j + t, one)
                        dots[0, j + t] = one[0]
            sc0 = scales[r0] if ok0 else np.float32(0.0)
            sc1 = scales[r1] if ok1 else np.float32(0.0)
            # Vectorised test first: after the first rows, almost no score beats its query's threshold.
            beats = 0
            for q in range(nq):
                beats += ((dots[0, q] - corr[q]) * sc0 > thr[q]) + ((dots[1, q] - corr[q]) * sc1 > thr[q])
            if beats == 0:
                p += width
                continue
            for q in range(nq):
                for half in range(2):
                    if ok0 if half == 0 else ok1:
                        s = (dots[half, q] - corr[q]) * (sc0 if half == 0 else sc1)
                        r = r0 if half == 0 else r1
                        if s > thr[q]:
                            sizes[q] = heap_offer(heap_s[c, q], heap_i[c, q], sizes[q], s, r)
                            if sizes[q] == cap:
                                thr[q] = heap_s[c, q, 0]
            p += width
        for q in range(nq):
            heap_n[c, q] = sizes[q]


@njit(parallel=True, **_OPTS)  # type: ignore[misc]
def scan_f32(
    vectors: np.ndarray,
    n: int,
    queries: np.ndarray,
    mask: np.ndarray,
    rows: np.ndarray,
    heap_s: np.ndarray,
    heap_i: np.ndarray,
    heap_n: np.ndarray,
) -> None:
    """Exact float32 inner products for any number of queries (the reference and the float32 storage)."""
    nch = heap_s.shape[0]
    nq = queries.shape[0]
    d = queries.shape[1]
    dense = rows.shape[0] == 0
    has_mask = dense and mask.shape[0] > 0
    total = n if dense else rows.shape[0]
    for c in prange(nch):
        cap = heap_s.shape[2]
        thr = np.full(nq, -np.inf, np.float32)
        sizes = np.zeros(nq, np.int64)
        start, end = _bounds(total, nch, c, 1)
        for p in range(start, end):
            r = p if dense else rows[p]
            if has_mask and mask[r] == 0:
                continue
            for q in range(nq):
                s = np.float32(0.0)
                for i in range(d):
                    s += vectors[r, i] * queries[q, i]
                if s > thr[q]:
                    sizes[q] = heap_offer(heap_s[c, q], heap_i[c, q], sizes[q], s, r)
                    if sizes[q] == cap:
                        thr[q] = heap_s[c, q, 0]
        for q in range(nq):
            heap_n[c, q] = sizes[q]
