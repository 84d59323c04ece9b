"""Memory at scale: the exact tenant cap and change counter under concurrent writers, the budgeted
cache (int8-only tier, least-recently-used eviction), cold loads from stored codes that never stall
other namespaces, and hybrid (BM25 + vector) search."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from agentbus.domain import InvalidInput, RateLimited, ValidationFailed
from agentbus.services import MemoryService
from agentbus.store import Repositories


def _vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    v = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _items(prefix: str, vectors: np.ndarray, **extra: Any) -> list[dict[str, Any]]:
    return [{"id": f"{prefix}{i}", "vector": v.tolist(), "metadata": {"i": i}, **extra} for i, v in enumerate(vectors)]


def _run_all(work: Callable[[int], None], threads: int) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(threads)

    def run(n: int) -> None:
        start.wait()
        try:
            work(n)
        except BaseException as exc:  # collected for the test to inspect
            errors.append(exc)

    pool = [threading.Thread(target=run, args=(n,)) for n in range(threads)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    return errors


# One Repositories per process, as in the roles: its pool gives each thread its own connection, so the
# threads are concurrent transactions (peewee binds the models to one database per process).


def test_concurrent_writers_never_pass_the_tenant_cap(pg_url: str) -> None:
    # eight replicas' caches, each storing 4 batches of 5 new items in namespaces of one tenant: 160 asked, cap 50
    store = Repositories.from_url(pg_url)
    try:

        def work(n: int) -> None:
            svc = MemoryService(store.memory, max_items=50)
            for b in range(4):
                try:
                    svc.store_items("t1", f"ns{n % 3}", _items(f"w{n}b{b}-", _vectors(5, seed=n * 10 + b)))
                except RateLimited:
                    pass

        assert _run_all(work, 8) == []
        svc = MemoryService(store.memory, max_items=50)
        assert sum(ns["items"] for ns in svc.namespaces("t1")) == 50 == store.memory.memory_items("t1")
        svc.delete_item("t1", "ns0", next(iter(svc.search("t1", "ns0", vector=[1.0] * 32, k=1)))["id"])
        svc.store_items("t1", "ns0", [{"id": "again", "vector": [1.0] * 32}])  # a delete frees its place
        with pytest.raises(RateLimited):
            svc.store_items("t1", "ns0", [{"id": "over", "vector": [1.0] * 32}])
        svc.store_items("t1", "ns0", [{"id": "again", "vector": [0.5] * 32}])  # replacing adds nothing
    finally:
        store.close()


def test_writers_racing_to_create_one_namespace_all_store(pg_url: str) -> None:
    # two API replicas (or workers) storing the first items of a namespace at the same moment: the
    # creator wins, the others wait for it and add to the namespace it made (neither gets a 500)
    store = Repositories.from_url(pg_url)
    try:
        svc = MemoryService(store.memory)
        each_round = threading.Barrier(4)

        def work(n: int) -> None:
            for r in range(25):
                each_round.wait()
                try:
                    svc.store_items("t1", f"new{r}", [{"id": f"w{n}", "text": "x"}])
                except BaseException:
                    each_round.abort()  # the others stop at the next round instead of waiting for this one
                    raise

        assert _run_all(work, 4) == []
        assert all(ns["items"] == 4 for ns in svc.namespaces("t1"))
        assert store.memory.memory_items("t1") == 25 * 4
    finally:
        store.close()


def test_concurrent_writers_to_one_namespace_are_all_followed_by_a_reader(pg_url: str) -> None:
    store = Repositories.from_url(pg_url)
    try:
        reader = MemoryService(store.memory)
        reader.store_items("t1", "shared", [{"id": "seed", "vector": [1.0] * 32}])
        writing = [True]

        def work(n: int) -> None:
            if n == 4:  # the reader keeps refreshing its cache while the writers commit
                while writing[0]:
                    reader.search("t1", "shared", vector=[1.0] * 32, k=5)
                return
            svc = MemoryService(store.memory)
            for b in range(10):
                svc.store_items("t1", "shared", _items(f"w{n}b{b}-", _vectors(20, seed=n * 100 + b)))
            svc.store_items("t1", "shared", _items(f"w{n}b0-", _vectors(5, seed=n)))  # replaces, adds nothing
            if n == 0:
                writing[0] = False

        assert _run_all(work, 5) == []
        hits = reader.search("t1", "shared", vector=[1.0] * 32, k=1000)
        assert len(hits) == 1 + 4 * 10 * 20  # every item, none twice
        assert store.memory.memory_items("t1") == len(hits)
        assert len({h["id"] for h in hits}) == len(hits)
    finally:
        store.close()


def test_a_namespace_over_the_budget_is_served_from_int8_codes_with_an_exact_rerank(store: Repositories) -> None:
    vectors = _vectors(600, dim=48)
    MemoryService(store.memory).store_items("t1", "big", _items("v", vectors))
    whole, lean = MemoryService(store.memory, budget=1 << 30), MemoryService(store.memory, budget=1)
    queries = _vectors(10, dim=48, seed=7)
    for q in queries:
        exact = [f"v{r}" for r in np.argsort(-(vectors @ q), kind="stable")[:10]]
        a = whole.search("t1", "big", vector=q.tolist(), k=10)
        b = lean.search("t1", "big", vector=q.tolist(), k=10)
        assert [h["id"] for h in b] == exact == [h["id"] for h in a]
        np.testing.assert_allclose([h["score"] for h in b], np.sort(vectors @ q)[::-1][:10], rtol=1e-5)
        assert b[0]["metadata"] == {"i": int(b[0]["id"][1:])}
    assert [(c.tier, c.items) for c in whole.cached()] == [("full", 600)]
    assert [(c.tier, c.items) for c in lean.cached()] == [("int8", 600)]
    assert lean.cached()[0].nbytes < whole.cached()[0].nbytes


def test_int8_tier_follows_writes_and_drops_deleted_candidates(store: Repositories) -> None:
    writer, lean = MemoryService(store.memory), MemoryService(store.memory, budget=1)
    vectors = _vectors(100)
    writer.store_items("t1", "ns", _items("v", vectors))
    q = vectors[3].tolist()
    assert lean.search("t1", "ns", vector=q, k=1)[0]["id"] == "v3"
    writer.delete_item("t1", "ns", "v3")
    writer.store_items("t1", "ns", [{"id": "twin", "vector": q, "metadata": {"kind": "twin"}}])
    top = lean.search("t1", "ns", vector=q, k=2)
    assert top[0]["id"] == "twin" and top[0]["metadata"] == {"kind": "twin"} and top[1]["id"] != "v3"
    assert [h["id"] for h in lean.search("t1", "ns", vector=q, k=3, filter={"kind": "twin"})] == ["twin"]


def test_rows_stored_before_codes_existed_still_load(pg_url: str) -> None:
    store = Repositories.from_url(pg_url)
    try:
        vectors = _vectors(50)
        MemoryService(store.memory).store_items("t1", "old", _items("v", vectors))
        store.db.execute_sql("UPDATE ab_memory_items SET code = NULL WHERE item_id IN ('v1', 'v2', 'v3')")
        lean = MemoryService(store.memory, budget=1)
        for i in (1, 2, 3, 4):
            assert lean.search("t1", "old", vector=vectors[i].tolist(), k=1)[0]["id"] == f"v{i}"
        assert lean.cached()[0].items == 50
    finally:
        store.close()


def test_least_recently_searched_namespaces_are_dropped_over_the_budget(store: Repositories) -> None:
    writer = MemoryService(store.memory)
    for name in ("a", "b", "c"):
        writer.store_items("t1", name, _items(name, _vectors(200, seed=ord(name))))
    one = MemoryService(store.memory)
    one.search("t1", "a", vector=[1.0] * 32)
    per_namespace = one.cached()[0].nbytes
    svc = MemoryService(store.memory, budget=int(per_namespace * 2.5))  # room for two namespaces, not three
    for name in ("a", "b", "a", "c"):
        assert svc.search("t1", name, vector=[1.0] * 32, k=1)
    assert [c.namespace_id for c in svc.cached()] == ["t1/a", "t1/c"]  # b was the least recently searched
    assert svc.search("t1", "b", vector=_vectors(200, seed=ord("b"))[5].tolist(), k=1)[0]["id"] == "b5"
    assert [c.namespace_id for c in svc.cached()] == ["t1/c", "t1/b"]
    assert sum(c.nbytes for c in svc.cached()) <= svc.budget


def test_a_cold_load_never_blocks_searches_of_other_namespaces(pg_url: str) -> None:
    store = Repositories.from_url(pg_url)
    try:
        writer = MemoryService(store.memory)
        writer.store_items("t1", "slow", _items("s", _vectors(10)))
        writer.store_items("t1", "fast", _items("f", _vectors(10, seed=1)))
        loading, release = threading.Event(), threading.Event()
        real_plan, real_changes = store.memory.load_plan, store.memory.changes_since

        def held(real: Callable[..., Any]) -> Callable[..., Any]:
            def call(ns_id: str, *args: Any, **kwargs: Any) -> Any:
                if ns_id == "t1/slow":
                    loading.set()
                    release.wait(60)
                return real(ns_id, *args, **kwargs)

            return call

        store.memory.load_plan = held(real_plan)  # type: ignore[method-assign]
        store.memory.changes_since = held(real_changes)  # type: ignore[method-assign]
        svc = MemoryService(store.memory)
        slow = threading.Thread(target=lambda: svc.search("t1", "slow", vector=[1.0] * 32))
        slow.start()
        assert loading.wait(30)
        answered: list[Any] = []
        fast = threading.Thread(target=lambda: answered.append(svc.search("t1", "fast", vector=[1.0] * 32, k=1)))
        fast.start()
        fast.join(30)  # with one service-wide lock this waits for the slow load, which waits for us
        try:
            assert answered and not release.is_set()
        finally:
            release.set()
            slow.join(30)
            fast.join(30)
    finally:
        store.close()


NOTES = [
    ("n1", "Invoice INV-2024-0042 was refunded to the customer"),
    ("n2", "Invoice INV-2024-0043 is waiting for approval"),
    ("n3", "The customer asked for a refund of their invoice"),
    ("n4", "Deploy of service user_42 failed on the staging cluster"),
    ("n5", "Refunds are processed within five business days"),
    ("n6", "Staging cluster upgrade planned for Friday"),
]


def test_hybrid_search_ranks_an_exact_id_first_and_applies_the_filter(store: Repositories) -> None:
    svc = MemoryService(store.memory)
    svc.store_items("t1", "notes", [{"id": i, "text": t, "metadata": {"n": int(i[1:])}} for i, t in NOTES])
    assert svc.search("t1", "notes", q="INV-2024-0042", k=3, mode="hybrid")[0]["id"] == "n1"
    assert svc.search("t1", "notes", q="user_42", k=3, mode="hybrid")[0]["id"] == "n4"
    hits = svc.search("t1", "notes", q="INV-2024-0042 refund", k=3, mode="hybrid", filter={"n": {"$gte": 2}})
    assert hits[0]["id"] == "n2" and "n1" not in {h["id"] for h in hits}
    assert hits[0]["text"] == NOTES[1][1] and hits[0]["metadata"] == {"n": 2}
    fused = svc.search("t1", "notes", q="refund invoice", k=6, mode="hybrid")
    assert [h["score"] for h in fused] == sorted((h["score"] for h in fused), reverse=True)


def test_hybrid_search_follows_stores_and_deletes_through_other_replicas(store: Repositories) -> None:
    writer, reader = MemoryService(store.memory), MemoryService(store.memory)
    writer.store_items("t1", "notes", [{"id": i, "text": t} for i, t in NOTES])
    assert reader.search("t1", "notes", q="INV-2024-0042", k=1, mode="hybrid")[0]["id"] == "n1"
    writer.store_items("t1", "notes", [{"id": "n7", "text": "Ticket ZX-9001 reopened"}])
    writer.delete_item("t1", "notes", "n1")
    assert reader.search("t1", "notes", q="ZX-9001", k=1, mode="hybrid")[0]["id"] == "n7"
    assert "n1" not in {h["id"] for h in reader.search("t1", "notes", q="INV-2024-0042", k=6, mode="hybrid")}


def test_hybrid_search_is_charged_follows_rewrites_and_stays_in_its_tenant(store: Repositories) -> None:
    writer, reader = MemoryService(store.memory), MemoryService(store.memory)
    writer.store_items("t1", "notes", [{"id": i, "text": t} for i, t in NOTES])
    writer.store_items("t2", "notes", [{"id": "other", "text": "Ticket ZX-9001 of another tenant"}])
    reader.search("t1", "notes", q="refund", k=3)
    vectors_only = reader.cached()[0].nbytes
    reader.search("t1", "notes", q="refund", k=3, mode="hybrid")
    assert reader.cached()[0].nbytes > vectors_only  # the keyword index counts against the budget
    writer.store_items("t1", "notes", [{"id": "n2", "text": "Ticket ZX-9001 escalated"}])  # a new text
    writer.store_items("t1", "notes", [{"id": "n4", "vector": [0.1] * 384}])  # no text any more
    hits = reader.search("t1", "notes", q="ZX-9001", k=6, mode="hybrid")
    assert hits[0]["id"] == "n2" and "other" not in {h["id"] for h in hits}
    reader.search("t1", "notes", q="user_42", k=1, mode="hybrid")
    keywords = next(c.keywords for c in reader._cache.values() if c.keywords is not None)
    assert keywords.search("user_42", 5) == [] and keywords.search("zx-9001", 5)[0][0] == "n2"


def test_a_namespace_whose_keyword_index_passes_the_budget_gives_up_its_rerank_originals(
    store: Repositories,
) -> None:
    texts = [f"note {i} on ticket ZX-{i % 40} of team {i % 7}" for i in range(400)]
    MemoryService(store.memory).store_items("t1", "notes", [{"id": f"n{i}", "text": t} for i, t in enumerate(texts)])
    whole = MemoryService(store.memory, budget=1 << 30)
    whole.search("t1", "notes", q="ticket", k=3)
    vectors_only = whole.cached()[0].nbytes
    wanted = {q: [h["id"] for h in whole.search("t1", "notes", q=q, k=10, mode="hybrid")] for q in ("ZX-7", "team 3")}
    with_keywords = whole.cached()[0].nbytes
    # room for the vectors whole, not for the keyword index beside them
    tight = MemoryService(store.memory, budget=(vectors_only + with_keywords) // 2)
    near = [h["id"] for h in tight.search("t1", "notes", q="team 5 note", k=10)]
    assert tight.cached()[0].tier == "full"
    for q, ids in wanted.items():
        assert [h["id"] for h in tight.search("t1", "notes", q=q, k=10, mode="hybrid")] == ids
    (entry,) = tight.cached()
    assert entry.tier == "int8" and entry.nbytes <= tight.budget
    assert [h["id"] for h in tight.search("t1", "notes", q="team 5 note", k=10)] == near  # re-ranked from the store


def test_hybrid_search_needs_text_and_modes_are_checked(store: Repositories) -> None:
    svc = MemoryService(store.memory)
    svc.store_items("t1", "notes", [{"id": i, "text": t} for i, t in NOTES])
    with pytest.raises(ValidationFailed):
        svc.search("t1", "notes", vector=[0.1] * 384, mode="hybrid")
    with pytest.raises(InvalidInput):
        svc.search("t1", "notes", q="refund", mode="keyword")


def test_text_and_metadata_round_trip_through_the_bulk_insert(store: Repositories) -> None:
    odd = "tab\there\nnew line \\N back\\slash \r é 日本 \x1e\x1f 🙂"
    svc = MemoryService(store.memory)
    svc.store_items("t1", "odd", [{"id": "x\ty\\N", "text": odd, "metadata": {"k\n": odd, "n": None}, "ttl": 3600}])
    item = svc.get_item("t1", "odd", "x\ty\\N")
    assert item["text"] == odd and item["metadata"] == {"k\n": odd, "n": None} and item["expires_at"] > 0
    lean = MemoryService(store.memory, budget=1)  # loads ids and metadata from the aggregated chunks
    hit = lean.search("t1", "odd", q=odd, k=1)[0]
    assert hit["id"] == "x\ty\\N" and hit["metadata"] == {"k\n": odd, "n": None}
