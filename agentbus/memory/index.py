"""``VectorIndex``: one namespace's vectors cached in this process, searched by the numba kernels.

Vectors live in a :class:`~agentbus.memory.storage.RowStore` (growable, amortised arrays); ids and
metadata stay in Python lists, a dict maps id -> row.  A delete tombstones its row (the scan skips
it through the row mask) and the arrays are compacted once a quarter of the rows are dead.  Expired
rows are masked out of every search and dropped by :meth:`VectorIndex.purge_expired`.

Incremental refresh: the caller feeds changes (upserts and deletes, e.g. rows of PostgreSQL newer
than :attr:`VectorIndex.cursor`) to :meth:`VectorIndex.apply` with the new cursor.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

import numpy as np

from agentbus.memory.errors import ItemNotFoundError, MemoryInputError
from agentbus.memory.filters import Clause, MetadataColumns, compile_filter
from agentbus.memory.items import Hit, Item
from agentbus.memory.storage import FetchVectors, RowStore, rerank_fetched
from agentbus.memory.validation import as_matrix, as_vector, check_k, normalize_rows, row_norms

__all__ = ["FetchVectors", "Hit", "Item", "VectorIndex"]

_EMPTY_META: Mapping[str, Any] = MappingProxyType({})
_CHUNK = 65536
_KEEP_BYTES = 256 << 20  # loads up to this size keep their checked chunks instead of rereading them


class VectorIndex:
    """Exact k-NN over one namespace.  Thread-safe: one lock serialises writers and searches.

    storage: ``"int8"`` (int8 scan + exact re-rank, the fast default) or ``"float32"`` (plain scan).
    rerank: originals kept for the int8 re-rank: ``"float16"`` (default), ``"float32"``, or ``"none"``
    (int8 only, ~3x less memory).  With ``"none"``, ``fetch_vectors(ids) -> float32 (len(ids), dim)``
    (e.g. a PostgreSQL read) supplies the candidates' originals for an exact re-rank; without it
    scores come from the int8 codes (approximate).  metric: ``"cosine"`` normalises vectors on the way
    in, ``"ip"`` keeps them as given.  Scores are inner products of the stored and query vectors.
    """

    def __init__(
        self,
        dim: int,
        *,
        storage: str = "int8",
        rerank: str = "float16",
        metric: str = "cosine",
        oversample: int = 8,
        capacity: int = 1024,
        fetch_vectors: FetchVectors | None = None,
    ) -> None:
        if not isinstance(dim, int) or not 1 <= dim <= 65536:
            raise ValueError(f"dim must be an integer in 1..65536, got {dim!r}")
        if metric not in ("cosine", "ip"):
            raise ValueError(f"metric must be 'cosine' or 'ip', got {metric!r}")
        if oversample < 1:
            raise ValueError("oversample must be >= 1")
        self.dim, self.metric, self.oversample = dim, metric, oversample
        self.version = 0
        self.cursor: Any = None
        self._lock = threading.RLock()
        self._n = self._dead = self._expiring = 0
        self._ids: list[str | None] = []
        self._meta: list[Mapping[str, Any] | None] = []
        self._rows: dict[str, int] = {}
        self._columns = MetadataColumns()
        self._store = RowStore(dim, storage, rerank, capacity, self._columns)
        self._fetch = fetch_vectors if self._store.orig is None else None
        # told ``keep`` (the old rows, in their new order) on each compaction: a keyword index keyed
        # by these rows follows them
        self.on_compact: list[Callable[[np.ndarray], None]] = []

    # ----------------------------------------------------------------- writes
    def reserve(self, capacity: int) -> None:
        """Make room for ``capacity`` rows up front (a bulk load then never copies the arrays)."""
        with self._lock:
            if capacity > self._store.cap:
                self._store.resize(capacity, self._n)

    def upsert(
        self, id: str, vector: Any, metadata: Mapping[str, Any] | None = None, expires_at: float | None = None
    ) -> None:
        """Store or replace one item (``expires_at``: unix seconds, ``None`` = never)."""
        self.upsert_many([id], as_vector(vector, self.dim)[None, :], [metadata], [expires_at])

    def upsert_many(
        self,
        ids: Sequence[str],
        vectors: Any,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        expires_at: Sequence[float | None] | np.ndarray | None = None,
    ) -> None:
        """Store or replace many items; a repeated id keeps its last occurrence.  All or nothing."""
        ids = list(ids)
        m = len(ids)
        if not all(isinstance(i, str) and i for i in ids):
            raise MemoryInputError("item ids must be non-empty strings")
        metas: list[Mapping[str, Any] | None] = [None] * m if metadata is None else list(metadata)
        exp = np.full(m, np.inf)
        if expires_at is not None:
            exp = np.array([np.inf if e is None else e for e in expires_at], dtype=np.float64)
        if len(metas) != m or exp.shape != (m,) or len(vectors) != m:
            raise MemoryInputError("ids, vectors, metadata and expires_at must have the same length")
        if np.isnan(exp).any():
            raise MemoryInputError("expires_at must be a number of seconds or null")
        if any(md is not None and not isinstance(md, Mapping) for md in metas):
            raise MemoryInputError("metadata must be a JSON object")
        last = dict(zip(ids, range(m), strict=True))
        if len(last) != m:  # duplicates: keep each id's last occurrence
            keep = sorted(last.values())
            vectors = as_matrix(vectors, self.dim)[keep]
            ids, metas, exp = [ids[i] for i in keep], [metas[i] for i in keep], exp[keep]
            m = len(ids)
        metas = [dict(md) if md else None for md in metas]
        prepared, kept = self._prepare(vectors, m)  # every row is checked before anything changes
        with self._lock:
            tgt = self._assign_rows(ids, metas)
            buf: np.ndarray | None = None
            for c, a in enumerate(range(0, m, _CHUNK)):
                x = prepared[c]
                if not kept:  # reread the chunk and normalise it into a reused buffer
                    x = np.ascontiguousarray(vectors[a : a + _CHUNK], dtype=np.float32)
                    if self.metric == "cosine":
                        if buf is None:
                            buf = np.empty((min(m, _CHUNK), self.dim), np.float32)
                        x = np.divide(x, prepared[c][:, None], out=buf[: x.shape[0]])
                self._store.write(tgt[a : a + _CHUNK], x)
            store = self._store
            store.alive[tgt] = 1
            store.expires[tgt] = exp
            self._expiring += int(np.isfinite(exp).sum())
            if len(self._columns):
                for j in range(m):
                    self._columns.set_row(int(tgt[j]), metas[j])
            self.version += 1

    def _prepare(self, vectors: Any, m: int) -> tuple[list[np.ndarray], bool]:
        """Check every chunk; keep the ready rows (small loads) or just each chunk's norms (large)."""
        keep = m * self.dim * 4 <= _KEEP_BYTES
        out: list[np.ndarray] = []
        norms_unused = np.empty(0, np.float32)
        for a in range(0, m, _CHUNK):
            x = as_matrix(vectors[a : a + _CHUNK], self.dim, float16=self._store.orig_dtype is np.float16)
            if self.metric == "cosine":
                norms = row_norms(x)
                out.append(x / norms[:, None] if keep else norms)
            else:
                out.append(x if keep else norms_unused)
        return out, keep

    def _assign_rows(self, ids: list[str], metas: list[Mapping[str, Any] | None]) -> np.ndarray:
        """Row numbers for ``ids``: existing rows are reused, new ids appended (growing the arrays)."""
        store, m, n0 = self._store, len(ids), self._n
        if self._rows.keys().isdisjoint(ids):  # all new: the bulk-load fast path
            if n0 + m > store.cap:
                store.resize(max(n0 + m, store.cap + store.cap // 2), n0)
            self._rows.update(zip(ids, range(n0, n0 + m), strict=True))
            self._ids.extend(ids)
            self._meta.extend(metas)
            self._n += m
            return np.arange(n0, n0 + m, dtype=np.int64)
        rows = [self._rows.get(i) for i in ids]
        fresh = sum(r is None for r in rows)
        if n0 + fresh > store.cap:
            store.resize(max(n0 + fresh, store.cap + store.cap // 2), n0)
        tgt = np.empty(m, np.int64)
        for j, r in enumerate(rows):
            if r is None:
                r = self._rows[ids[j]] = self._n
                self._ids.append(ids[j])
                self._meta.append(metas[j])
                self._n += 1
            else:
                self._expiring -= bool(np.isfinite(store.expires[r]))
                self._meta[r] = metas[j]
            tgt[j] = r
        return tgt

    def add_codes(
        self,
        ids: Sequence[str],
        codes: np.ndarray,
        scales: np.ndarray,
        metadata: Sequence[Mapping[str, Any] | None] | None = None,
        expires_at: np.ndarray | None = None,
    ) -> None:
        """Add items already quantised (:func:`~agentbus.memory.storage.encode_codes` of their vectors):
        the cold load of an int8-only index (``rerank="none"``), with no float32 read or requantisation.
        ``codes`` ``(n, dim)`` uint8, ``scales`` ``(n,)``; ids already present are replaced."""
        ids = list(ids)
        m = len(ids)
        if self._store.storage != "int8" or self._store.orig is not None:
            raise ValueError("add_codes needs an index with storage='int8' and rerank='none'")
        if codes.shape != (m, self.dim) or scales.shape != (m,) or len(set(ids)) != m:
            raise MemoryInputError("add_codes: ids, codes (n, dim) and scales (n,) must match, ids unique")
        metas: list[Mapping[str, Any] | None] = [None] * m if metadata is None else list(metadata)
        exp = np.full(m, np.inf) if expires_at is None else np.asarray(expires_at, np.float64)
        with self._lock:
            present = self._rows.keys() & ids
            if present:
                self.delete_many(present)
            tgt = self._assign_rows(ids, metas)
            store = self._store
            a = int(tgt[0]) if m else 0  # new ids are appended: one contiguous span
            store.codes[a : a + m, : self.dim] = codes
            store.codes[a : a + m, self.dim :] = 128
            store.scales[a : a + m] = scales
            store.alive[a : a + m] = 1
            store.expires[a : a + m] = exp
            self._expiring += int(np.isfinite(exp).sum())
            if len(self._columns):
                for j in range(m):
                    self._columns.set_row(a + j, metas[j])
            self.version += 1

    def drop_originals(self, fetch_vectors: FetchVectors) -> int:
        """Become int8-only (as ``rerank="none"``): free the originals kept for the re-rank and re-rank
        against ``fetch_vectors`` from now on.  What a cache does to a namespace that no longer fits
        its budget whole; the codes stay, so no row is rescanned.  Returns the bytes freed."""
        with self._lock:
            store = self._store
            if store.storage != "int8" or store.orig is None:
                return 0
            freed = store.orig.nbytes
            store.orig, store.orig_dtype = None, None  # resize() and write() keep no originals from now on
            self._fetch = fetch_vectors
            self.version += 1
            return freed

    def delete(self, id: str) -> bool:
        """Remove one item; False if it was not there."""
        return self.delete_many([id]) == 1

    def delete_many(self, ids: Iterable[str]) -> int:
        """Remove items; returns how many were there."""
        with self._lock:
            gone = 0
            for i in ids:
                r = self._rows.pop(i, None)
                if r is None:
                    continue
                self._store.alive[r] = 0
                self._ids[r] = self._meta[r] = None
                self._expiring -= bool(np.isfinite(self._store.expires[r]))
                gone += 1
            self._dead += gone
            self.version += 1
            if self._dead > 1024 and self._dead * 4 > self._n:
                self.compact()
            return gone

    def apply(self, upserts: Iterable[Item] = (), deletes: Iterable[str] = (), cursor: Any = None) -> None:
        """Apply a batch of changes (deletes first, then upserts) and remember ``cursor``."""
        with self._lock:
            self.delete_many(deletes)
            items = list(upserts)
            if items:
                self.upsert_many(
                    [it.id for it in items],
                    [as_vector(it.vector, self.dim) for it in items],
                    [it.metadata for it in items],
                    [it.expires_at for it in items],
                )
            if cursor is not None:
                self.cursor = cursor

    def purge_expired(self, now: float | None = None) -> list[str]:
        """Delete the items whose ``expires_at`` has passed; returns their ids."""
        now = time.time() if now is None else now
        with self._lock:
            store = self._store
            rows = np.flatnonzero((store.alive[: self._n] != 0) & (store.expires[: self._n] <= now))
            ids = [i for i in (self._ids[r] for r in rows) if i is not None]
            self.delete_many(ids)
            return ids

    def compact(self) -> None:
        """Drop tombstoned rows now (it also happens on its own after many deletes)."""
        with self._lock:
            keep = np.flatnonzero(self._store.alive[: self._n])
            self._store.resize(max(8, keep.shape[0] + keep.shape[0] // 4), self._n, keep)
            self._ids = [self._ids[r] for r in keep]
            self._meta = [self._meta[r] for r in keep]
            self._rows = {i: r for r, i in enumerate(self._ids) if i is not None}
            self._n, self._dead = keep.shape[0], 0
            self.version += 1
            for follow in self.on_compact:
                follow(keep)

    # ----------------------------------------------------------------- reads
    def __len__(self) -> int:
        return len(self._rows)

    def __contains__(self, id: object) -> bool:
        return id in self._rows

    @property
    def lock(self) -> threading.RLock:
        """The lock every read and write of this index holds (to do several as one)."""
        return self._lock

    def row_of(self, id: str) -> int | None:
        """The row an item is stored in (rows change on :meth:`compact`)."""
        return self._rows.get(id)

    def id_of(self, row: int) -> str | None:
        """The id of the item in ``row`` (``None``: a deleted row)."""
        return self._ids[row] if 0 <= row < self._n else None

    def rows_of(self, ids: Sequence[str]) -> list[int | None]:
        """:meth:`row_of` of each id."""
        get = self._rows.get
        return [get(i) for i in ids]

    def ids_of(self, rows: list[int]) -> list[str]:
        """The ids of rows that hold items (``""`` for a deleted one)."""
        ids = self._ids
        return [ids[r] or "" for r in rows]

    def row_mask(self, filter: Mapping[str, Any] | None = None, now: float | None = None) -> np.ndarray | None:
        """By row, whether a search could return the item (live, not expired, matching ``filter``);
        ``None``: every row of ``0 .. n-1`` could (nothing deleted, expiring or filtered)."""
        clauses = compile_filter(filter)
        with self._lock:
            return self._mask(clauses, now)

    @property
    def nbytes(self) -> int:
        """Bytes held by the vector arrays (capacity included; ids and metadata not counted)."""
        return self._store.nbytes

    def get(self, id: str) -> Item:
        """The stored item (its vector as stored: normalised under ``metric="cosine"``)."""
        with self._lock:
            r = self._rows.get(id)
            if r is None:
                raise ItemNotFoundError(f"no item {id!r} in this index")
            exp = float(self._store.expires[r])
            return Item(id, self._store.vector(r), self._meta[r] or _EMPTY_META, None if exp == np.inf else exp)

    def admits(
        self, ids: Sequence[str], filter: Mapping[str, Any] | None = None, now: float | None = None
    ) -> dict[str, Mapping[str, Any]]:
        """Those of ``ids`` a search could return (present, not expired, matching ``filter``), with
        their metadata: the same rule as :meth:`search`, for candidates found some other way."""
        clauses = compile_filter(filter)
        with self._lock:
            mask = self._mask(clauses, now)
            out: dict[str, Mapping[str, Any]] = {}
            for i in ids:
                r = self._rows.get(i)
                if r is not None and (mask is None or mask[r]):
                    out[i] = self._meta[r] or _EMPTY_META
            return out

    def _mask(self, clauses: Sequence[Clause], now: float | None) -> np.ndarray | None:
        n = self._n
        if not (self._dead or self._expiring or clauses):
            return None
        mask = self._store.alive[:n].astype(bool)
        if self._expiring:
            mask &= self._store.expires[:n] > (time.time() if now is None else now)
        if clauses:
            mask &= self._columns.evaluate(clauses, self._meta, n)
        return mask

    def search(
        self, query: Any, k: int = 10, filter: Mapping[str, Any] | None = None, now: float | None = None
    ) -> list[Hit]:
        """The ``k`` stored items nearest ``query``, best first; ``filter`` applies before the top-k."""
        return self.search_batch(as_vector(query, self.dim)[None, :], k, filter, now)[0]

    def search_batch(
        self, queries: Any, k: int = 10, filter: Mapping[str, Any] | None = None, now: float | None = None
    ) -> list[list[Hit]]:
        """:meth:`search` for each row of ``queries`` ``(nq, dim)`` in one pass over the data."""
        k = check_k(k)
        clauses = compile_filter(filter)
        q = as_matrix(queries, self.dim)
        if self.metric == "cosine":
            q = normalize_rows(q.copy())
        wanted = k if self._fetch is None else max(k * self.oversample, k + 24)
        with self._lock:
            # with a fetch, ``wanted`` is the oversampled candidate list already: oversampling it again
            # kept 8x more candidates per chunk than the re-rank reads, and slowed the scan
            oversample = self.oversample if self._fetch is None else 1
            rows, scores = self._store.search(q, wanted, self._n, self._mask(clauses, now), oversample)
            hits = [
                [
                    Hit(self._ids[r] or "", float(s), self._meta[r] or _EMPTY_META)
                    for r, s in zip(row_ids.tolist(), row_s.tolist(), strict=True)
                    if r >= 0
                ]
                for row_ids, row_s in zip(rows, scores, strict=True)
            ]
        return hits if self._fetch is None else rerank_fetched(self._fetch, q, hits, k, self.metric == "cosine")
