"""Agent memory: items in PostgreSQL, searched from a per-process cache of each namespace's vectors.

Every search first reads the namespace's change counter (one indexed read), applies the
changes since the version this process has seen, then searches in memory. So an item
stored or deleted through any replica is found (or gone) in the next search on every
replica, and a cold process loads a namespace once, then follows it incrementally.

The cache lives within a budget (``AGENTBUS_MEMORY_BUDGET``): a namespace that fits in what is
left is held whole (int8 codes + float16 originals for the re-rank); one that does not is held
as int8 codes only, re-ranked against the float32 vectors read from the store; if even that does
not fit, the least recently searched namespaces are dropped. Each namespace loads under its own
lock, so a cold load never stalls the searches of the others.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import logging
import re
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from agentbus import memory
from agentbus.config import sections
from agentbus.domain.errors import InvalidInput, NotFound, PayloadTooLarge, ValidationFailed
from agentbus.domain.jsonsafe import first_problem, text_problem
from agentbus.memory.keywords import KeywordIndex, fuse
from agentbus.memory.storage import decode_codes, encode_codes
from agentbus.memory.validation import row_norms
from agentbus.observability import metrics
from agentbus.store import Jobs, Memory, NamespaceRecord, NewItem

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,119}$")
MAX_TEXT = 100_000
REFRESH_SLICE = 50_000
LOAD_CHUNK = 65_536
# Python-side cost of an item beyond its vector arrays: its id (str, dict entry, list slot) and
# metadata; measured ~240 B for 1M short ids (docs/memory.md), so this errs on the safe side
ITEM_OVERHEAD = 260
MODES = ("vector", "hybrid")


@dataclass(frozen=True)
class CachedNamespace:
    """A namespace in a replica's cache: ``tier`` is ``"full"`` (int8 + float16 in memory) or
    ``"int8"`` (codes only, re-ranked from the store); ``nbytes`` what it is charged to the budget."""

    namespace_id: str
    tier: str
    nbytes: int
    items: int


@dataclass
class _Cached:
    generation: str
    index: memory.VectorIndex | None = None
    version: int = 0
    tier: str = ""  # "full" (float16 re-rank in memory) or "int8" (re-rank from the store)
    nbytes: int = 0
    keywords: KeywordIndex | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)


def _input_error(exc: Exception) -> ValidationFailed:
    return ValidationFailed(str(exc), [{"loc": ["body"], "msg": str(exc)}])


class MemoryService:
    def __init__(
        self,
        store: Memory,
        embedder: str = sections.Memory.embedder,
        max_batch: int = sections.Memory.memory_max_batch,
        max_items: int = sections.Memory.max_memory_items,
        *,
        budget: int = sections.Memory.memory_budget,
    ):
        self.store = store
        self.embedder_name = embedder
        self._embedder: memory.Embedder | None = None
        self.max_batch = max_batch
        self.max_items = max_items
        self.budget = budget
        self._cache: OrderedDict[str, _Cached] = OrderedDict()  # least recently searched first
        self._lock = threading.Lock()  # guards the dict and the budget, never held during a load
        metrics.watch_memory_index(lambda: sum(len(c.index) for c in list(self._cache.values()) if c.index is not None))

    @classmethod
    def from_settings(cls, store: Memory, settings: Any) -> MemoryService:
        """The service an entry point builds from its :class:`~agentbus.config.Settings`."""
        limits = (settings.memory_max_batch, settings.max_memory_items)
        return cls(store, settings.embedder, *limits, budget=settings.memory_budget)

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
        holdable = _all_holdable(items)
        for i, it in enumerate(items):
            text, vector = it.get("text"), it.get("vector")
            if (text is None or text == "") and vector is None:
                raise ValidationFailed(
                    f"item {i} has neither text nor vector",
                    [{"loc": ["items", str(i)], "msg": "give text, a vector, or both"}],
                )
            if text is not None and len(text) > MAX_TEXT:
                raise PayloadTooLarge(f"item {i}: text over {MAX_TEXT} characters")
            ttl = it.get("ttl")
            if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int | float) or not 0 < ttl < 1e10):
                raise ValidationFailed(
                    f"item {i}: ttl must be a positive number of seconds",
                    [{"loc": ["items", str(i), "ttl"], "msg": "positive seconds"}],
                )
            if not holdable:
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
        codes = encode_codes(vectors)  # stored beside each vector: an int8 replica loads these, not the floats
        rows = [
            NewItem(ids[i], texts[i], metas[i], vectors[i].tobytes(), expires[i], codes[i].tobytes())
            for i in range(len(items))
        ]
        self.store.store_items(tenant, namespace, dim, self.embedder_name if missing else None, rows, self.max_items)
        return ids

    def delete_item(self, tenant: str, namespace: str, item_id: str) -> None:
        _check_id(item_id)
        if not self.store.delete_item(tenant, namespace, item_id):
            raise NotFound(f"no memory item {item_id!r} in {namespace!r}")

    def delete_namespace(self, tenant: str, namespace: str) -> int:
        return self.store.delete_namespace(tenant, namespace)

    # -- reads ----------------------------------------------------------------------------------
    def namespaces(self, tenant: str) -> list[dict[str, Any]]:
        return [
            {"name": ns.name, "dim": ns.dim, "items": n, "embedder": ns.embedder}
            for ns, n in self.store.namespaces(tenant)
        ]

    def get_item(self, tenant: str, namespace: str, item_id: str) -> dict[str, Any]:
        _check_id(item_id)
        ns = self._namespace(tenant, namespace)
        row = self.store.item(ns.id, item_id)
        return {"id": row.item_id, "text": row.text, "metadata": row.metadata or {}, "expires_at": row.expires_at}

    @metrics.MEMORY_SEARCH.time()
    def search(
        self,
        tenant: str,
        namespace: str,
        *,
        q: str | None = None,
        vector: Any = None,
        k: Any = 10,
        filter: Mapping[str, Any] | None = None,
        mode: str = "vector",
    ) -> list[dict[str, Any]]:
        """The ``k`` best items. ``mode="vector"``: nearest to ``q`` (embedded) or ``vector``.
        ``mode="hybrid"``: BM25 over the items' text for ``q``, fused with the vector ranking by
        reciprocal rank fusion (the score is the fused one), so a name or id in ``q`` counts as such."""
        if mode not in MODES:
            raise InvalidInput(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
        ns = self._namespace(tenant, namespace)
        if mode == "hybrid" and (q is None or q == ""):
            raise _input_error(memory.MissingQueryError("mode=hybrid needs q: its keyword half searches the text"))
        cached = self._cached(ns, keywords=mode == "hybrid")
        index = cached.index
        assert index is not None
        try:
            query = self._query(ns, q, vector)
            if mode == "hybrid":
                assert cached.keywords is not None and q is not None
                hits = _hybrid(index, cached.keywords, query, q, memory.check_k(k), filter)
            else:
                hits = index.search(query, k, filter)
        except (ValueError, LookupError) as exc:
            raise _input_error(exc) from None
        texts = self.store.texts(ns.id, [h.id for h in hits])
        return [{"id": h.id, "text": texts.get(h.id), "metadata": dict(h.metadata), "score": h.score} for h in hits]

    def knn_batch(
        self,
        tenant: str,
        namespace: str,
        *,
        queries: Any = None,
        ids: Sequence[str] | None = None,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        gpu: bool = False,
    ) -> list[list[dict[str, Any]]]:
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
                return [
                    [{"id": data[0][r], "score": float(s)} for r, s in zip(rr, ss, strict=True) if r >= 0]
                    for rr, ss in zip(rows.tolist(), scores.tolist(), strict=True)
                ]
            hits = index.search_batch(q, k, filter)
        except ValueError as exc:
            raise _input_error(exc) from None
        return [[{"id": h.id, "score": h.score} for h in row] for row in hits]

    # -- the cache ------------------------------------------------------------------------------
    def cached(self) -> list[CachedNamespace]:
        """What this replica holds, least recently searched first."""
        with self._lock:
            entries = list(self._cache.items())
        return [CachedNamespace(key, c.tier, c.nbytes, len(c.index or ())) for key, c in entries]

    def _namespace(self, tenant: str, namespace: str) -> NamespaceRecord:
        _check_name(namespace)
        ns = self.store.namespace(tenant, namespace)
        if ns is None:
            raise NotFound(f"no memory namespace {namespace!r}")
        return ns

    def _index(self, ns: NamespaceRecord) -> memory.VectorIndex:
        index = self._cached(ns).index
        assert index is not None
        return index

    def _cached(self, ns: NamespaceRecord, keywords: bool = False) -> _Cached:
        with self._lock:
            cached = self._cache.get(ns.id)
            if cached is None or cached.generation != ns.generation:
                cached = self._cache[ns.id] = _Cached(ns.generation)
            self._cache.move_to_end(ns.id)
        with cached.lock:  # this namespace only: searches of the others go on meanwhile
            try:
                if cached.index is None:
                    self._load(ns, cached)
                else:
                    self._refresh(ns, cached)
            except BaseException:
                if cached.index is None:
                    self._charge(ns.id, cached, 0)  # a failed load holds no memory; the next search retries
                raise
            if keywords and cached.keywords is None:
                self._load_keywords(ns, cached)
        return cached

    def _load_keywords(self, ns: NamespaceRecord, cached: _Cached) -> None:
        """The keyword index of a loaded namespace, built in bulk from its texts read a chunk at a
        time (never all at once), keyed by the vector index's rows. Texts newer than the index have
        no row yet and are skipped: the next refresh, which now reads texts, indexes them (and
        re-applies any other change)."""
        index = cached.index
        assert index is not None

        def chunks() -> Iterator[tuple[list[str], list[str]]]:
            for after, upto in self.store.load_plan(ns.id, ns.version, LOAD_CHUNK):
                yield self.store.texts_chunk(ns.id, after, upto)

        keywords = KeywordIndex(rows=index)
        # rows move only when a delete compacts the index, and deletes come through the refresh,
        # which waits on the namespace's lock that this load holds: vector searches go on meanwhile
        keywords.load(chunks())
        index.on_compact.append(keywords.remap)
        cached.keywords = keywords
        nbytes = cached.nbytes + keywords.nbytes
        if nbytes > self._free_for(ns.id) and cached.tier == "full":
            # the tier was chosen for the vectors alone: with the keyword index the namespace no longer
            # fits whole, so it gives up its re-rank originals (as if loaded int8-only) before the
            # budget evicts other namespaces for it
            nbytes -= index.drop_originals(self._fetcher(ns))
            cached.tier = "int8"
            log.info("memory budget: namespace %s is served int8-only beside its keyword index", ns.id)
        self._charge(ns.id, cached, nbytes)
        _give_back_freed_memory()

    def _load(self, ns: NamespaceRecord, cached: _Cached) -> None:
        """A cold load: the namespace's rows in large chunks (codes only, when int8-only)."""
        version = ns.version  # every change after it is re-applied by the next refresh (idempotent)
        count = ns.items
        full = count * (ns.dim * 3 + 4 + 13 + ITEM_OVERHEAD)
        if full <= self._free_for(ns.id):
            cached.tier, column = "full", "vector"
            index = memory.VectorIndex(ns.dim)
        else:
            cached.tier, column = "int8", "code"
            index = memory.VectorIndex(ns.dim, rerank="none", fetch_vectors=self._fetcher(ns))
        self._charge(ns.id, cached, count * (ns.dim + 4 + 13 + ITEM_OVERHEAD) if column == "code" else full)
        index.reserve(count + count // 16 + 8)
        parsed: dict[str, Any] = {}  # items often share their metadata: one dict for each distinct text
        for after, upto in self.store.load_plan(ns.id, version, LOAD_CHUNK):
            chunk = self.store.load_chunk(ns.id, after, upto, column)
            metas = [_shared_json(m, parsed) for m in chunk.metadata]
            expires = np.frombuffer(chunk.expires, ">f8").astype(np.float64)
            if column == "code":
                codes, scales = decode_codes(chunk.blobs, ns.dim)
                index.add_codes(chunk.ids, codes, scales, metas, expires)
            elif chunk.ids:
                vectors = np.frombuffer(chunk.blobs, np.float32).reshape(-1, ns.dim)
                index.upsert_many(chunk.ids, vectors, metas, expires)
        if column == "code":  # rows stored before codes were kept: quantised here
            _apply(index, self.store.uncoded(ns.id, version))
        cached.index, cached.version = index, version
        self._charge(ns.id, cached, index.nbytes + len(index) * ITEM_OVERHEAD)
        self._refresh(ns, cached)

    def _free_for(self, ns_id: str) -> int:
        """What the budget leaves a namespace beside the others cached now."""
        with self._lock:
            return self.budget - sum(c.nbytes for key, c in self._cache.items() if key != ns_id)

    def _charge(self, ns_id: str, cached: _Cached, nbytes: int) -> None:
        """Set what a namespace costs, then drop the least recently searched others while over budget."""
        with self._lock:
            cached.nbytes = nbytes
            for key in list(self._cache):
                if sum(c.nbytes for c in self._cache.values()) <= self.budget:
                    break
                if key != ns_id:
                    log.info("memory budget: dropping namespace %s from this replica's cache", key)
                    del self._cache[key]

    def _fetcher(self, ns: NamespaceRecord) -> memory.FetchVectors:
        def fetch(ids: Sequence[str]) -> np.ndarray:
            found = self.store.stored_vectors(ns.id, ids)
            out = np.zeros((len(ids), ns.dim), np.float32)  # all zeros: gone from the store, dropped
            for j, item_id in enumerate(ids):
                raw = found.get(item_id)
                if raw is not None:
                    out[j] = np.frombuffer(raw, np.float32)
            return out

        return fetch

    def _refresh(self, ns: NamespaceRecord, cached: _Cached) -> None:
        index = cached.index
        assert index is not None
        while ns.version > cached.version:
            # in slices, so a cold load of a large namespace never holds all its rows at once
            changes = self.store.changes_since(ns.id, cached.version, REFRESH_SLICE, cached.keywords is not None)
            if len(changes) == REFRESH_SLICE and cached.keywords is None:
                cached.index = None  # far behind (a bulk store meanwhile): a cold load is much faster
                self._load(ns, cached)
                return
            if not changes:
                cached.version = ns.version
                break
            keywords = cached.keywords
            if keywords is None:
                _apply(index, changes)
            else:
                with index.lock:  # keyword documents are the index's rows: removed while their rows stand
                    keywords.remove_many(r.item_id for r in changes if r.deleted or r.text is None)
                    _apply(index, changes)
                    texts = {r.item_id: r.text for r in changes if not r.deleted and r.text is not None}
                    keywords.set_many(list(texts), list(texts.values()))
            last = changes[-1].version
            if len(changes) < REFRESH_SLICE:
                cached.version = max(ns.version, last)
            elif changes[0].version != last:
                cached.version = last - 1  # the last version may be cut: read it again (applying is idempotent)
            else:
                cached.version = last

    def _query(self, ns: NamespaceRecord, q: str | None, vector: Any) -> Any:
        if vector is not None:
            return memory.as_vector(vector, ns.dim)
        if q is None or q == "":
            raise memory.MissingQueryError("give q (text) or a vector to search with")
        if self.embedder.dim != ns.dim:
            raise memory.DimensionMismatchError(ns.dim, self.embedder.dim)
        return self.embedder.embed([q])[0]


def _give_back_freed_memory() -> None:
    """Hand the heap's free pages back to the system after a bulk build. Its temporary arrays of a
    few MB each come from glibc's heap (its mmap threshold rises after the first large free), and
    freed there they stay resident: at 1M items ~150 MB of RSS (984 -> 824 MB measured) is nothing
    but freed memory until ``malloc_trim``. Elsewhere (not glibc) this does nothing."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        libc.malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _shared_json(text: str | None, parsed: dict[str, Any]) -> Any:
    if text is None:
        return None
    value = parsed.get(text)
    if value is None:
        value = parsed[text] = json.loads(text)
    return value


def _apply(index: memory.VectorIndex, changes: Sequence[Any]) -> None:
    live = [r for r in changes if not r.deleted]
    index.apply(
        [memory.Item(r.item_id, np.frombuffer(r.vector, np.float32), r.metadata, r.expires_at) for r in live],
        [r.item_id for r in changes if r.deleted],
    )


def _hybrid(
    index: memory.VectorIndex,
    keywords: KeywordIndex,
    query: Any,
    text: str,
    k: int,
    filter: Mapping[str, Any] | None,
) -> list[memory.Hit]:
    """Reciprocal rank fusion of the vector ranking and BM25 over the text, each cut at ``depth``."""
    depth = max(4 * k, 50)
    by_vector = index.search(query, min(depth, memory.MAX_K), filter)
    with index.lock:  # the keyword index's rows are the vector index's: no compaction in between
        rows, _ = keywords.search_rows(text, depth, index.row_mask(filter))  # the filter before the top-k
        by_keyword = [index.id_of(r) or "" for r in rows.tolist()]
        admitted = index.admits(by_keyword, filter)
    fused = fuse([[h.id for h in by_vector], by_keyword])[:k]
    meta = {h.id: h.metadata for h in by_vector}
    return [memory.Hit(i, score, meta[i] if i in meta else admitted[i]) for i, score in fused]


def index_vectors(index: memory.VectorIndex) -> tuple[list[str], np.ndarray]:
    """The ids and float32 vectors of an index's live items (for the GPU kernel)."""
    ids = [i for i in list(index._rows)]
    return ids, np.stack([index.get(i).vector for i in ids]).astype(np.float32) if ids else np.zeros((0, index.dim))


def _all_holdable(items: Sequence[Mapping[str, Any]]) -> bool:
    """Whether :func:`_check_holdable` passes every item, the texts and ids scanned as one string
    (per item, the checks cost more than embedding it); on False, the items are checked one by one."""
    strings: list[str] = []
    for it in items:
        for name in ("id", "text", "metadata"):
            value = it.get(name)
            if isinstance(value, str):
                strings.append(value)
            elif value is not None and first_problem(value) is not None:
                return False
    return text_problem("".join(strings)) is None


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

    def __init__(self, service: MemoryService, job_id: str, jobs: Jobs) -> None:
        self._service = service
        self._job_id = job_id
        self._jobs = jobs
        self._tenant: str | None = None

    @property
    def tenant(self) -> str:
        if self._tenant is None:
            self._tenant = self._jobs.get_job(self._job_id).tenant
        return self._tenant

    def store_items(self, namespace: str, items: Sequence[Mapping[str, Any]]) -> list[str]:
        return self._service.store_items(self.tenant, namespace, items)

    def search(self, namespace: str, **kwargs: Any) -> list[dict[str, Any]]:
        return self._service.search(self.tenant, namespace, **kwargs)

    def knn_batch(self, namespace: str, **kwargs: Any) -> list[list[dict[str, Any]]]:
        return self._service.knn_batch(self.tenant, namespace, **kwargs)
