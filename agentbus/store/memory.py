"""Memory namespaces and items. Writers to a namespace serialise on its row, bumping ``version``,
so that ``changes_since(version)`` gives a reader every change after the ones it has seen."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import peewee

from agentbus.domain.errors import NotFound, RateLimited, ValidationFailed
from agentbus.store.db import is_postgres, translate_errors
from agentbus.store.models import MemoryItem, MemoryNamespace
from agentbus.store.records import dumps, loads


@dataclass(frozen=True)
class NamespaceRecord:
    id: str
    tenant: str
    name: str
    dim: int
    embedder: str | None
    version: int
    generation: str
    created_at: float


@dataclass(frozen=True)
class MemoryRow:
    item_id: str
    text: str | None
    metadata: dict[str, Any] | None
    vector: bytes
    expires_at: float | None
    version: int
    deleted: bool
    created_at: float = 0.0


@dataclass(frozen=True)
class NewItem:
    item_id: str
    text: str | None
    metadata: dict[str, Any] | None
    vector: bytes
    expires_at: float | None


_LIVE = MemoryItem.deleted == False  # noqa: E712 - peewee builds SQL from the comparison


def _ns(r: MemoryNamespace) -> NamespaceRecord:
    return NamespaceRecord(r.id, r.tenant, r.name, r.dim, r.embedder, r.version, r.generation, r.created_at)


def namespace_id(tenant: str, name: str) -> str:
    return f"{tenant}/{name}"


class MemoryQueries:
    db: peewee.Database

    @translate_errors
    def namespace(self, tenant: str, name: str) -> NamespaceRecord | None:
        row = MemoryNamespace.get_or_none(MemoryNamespace.id == namespace_id(tenant, name))
        return None if row is None else _ns(row)

    @translate_errors
    def namespaces(self, tenant: str) -> list[tuple[NamespaceRecord, int]]:
        now = time.time()
        rows = list(MemoryNamespace.select().where(MemoryNamespace.tenant == tenant).order_by(MemoryNamespace.name))
        live = (
            MemoryItem.select(MemoryItem.namespace, peewee.fn.COUNT(MemoryItem.item_id))
            .where(
                MemoryItem.namespace.in_([r.id for r in rows])
                & _LIVE
                & (MemoryItem.expires_at.is_null() | (MemoryItem.expires_at > now))
            )
            .group_by(MemoryItem.namespace)
            .tuples()
        )
        counts = dict(live) if rows else {}
        return [(_ns(r), int(counts.get(r.id, 0))) for r in rows]

    def _bump(self, ns_id: str) -> int:
        """Take the namespace's row lock and the next version (inside the caller's transaction)."""
        MemoryNamespace.update(version=MemoryNamespace.version + 1).where(MemoryNamespace.id == ns_id).execute()
        version: int = MemoryNamespace.select(MemoryNamespace.version).where(MemoryNamespace.id == ns_id).scalar()
        return version

    @translate_errors
    def store_items(
        self,
        tenant: str,
        name: str,
        dim: int,
        embedder: str | None,
        items: Sequence[NewItem],
        max_items: int,
        stored: int | None = None,
    ) -> NamespaceRecord:
        """Upsert ``items`` into the namespace (created on first use), all or nothing.

        ``stored``: the tenant's item count if the caller knows it (counting is a scan); else it is counted.
        """  # fmt: skip
        now = time.time()
        ns_id = namespace_id(tenant, name)
        with self.db.atomic():
            MemoryNamespace.insert(
                id=ns_id, tenant=tenant, name=name, dim=dim, embedder=embedder, version=0,
                generation=uuid.uuid4().hex, created_at=now,
            ).on_conflict_ignore().execute()  # fmt: skip
            version = self._bump(ns_id)
            ns = _ns(MemoryNamespace.get_by_id(ns_id))
            if ns.dim != dim:
                raise ValidationFailed(
                    f"vectors of namespace {name!r} have dimension {ns.dim}, these have {dim}",
                    [{"loc": ["items", "vector"], "msg": f"expected dimension {ns.dim}"}],
                )
            if stored is None:
                stored = self.memory_items(tenant)
            if stored + len(items) > max_items:
                raise RateLimited(f"tenant {tenant!r} stores {stored} memory items, its cap is {max_items}", 60.0)
            rows = [
                {"namespace": ns_id, "item_id": it.item_id, "text": it.text,
                 "metadata": None if it.metadata is None else dumps(it.metadata), "vector": it.vector,
                 "expires_at": it.expires_at, "version": version, "deleted": False, "created_at": now,
                 "updated_at": now}
                for it in items
            ]  # fmt: skip
            for i in range(0, len(rows), 500):
                MemoryItem.insert_many(rows[i : i + 500]).on_conflict(
                    conflict_target=[MemoryItem.namespace, MemoryItem.item_id],
                    update={
                        MemoryItem.text: peewee.EXCLUDED.text,
                        MemoryItem.metadata: peewee.EXCLUDED.metadata,
                        MemoryItem.vector: peewee.EXCLUDED.vector,
                        MemoryItem.expires_at: peewee.EXCLUDED.expires_at,
                        MemoryItem.version: peewee.EXCLUDED.version,
                        MemoryItem.deleted: False,
                        MemoryItem.updated_at: peewee.EXCLUDED.updated_at,
                    },
                ).execute()
        return _ns(MemoryNamespace.get_by_id(ns_id))

    @translate_errors
    def memory_items(self, tenant: str) -> int:
        """Live items of every namespace of the tenant (for the per-tenant cap)."""
        mine = MemoryNamespace.select(MemoryNamespace.id).where(MemoryNamespace.tenant == tenant)
        return int(MemoryItem.select().where(MemoryItem.namespace.in_(mine) & _LIVE).count())

    @translate_errors
    def changes_since(self, ns_id: str, version: int, limit: int = 50_000) -> list[MemoryRow]:
        """Changes after ``version``, oldest first, at most ``limit`` rows (whole versions may be cut:
        a reader goes on from the last version it fully saw)."""
        q = (
            MemoryItem.select(
                MemoryItem.item_id, MemoryItem.metadata, MemoryItem.vector, MemoryItem.expires_at,
                MemoryItem.version, MemoryItem.deleted,
            )
            .where((MemoryItem.namespace == ns_id) & (MemoryItem.version > version))
            .order_by(MemoryItem.version)
            .limit(limit)
            .tuples()
        )  # fmt: skip
        cursor = q.iterator() if is_postgres(self.db) else q
        return [MemoryRow(i, None, loads(m), bytes(v), e, ver, bool(d)) for i, m, v, e, ver, d in cursor]

    @translate_errors
    def item(self, ns_id: str, item_id: str) -> MemoryRow:
        r = MemoryItem.get_or_none((MemoryItem.namespace == ns_id) & (MemoryItem.item_id == item_id) & _LIVE)
        if r is None or (r.expires_at is not None and r.expires_at <= time.time()):
            raise NotFound(f"no memory item {item_id!r}")
        return MemoryRow(r.item_id, r.text, loads(r.metadata), bytes(r.vector), r.expires_at, r.version, False,
                         r.created_at)  # fmt: skip

    @translate_errors
    def texts(self, ns_id: str, item_ids: Sequence[str]) -> dict[str, str | None]:
        if not item_ids:
            return {}
        q = (
            MemoryItem.select(MemoryItem.item_id, MemoryItem.text)
            .where((MemoryItem.namespace == ns_id) & MemoryItem.item_id.in_(list(item_ids)))
            .tuples()
        )
        return dict(q)

    @translate_errors
    def vectors_of(self, ns_id: str, item_ids: Sequence[str]) -> dict[str, bytes]:
        q = (
            MemoryItem.select(MemoryItem.item_id, MemoryItem.vector)
            .where((MemoryItem.namespace == ns_id) & MemoryItem.item_id.in_(list(item_ids)) & _LIVE)
            .tuples()
        )
        return {i: bytes(v) for i, v in q}

    @translate_errors
    def delete_item(self, tenant: str, name: str, item_id: str) -> bool:
        ns_id = namespace_id(tenant, name)
        now = time.time()
        with self.db.atomic():
            if MemoryNamespace.get_or_none(MemoryNamespace.id == ns_id) is None:
                raise NotFound(f"no memory namespace {name!r}")
            version = self._bump(ns_id)
            n = (
                MemoryItem.update(deleted=True, version=version, updated_at=now, text=None, metadata=None)
                .where((MemoryItem.namespace == ns_id) & (MemoryItem.item_id == item_id) & _LIVE)
                .execute()
            )
        return bool(n)

    @translate_errors
    def delete_namespace(self, tenant: str, name: str) -> int:
        ns_id = namespace_id(tenant, name)
        with self.db.atomic():
            if MemoryNamespace.delete().where(MemoryNamespace.id == ns_id).execute() == 0:
                raise NotFound(f"no memory namespace {name!r}")
            return int(MemoryItem.delete().where(MemoryItem.namespace == ns_id).execute())
