"""Agent memory: items in PostgreSQL, searched from a per-process cache of each namespace's vectors.

Every search first reads the namespace's change counter (one indexed read), applies the
changes since the version this process has seen, then searches in memory. So an item
stored or deleted through any replica is found (or gone) in the next search on every
replica, and a cold process loads a namespace once, then follows it incrementally.
"""

from __future__ import annotations

import re
import threading
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from agentbus import memory
from agentbus.domain.errors import InvalidInput, NotFound, PayloadTooLarge, ValidationFailed
from agentbus.domain.jsonsafe import first_problem, text_problem
from agentbus.memory.validation import row_norms
from agentbus.observability import metrics
from agentbus.store import NamespaceRecord, NewItem, Store

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,119}$")
MAX_TEXT = 100_000
REFRESH_SLICE = 50_000
COUNT_TTL_S = 10.0


@dataclass
class _Cached:
    generation: str
    index: memory.VectorIndex
    version: int


def _input_error(exc: Exception) -> ValidationFailed:
    return ValidationFailed(str(exc), [{"loc": ["body"], "msg": str(exc)}])


class MemoryService:
    def __init__(self, store: Store, embedder: str = "hash", max_batch: int = 1000, max_items: int = 1_000_000):
        self.store = store
        self.embedder_name = embedder
        self._embedder: memory.Embedder | None = None
        self.max_batch = max_batch
        self.max_items = max_items
        self._cache: dict[str, _Cached] = {}
        self._lock = threading.Lock()
        self._counts: dict[str, tuple[float, int]] = {}
        metrics.watch_memory_index(lambda: sum(len(c.index) for c in list(self._cache.values())))

    @property
    def embedder(self) -> memory.Embedder:
        if self._embedder is None:
            try:
                self._embedder = memory.make_embedder(self.embedder_name)
            except (memory.UnknownEmbedderError, memory.EmbedderUnavailableError) as exc:
                raise InvalidInput(f"embedder {self.embedder_name!r}: {exc}") from None
        return self._embedder

    # -- writes ---------------------------------------------------------------------------------
    def store_items(self, tenant: str, namespace: str, items: Sequence[Mapping[str, Any]]) -> list[str]:
        """Upsert a batch (all or nothing); returns the items' ids."""
        _check_name(namespace)
        if not items:
            raise ValidationFailed("items is empty", [{"loc": ["items"], "msg": "at least one item"}])
        if len(items) > self.max_batch:
            raise PayloadTooLarge(f"a batch of {len(items)} items is over the limit of {self.max_batch}")
        existing = self.store.namespace(tenant, namespace)
        ids, texts, metas, expires, given = [], [], [], [], {}
        now = time.time()
        for i, it in enumerate(items):
            text, vector = it.get("text"), it.get("vector")
            if (text is None or text == "") and vector is None:
                raise ValidationFailed(f"item {i} has neither text nor vector",
                                       [{"loc": ["items", str(i)], "msg": "give text, a vector, or both"}])  # fmt: skip
            if text is not None and len(text) > MAX_TEXT:
                raise PayloadTooLarge(f"item {i}: text over {MAX_TEXT} characters")
            ttl = it.get("ttl")
            if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < 1e10):
                raise ValidationFailed(f"item {i}: ttl must be a positive number of seconds",
                                       [{"loc": ["items", str(i), "ttl"], "msg": "positive seconds"}])  # fmt: skip
            _check_holdable(i, it)
            ids.append(str(it.get("id") or uuid.uuid4().hex))
            texts.append(text)
            metas.append(it.get("metadata"))
            expires.append(None if ttl is None else now + float(ttl))
            if vector is not None:
                given[i] = vector
        dim = existing.dim if existing else (len(next(iter(given.values()))) if given else self.embedder.dim)
        vectors = np.zeros((len(items), dim), np.float32)
        try:
            if given:
                vectors[list(given)] = memory.as_matrix(list(given.values()), dim)
            missing = [i for i in range(len(items)) if i not in given]
            if missing:
                if self.embedder.dim != dim:
                    raise memory.DimensionMismatchError(dim, self.embedder.dim)
                vectors[missing] = self.embedder.embed([texts[i] or "" for i in missing])
            row_norms(vectors)  # an all-zero vector has no direction: refused now, not at search time
        except (ValueError, LookupError) as exc:
            raise _input_error(exc) from None
        rows = [NewItem(ids[i], texts[i], metas[i], vectors[i].tobytes(), expires[i]) for i in range(len(items))]
        self.store.store_items(
            tenant, namespace, dim, self.embedder_name if missing else None, rows, self.max_items, self._stored(tenant)
        )
        seen, count = self._counts.get(tenant, (0.0, 0))
        self._counts[tenant] = (seen, count + len(rows))  # an upper bound until the next recount
        return ids

    def _stored(self, tenant: str) -> int | None:
        """The tenant's item count for the cap: recounted every COUNT_TTL_S (a count is a scan), and
        bumped by what this process stores in between. Replicas may overshoot the cap by what they
        store within that window."""
        seen, count = self._counts.get(tenant, (0.0, 0))
        if time.monotonic() - seen > COUNT_TTL_S:
            count = self.store.memory_items(tenant)
            self._counts[tenant] = (time.monotonic(), count)
        return count

    def delete_item(self, tenant: str, namespace: str, item_id: str) -> None:
        _check_id(item_id)
        if not self.store.delete_item(tenant, namespace, item_id):
            raise NotFound(f"no memory item {item_id!r} in {namespace!r}")

    def delete_namespace(self, tenant: str, namespace: str) -> int:
        return self.store.delete_namespace(tenant, namespace)

    # -- reads ----------------------------------------------------------------------------------
    def namespaces(self, tenant: str) -> list[dict[str, Any]]:
        return [{"name": ns.name, "dim": ns.dim, "items": n, "embedder": ns.embedder}
                for ns, n in self.store.namespaces(tenant)]  # fmt: skip

    def get_item(self, tenant: str, namespace: str, item_id: str) -> dict[str, Any]:
        _check_id(item_id)
        ns = self._namespace(tenant, namespace)
        row = self.store.item(ns.id, item_id)
        return {"id": row.item_id, "text": row.text, "metadata": row.metadata or {}, "expires_at": row.expires_at}

    @metrics.MEMORY_SEARCH.time()
    def search(
        self, tenant: str, namespace: str, *, q: str | None = None, vector: Any = None, k: Any = 10,
        filter: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:  # fmt: skip
        ns = self._namespace(tenant, namespace)
        index = self._index(ns)
        try:
            query = self._query(ns, q, vector)
            hits = index.search(query, k, filter)
        except (ValueError, LookupError) as exc:
            raise _input_error(exc) from None
        texts = self.store.texts(ns.id, [h.id for h in hits])
        return [{"id": h.id, "text": texts.get(h.id), "metadata": dict(h.metadata), "score": h.score} for h in hits]

    def knn_batch(
        self, tenant: str, namespace: str, *, queries: Any = None, ids: Sequence[str] | None = None, k: int = 10,
        filter: Mapping[str, Any] | None = None, gpu: bool = False,
    ) -> list[list[dict[str, Any]]]:  # fmt: skip
        """The k nearest items of each query (vectors, or the stored vectors of ``ids``)."""
        ns = self._namespace(tenant, namespace)
        index = self._index(ns)
        try:
            if ids is not None:
                found = self.store.vectors_of(ns.id, ids)
                missing = [i for i in ids if i not in found]
                if missing:
                    raise NotFound(f"no memory item {missing[0]!r} in {namespace!r}")
                queries = np.stack([np.frombuffer(found[i], np.float32) for i in ids])
            q = memory.as_matrix(queries, ns.dim)
            if gpu and filter is None:
                from agentbus.memory import kernels_cuda

                data = index_vectors(index)
                unit = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
                rows, scores = kernels_cuda.search_cuda(data[1], unit, memory.check_k(k), threads=64)
                return [[{"id": data[0][r], "score": float(s)} for r, s in zip(rr, ss, strict=True) if r >= 0]
                        for rr, ss in zip(rows.tolist(), scores.tolist(), strict=True)]  # fmt: skip
            hits = index.search_batch(q, k, filter)
        except ValueError as exc:
            raise _input_error(exc) from None
        return [[{"id": h.id, "score": h.score} for h in row] for row in hits]

    # -- the cache ------------------------------------------------------------------------------
    def _namespace(self, tenant: str, namespace: str) -> NamespaceRecord:
        _check_name(namespace)
        ns = self.store.namespace(tenant, namespace)
        if ns is None:
            raise NotFound(f"no memory namespace {namespace!r}")
        return ns

    def _index(self, ns: NamespaceRecord) -> memory.VectorIndex:
        with self._lock:
            cached = self._cache.get(ns.id)
            if cached is None or cached.generation != ns.generation:
                cached = _Cached(ns.generation, memory.VectorIndex(ns.dim), 0)
                self._cache[ns.id] = cached
            while ns.version > cached.version:
                # in slices, so a cold load of a large namespace never holds all its rows at once
                changes = self.store.changes_since(ns.id, cached.version, REFRESH_SLICE)
                if not changes:
                    cached.version = ns.version
                    break
                live = [r for r in changes if not r.deleted]
                gone = [r.item_id for r in changes if r.deleted]
                cached.index.apply(
                    [
                        memory.Item(r.item_id, np.frombuffer(r.vector, np.float32), r.metadata, r.expires_at)
                        for r in live
                    ],
                    gone,
                )
                last = changes[-1].version
                if len(changes) < REFRESH_SLICE:
                    cached.version = max(ns.version, last)
                elif changes[0].version != last:
                    cached.version = last - 1  # the last version may be cut: read it again (applying is idempotent)
                else:
                    cached.version = last
            return cached.index

    def _query(self, ns: NamespaceRecord, q: str | None, vector: Any) -> Any:
        if vector is not None:
            return memory.as_vector(vector, ns.dim)
        if q is None or q == "":
            raise memory.MissingQueryError("give q (text) or a vector to search with")
        if self.embedder.dim != ns.dim:
            raise memory.DimensionMismatchError(ns.dim, self.embedder.dim)
        return self.embedder.embed([q])[0]


def index_vectors(index: memory.VectorIndex) -> tuple[list[str], np.ndarray]:
    """The ids and float32 vectors of an index's live items (for the GPU kernel)."""
    ids = [i for i in list(index._rows)]
    return ids, np.stack([index.get(i).vector for i in ids]).astype(np.float32) if ids else np.zeros((0, index.dim))


def _check_holdable(i: int, item: Mapping[str, Any]) -> None:
    """An item's id, text and metadata must be storable and readable back as JSON. The API refused
    such input already; this is for ``ctx.memory`` in tasks, whose values never went through it."""
    for name in ("id", "text", "metadata"):
        problem = first_problem(item.get(name))
        if problem is not None:
            loc, msg = ["items", str(i), name, *problem[0]], problem[1]
            raise ValidationFailed(f"item {i}: {'.'.join(loc[2:])} {msg}", [{"loc": loc, "msg": msg}])


def _check_id(item_id: str) -> None:
    problem = text_problem(item_id) if isinstance(item_id, str) else "is not text"
    if problem:
        raise InvalidInput(f"a memory item id {problem}")


def _check_name(namespace: str) -> None:
    if not isinstance(namespace, str) or not NAME.match(namespace):
        raise InvalidInput("a namespace is 1-120 characters: letters, digits, '_', '.', ':' and '-'")


class JobMemory:
    """``ctx.memory`` in a task: the memory service, bound to the tenant of the task's job."""

    def __init__(self, service: MemoryService, job_id: str) -> None:
        self._service = service
        self._job_id = job_id
        self._tenant: str | None = None

    @property
    def tenant(self) -> str:
        if self._tenant is None:
            self._tenant = self._service.store.get_job(self._job_id).tenant
        return self._tenant

    def store_items(self, namespace: str, items: Sequence[Mapping[str, Any]]) -> list[str]:
        return self._service.store_items(self.tenant, namespace, items)

    def search(self, namespace: str, **kwargs: Any) -> list[dict[str, Any]]:
        return self._service.search(self.tenant, namespace, **kwargs)

    def knn_batch(self, namespace: str, **kwargs: Any) -> list[list[dict[str, Any]]]:
        return self._service.knn_batch(self.tenant, namespace, **kwargs)
