"""Exact k-NN on a GPU worker with ``numba.cuda``: same ``(ids, scores)`` as :mod:`.kernels_cpu`.

Two kernels per batch of queries:

1. ``score``: one thread per row over rows stored transposed on the device (``(dim, rows)``, so a
   warp's loads are coalesced), up to ``QCHUNK`` queries per launch accumulated in registers (float32
   accumulation; rows may be float32 or float16 on the device); masked rows score ``-inf``.
2. ``select``: one thread block per query finds the exact k-th largest score by a radix select on
   the order-preserving integer image of the float bits (four passes, each a 256-bucket histogram of
   the next byte in shared memory), then every thread copies out its rows above that threshold plus
   just enough rows equal to it.

The host then sorts the ``k`` winners of each query (score descending, row ascending).  Rows are
processed in launches of at most ``rows_per_launch`` so the score buffer stays bounded; the launches'
winners are merged on the host.  ``numba.cuda`` is imported, and the kernels are compiled, on first
use only; everything runs under the CUDA simulator (``NUMBA_ENABLE_CUDASIM=1``) too, slowly.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["QCHUNK", "DeviceVectors", "cuda_available", "search_cuda", "to_device"]

QCHUNK = 16

# numba.cuda, bound on first use.  Kernels must reach it as a module global (not a closure variable):
# the CUDA simulator swaps that global for its fake module while it runs a kernel.
cuda: Any = None


def cuda_available() -> bool:
    """True when numba finds a usable GPU (or the simulator is on)."""
    try:
        from numba import cuda
    except ImportError:  # pragma: no cover - numba always ships numba.cuda
        return False
    return bool(cuda.is_available())  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class DeviceVectors:
    """Rows resident on the GPU, transposed: ``data`` is a device array ``(dim, n)``."""

    data: Any
    n: int
    dim: int


def to_device(vectors: np.ndarray) -> DeviceVectors:
    """Copy a namespace's rows (``(n, dim)``, float32 or float16) to the GPU once, for many searches."""
    from numba import cuda

    return DeviceVectors(cuda.to_device(np.ascontiguousarray(np.asarray(vectors).T)), *vectors.shape)


@functools.cache
def _kernels() -> tuple[Any, Any]:
    global cuda
    from numba import cuda as numba_cuda
    from numba import float32, int64

    cuda = numba_cuda

    @cuda.jit
    def score(xt: Any, q: Any, j0: int, nqc: int, mask: Any, has_mask: bool, start: int, n: int, out: Any) -> None:
        # One thread per row; the rows are stored transposed (dim, rows), so a warp's loads of one
        # component are coalesced, and each row is read once for up to QCHUNK queries.
        i = cuda.grid(1)
        if i >= n:
            return
        r = start + i
        if has_mask and mask[r] == 0:
            for t in range(nqc):
                out[j0 + t, i] = -np.inf
            return
        acc = cuda.local.array(QCHUNK, float32)  # constant trip counts below keep it in registers
        for t in range(QCHUNK):
            acc[t] = 0.0
        for c in range(xt.shape[0]):
            xv = float32(xt[c, r])
            for t in range(QCHUNK):
                if t < nqc:
                    acc[t] += xv * q[j0 + t, c]
        for t in range(QCHUNK):
            if t < nqc:
                out[j0 + t, i] = acc[t]

    @cuda.jit(device=True)
    def key(bits: Any) -> Any:
        b = int64(bits)
        return b + 2147483648 if b >= 0 else -1 - b

    @cuda.jit
    def select(bits: Any, vals: Any, n: int, k: int, out_rows: Any, out_vals: Any, counters: Any) -> None:
        hist = cuda.shared.array(256, int64)
        state = cuda.shared.array(2, int64)  # [high bits of the k-th key found so far, how many still needed]
        j = cuda.blockIdx.x
        tid = cuda.threadIdx.x
        nt = cuda.blockDim.x
        if tid == 0:
            state[0] = 0
            state[1] = k
        for shift in range(24, -1, -8):
            for b in range(tid, 256, nt):
                hist[b] = 0
            cuda.syncthreads()
            high = (0xFFFFFFFF << (shift + 8)) & 0xFFFFFFFF
            prefix = state[0]
            for i in range(tid, n, nt):
                kk = key(bits[j, i])
                if (kk & high) == prefix:
                    cuda.atomic.add(hist, (kk >> shift) & 255, 1)
            cuda.syncthreads()
            if tid == 0:
                need = state[1]
                for b in range(255, -1, -1):
                    if hist[b] >= need:
                        state[0] = prefix | (b << shift)
                        break
                    need -= hist[b]
                state[1] = need
            cuda.syncthreads()
        threshold = state[0]
        need_eq = state[1]
        for i in range(tid, n, nt):
            kk = key(bits[j, i])
            if kk > threshold:
                slot = cuda.atomic.add(counters, (j, 0), 1)
                out_rows[j, slot] = i
                out_vals[j, slot] = vals[j, i]
            elif kk == threshold:
                slot = cuda.atomic.add(counters, (j, 1), 1)
                if slot < need_eq:
                    out_rows[j, k - need_eq + slot] = i
                    out_vals[j, k - need_eq + slot] = vals[j, i]

    return score, select


def _launch(
    dv: DeviceVectors, d_q: Any, d_mask: Any, has_mask: bool, start: int, n: int, k: int, threads: int
) -> tuple[np.ndarray, np.ndarray]:
    from numba import cuda

    score, select = _kernels()
    nq = d_q.shape[0]
    d_s = cuda.device_array((nq, n), np.float32)
    for j0 in range(0, nq, QCHUNK):
        score[(n + threads - 1) // threads, threads](
            dv.data, d_q, j0, min(QCHUNK, nq - j0), d_mask, has_mask, start, n, d_s
        )
    d_rows = cuda.device_array((nq, k), np.int64)
    d_vals = cuda.device_array((nq, k), np.float32)
    d_cnt = cuda.to_device(np.zeros((nq, 2), np.int64))
    select[nq, threads](d_s.view(np.int32), d_s, n, k, d_rows, d_vals, d_cnt)
    return d_rows.copy_to_host() + start, d_vals.copy_to_host()


def search_cuda(
    vectors: np.ndarray | DeviceVectors,
    queries: np.ndarray,
    k: int,
    *,
    n: int | None = None,
    mask: np.ndarray | None = None,
    threads: int = 256,
    rows_per_launch: int = 1 << 22,
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-``k`` inner products of ``queries`` over the first ``n`` rows of ``vectors``.

    ``vectors``: a host array ``(rows, dim)`` (copied for this call) or :func:`to_device`'s result.
    Returns ``(ids, scores)`` shaped ``(nq, k)`` like :func:`agentbus.memory.kernels_cpu.search_exact`.
    ``threads`` is the thread-block size of both kernels (small values suit the simulator).
    """
    from numba import cuda

    if not 1 <= threads <= 1024:
        raise ValueError("threads must be in 1..1024")
    dv = vectors if isinstance(vectors, DeviceVectors) else to_device(vectors)
    q = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
    nq = q.shape[0]
    n = dv.n if n is None else min(n, dv.n)
    out_i = np.full((nq, k), -1, np.int64)
    out_s = np.full((nq, k), -np.inf, np.float32)
    if n == 0 or k <= 0:
        return out_i, out_s
    d_q = cuda.to_device(q)
    has_mask = mask is not None
    m = np.ascontiguousarray(np.asarray(mask)[:n], dtype=np.uint8) if has_mask else np.zeros(1, np.uint8)
    d_mask = cuda.to_device(m)
    parts_i, parts_s = [], []
    for start in range(0, n, rows_per_launch):
        count = min(rows_per_launch, n - start)
        rows, vals = _launch(dv, d_q, d_mask, has_mask, start, count, min(k, count), threads)
        parts_i.append(rows)
        parts_s.append(vals)
    rows, vals = np.hstack(parts_i), np.hstack(parts_s)
    for j in range(nq):
        order = np.lexsort((rows[j], -vals[j]))[:k]
        r, s = rows[j, order], vals[j, order]
        keep = s > -np.inf
        out_i[j, : keep.sum()] = r[keep]
        out_s[j, : keep.sum()] = s[keep]
    return out_i, out_s
