"""Row-aligned, growable arrays of one index, and the kernel call that searches them.

``storage="int8"``: uint8 codes (int8 + 128, padded to the SIMD width) with a float32 scale per row
for the scan, plus the originals for the exact re-rank as float16 (default), float32, or nothing
(``rerank="none"``).  ``storage="float32"``: the float32 rows only, scanned exactly.  Every row also
has an alive flag (deletes tombstone it) and an expiry time (``inf`` = never).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from agentbus.memory import kernels_cpu
from agentbus.memory.filters import MetadataColumns
from agentbus.memory.items import Hit
from agentbus.memory.validation import normalize_rows

__all__ = ["RERANKS", "STORAGES", "FetchVectors", "RowStore", "decode_codes", "encode_codes", "rerank_fetched"]

# fetch_vectors(ids) -> float32 (len(ids), dim): the originals of those items, e.g. read from PostgreSQL
FetchVectors = Callable[[Sequence[str]], np.ndarray]

STORAGES = ("int8", "float32")
RERANKS = ("float16", "float32", "none")


class RowStore:
    """The numpy side of a :class:`~agentbus.memory.index.VectorIndex` (not thread-safe by itself)."""

    def __init__(self, dim: int, storage: str, rerank: str, capacity: int, columns: MetadataColumns) -> None:
        if storage not in STORAGES:
            raise ValueError(f"storage must be one of {STORAGES}, got {storage!r}")
        if rerank not in RERANKS:
            raise ValueError(f"rerank must be one of {RERANKS}, got {rerank!r}")
        self.dim, self.storage, self.columns = dim, storage, columns
        self.orig_dtype: Any = np.float32
        if storage == "int8":
            self.orig_dtype = {"float16": np.float16, "float32": np.float32}.get(rerank)
        self.codes = np.empty((0, kernels_cpu.padded_dim(dim) if storage == "int8" else 0), np.uint8)
        self.scales = np.empty(0, np.float32)
        self.orig: np.ndarray | None = None
        self.alive = np.empty(0, np.uint8)
        self.expires = np.empty(0, np.float64)
        self.cap = 0
        self.resize(max(8, capacity), 0)

    def resize(self, cap: int, n: int, keep: np.ndarray | None = None) -> None:
        """Reallocate for ``cap`` rows keeping rows ``[0, n)``, or (``keep``) only those rows, in order."""
        count = n if keep is None else keep.shape[0]

        def moved(old: np.ndarray | None, shape: tuple[int, ...], dtype: Any) -> np.ndarray:
            new = np.empty((cap, *shape), dtype)
            if old is not None and count:
                new[:count] = old[:count] if keep is None else old[keep]
            return new

        if self.storage == "int8":
            self.codes = moved(self.codes, self.codes.shape[1:], np.uint8)
            self.scales = moved(self.scales, (), np.float32)
        if self.orig_dtype is not None:
            self.orig = moved(self.orig, (self.dim,), self.orig_dtype)
        self.alive = moved(self.alive, (), np.uint8)
        self.expires = moved(self.expires, (), np.float64)
        self.columns.resize(cap, keep)
        self.cap = cap

    def write(self, rows: np.ndarray, x: np.ndarray) -> None:
        """Store float32 rows ``x`` at row numbers ``rows`` (quantised straight into place when contiguous)."""
        a = int(rows[0]) if rows.shape[0] else 0
        if rows.shape[0] and int(rows[-1]) == a + rows.shape[0] - 1:  # contiguous: write in place
            span = slice(a, a + rows.shape[0])
            orig = self.orig
            fused = self.storage == "int8" and orig is not None and orig.dtype == np.float16
            if self.storage == "int8":
                half = orig[span] if fused and orig is not None else None
                kernels_cpu.quantize(x, self.codes[span], self.scales[span], half)
            if orig is not None and not fused:
                orig[span] = x
            return
        if self.storage == "int8":
            self.codes[rows], self.scales[rows] = kernels_cpu.quantize(x)
        if self.orig is not None:
            self.orig[rows] = x

    def vector(self, r: int) -> np.ndarray:
        """Row ``r`` as float32 (dequantised when no originals are kept)."""
        out: np.ndarray
        if self.orig is not None:
            out = self.orig[r].astype(np.float32)
        else:
            out = (self.codes[r, : self.dim].astype(np.float32) - 128.0) * self.scales[r]
        return out

    @property
    def nbytes(self) -> int:
        arrays = (self.codes, self.scales, self.orig, self.alive, self.expires)
        return sum(a.nbytes for a in arrays if a is not None)

    def search(
        self, q: np.ndarray, k: int, n: int, mask: np.ndarray | None, oversample: int
    ) -> tuple[np.ndarray, np.ndarray]:
        """Row numbers and scores ``(nq, k)`` of the best rows among ``[0, n)`` (``-1`` pads)."""
        if self.storage == "float32":
            assert self.orig is not None
            return kernels_cpu.search_exact(self.orig, q, k, n=n, mask=mask)
        return kernels_cpu.search_int8(
            self.codes, self.scales, q, k, n=n, mask=mask, rerank=self.orig, oversample=oversample
        )


def encode_codes(x: np.ndarray, normalize: bool = True) -> np.ndarray:
    """Rows ``(n, 4 + dim)`` uint8: each row's float32 scale (little-endian) then its int8 codes + 128,
    exactly what an int8 index computes for those vectors: the form a store keeps beside each vector
    so that a replica loads int8 codes without reading (or quantising) the float32 vectors."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if normalize:
        x = normalize_rows(x.copy())
    n, d = x.shape
    out = np.empty((n, 4 + d), np.uint8)
    amax = np.abs(x).max(axis=1, initial=0.0)
    # what kernels_cpu.quantize computes, in numpy: its parallel region costs more than a write
    # batch's rows (and waits for every thread on a loaded machine); compiled with fastmath, its
    # amax / 127 is amax * (1 / 127), while 127 / amax stays a division
    out[:, :4] = (amax * np.float32(1.0 / 127.0)).astype("<f4").view(np.uint8).reshape(n, 4)
    with np.errstate(divide="ignore"):
        inv = np.where(amax > 0.0, np.float32(127.0) / amax, np.float32(0.0)).astype(np.float32)
    v = np.rint(x * inv[:, None])
    np.clip(v, -127.0, 127.0, out=v)
    out[:, 4:] = v.astype(np.int16) + 128
    return out


def decode_codes(blob: bytes | memoryview, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """``(codes (n, dim) uint8, scales (n,) float32)`` of rows made by :func:`encode_codes`, concatenated."""
    rows = np.frombuffer(blob, np.uint8)
    if rows.size % (4 + dim):
        raise ValueError(f"{rows.size} bytes are not whole rows of {4 + dim}")
    rows = rows.reshape(-1, 4 + dim)
    scales = np.ascontiguousarray(rows[:, :4]).view("<f4").reshape(-1).astype(np.float32)
    return rows[:, 4:], scales


def rerank_fetched(
    fetch: FetchVectors, q: np.ndarray, hits: list[list[Hit]], k: int, normalize: bool
) -> list[list[Hit]]:
    """Exact re-rank of int8 candidates against originals read from outside the process."""
    ids = list(dict.fromkeys(h.id for row in hits for h in row))
    if not ids:
        return [[] for _ in hits]
    vecs = np.array(fetch(ids), dtype=np.float32).reshape(len(ids), q.shape[1])
    # a candidate the source no longer has (deleted since the index last heard) comes back all zeros
    # or non-finite: it is dropped, never scored
    known = np.isfinite(vecs).all(axis=1) & (vecs != 0).any(axis=1)
    vecs[~known] = 1.0
    if normalize:
        vecs = normalize_rows(vecs)
    where = {i: n for n, i in enumerate(ids)}
    hits = [[h for h in row if known[where[h.id]]] for row in hits]
    out = []
    for j, row in enumerate(hits):
        exact = vecs[[where[h.id] for h in row]] @ q[j] if row else np.zeros(0, np.float32)
        order = sorted(range(len(row)), key=lambda t: (-exact[t], row[t].id))[:k]
        out.append([Hit(row[t].id, float(exact[t]), row[t].metadata) for t in order])
    return out
