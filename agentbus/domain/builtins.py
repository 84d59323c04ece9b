"""Built-in tasks every App has: agent memory as steps that run on workers.

Inside an agent, ``ctx.memory.store(...)`` and ``ctx.memory.search(...)`` are steps like
``ctx.run`` (journaled, never repeated on replay) that run these tasks on a worker, so the
orchestrator never loads the vector code. In a task, ``ctx.memory`` is the worker's memory
service, bound to the job's tenant.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from agentbus.domain.app import App
    from agentbus.domain.context import AgentContext

BUILTIN_PREFIX = "memory."


def register(app: App) -> None:
    @app.task(name="memory.store")
    def memory_store(ctx: Any, namespace: str, items: list[dict[str, Any]]) -> list[str]:
        """Upsert items ({id?, text?, vector?, metadata?, ttl?}) into a namespace; returns their ids."""
        ids: list[str] = ctx.memory.store_items(namespace, items)
        return ids

    @app.task(name="memory.search")
    def memory_search(
        ctx: Any,
        namespace: str,
        q: str | None = None,
        vector: list[float] | None = None,
        k: int = 10,
        filter: dict[str, Any] | None = None,
        mode: str = "vector",
    ) -> list[dict[str, Any]]:
        """The k items nearest the query text or vector (``mode="hybrid"``: fused with BM25 over the
        text): [{id, text, metadata, score}]."""
        hits: list[dict[str, Any]] = ctx.memory.search(namespace, q=q, vector=vector, k=k, filter=filter, mode=mode)
        return hits

    @app.task(name="memory.knn_batch", device="gpu", fallback="cpu")
    def memory_knn_batch(
        ctx: Any,
        namespace: str,
        queries: list[list[float]] | None = None,
        ids: list[str] | None = None,
        k: int = 10,
    ) -> list[list[dict[str, Any]]]:
        """k nearest neighbours of each query vector (or of each stored item named in ``ids``): a
        numba.cuda kernel on a GPU worker, the CPU kernels elsewhere. For deduplicating or
        clustering memories."""
        out: list[list[dict[str, Any]]] = ctx.memory.knn_batch(
            namespace, queries=queries, ids=ids, k=k, gpu=ctx.device == "gpu"
        )
        return out


class TaskMemory(Protocol):
    """``ctx.memory`` inside a task: the worker's memory service, bound to the job's tenant."""

    def store_items(self, namespace: str, items: Sequence[Mapping[str, Any]]) -> list[str]: ...

    def search(self, namespace: str, **kwargs: Any) -> list[dict[str, Any]]: ...

    def knn_batch(self, namespace: str, **kwargs: Any) -> list[list[dict[str, Any]]]: ...


class AgentMemory:
    """``ctx.memory`` inside an agent: each call is a journaled step run by a built-in task."""

    def __init__(self, ctx: AgentContext) -> None:
        self._ctx = ctx

    def store(
        self,
        namespace: str,
        texts: list[str] | None = None,
        vectors: list[list[float]] | None = None,
        metadata: list[dict[str, Any]] | None = None,
        ids: list[str] | None = None,
        ttl: float | None = None,
    ) -> list[str]:
        n = len(texts if texts is not None else vectors or [])
        items: list[dict[str, Any]] = []
        for i in range(n):
            item: dict[str, Any] = {}
            if texts is not None:
                item["text"] = texts[i]
            if vectors is not None:
                item["vector"] = vectors[i]
            if metadata is not None:
                item["metadata"] = metadata[i]
            if ids is not None:
                item["id"] = ids[i]
            if ttl is not None:
                item["ttl"] = ttl
            items.append(item)
        out: list[str] = self._ctx.run("memory.store", namespace, items)
        return out

    def search(
        self,
        namespace: str,
        q: str | None = None,
        vector: list[float] | None = None,
        k: int = 10,
        filter: dict[str, Any] | None = None,
        mode: str = "vector",
    ) -> list[dict[str, Any]]:
        # mode travels only when it is not the default: a journal written before it existed replays
        # the same step arguments
        args = (namespace, q, vector, k, filter) + (() if mode == "vector" else (mode,))
        out: list[dict[str, Any]] = self._ctx.run("memory.search", *args)
        return out

    def knn_batch(
        self, namespace: str, queries: list[list[float]] | None = None, ids: list[str] | None = None, k: int = 10
    ) -> list[list[dict[str, Any]]]:
        out: list[list[dict[str, Any]]] = self._ctx.run("memory.knn_batch", namespace, queries, ids, k)
        return out
