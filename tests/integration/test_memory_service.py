"""Memory over the store: round trips on PostgreSQL and SQLite, caches that follow other writers, bad input."""

from __future__ import annotations

import math
import time

import pytest

from agentbus.domain import NotFound, PayloadTooLarge, RateLimited, ValidationFailed
from agentbus.services import MemoryService
from agentbus.store import Repositories

DOCS = [
    {"id": "bees", "text": "bees make honey in their hives", "metadata": {"kind": "insect", "year": 2020}},
    {"id": "ants", "text": "ants build colonies underground", "metadata": {"kind": "insect", "year": 2022}},
    {"id": "cars", "text": "cars drive on roads with engines", "metadata": {"kind": "machine", "year": 2021}},
    {"id": "kite", "text": "a kite flies on a windy day", "metadata": {"kind": "toy", "year": 2019}},
]


def ids(hits: list[dict]) -> list[str]:  # type: ignore[type-arg]
    return [h["id"] for h in hits]


def test_store_search_get_delete_round_trip(store: Repositories) -> None:
    svc = MemoryService(store.memory)
    assert svc.store_items("t1", "docs", DOCS) == ["bees", "ants", "cars", "kite"]
    hits = svc.search("t1", "docs", q="where do bees keep their honey", k=2)
    assert hits[0]["id"] == "bees" and hits[0]["text"] == DOCS[0]["text"]
    assert hits[0]["metadata"] == {"kind": "insect", "year": 2020} and hits[0]["score"] > hits[1]["score"]
    assert svc.get_item("t1", "docs", "ants")["text"] == "ants build colonies underground"
    assert svc.namespaces("t1") == [{"name": "docs", "dim": 384, "items": 4, "embedder": "hash"}]
    svc.delete_item("t1", "docs", "bees")
    assert "bees" not in ids(svc.search("t1", "docs", q="bees honey hives", k=4))
    with pytest.raises(NotFound):
        svc.get_item("t1", "docs", "bees")
    with pytest.raises(NotFound):
        svc.delete_item("t1", "docs", "bees")


def test_upsert_replaces_text_vector_and_metadata(store: Repositories) -> None:
    svc = MemoryService(store.memory)
    svc.store_items("t1", "docs", DOCS)
    svc.store_items("t1", "docs", [{"id": "kite", "text": "honey bees dance", "metadata": {"kind": "dance"}}])
    top = svc.search("t1", "docs", q="honey bees dance", k=1)[0]
    assert top == {"id": "kite", "text": "honey bees dance", "metadata": {"kind": "dance"}, "score": top["score"]}
    assert svc.namespaces("t1")[0]["items"] == 4


def test_a_second_process_cache_follows_stores_and_deletes(store: Repositories) -> None:
    one, two = MemoryService(store.memory), MemoryService(store.memory)  # two replicas' caches over one database
    one.store_items("t1", "docs", DOCS[:2])
    assert set(ids(two.search("t1", "docs", q="insects", k=10))) == {"bees", "ants"}
    one.store_items("t1", "docs", DOCS[2:])
    one.delete_item("t1", "docs", "ants")
    assert set(ids(two.search("t1", "docs", q="insects", k=10))) == {"bees", "cars", "kite"}
    one.delete_namespace("t1", "docs")
    with pytest.raises(NotFound):
        two.search("t1", "docs", q="insects")


def test_filters_apply_before_the_top_k(store: Repositories) -> None:
    svc = MemoryService(store.memory)
    svc.store_items("t1", "docs", DOCS)
    query = "bees honey hives"
    assert ids(svc.search("t1", "docs", q=query, k=2, filter={"kind": "machine"})) == ["cars"]
    assert set(ids(svc.search("t1", "docs", q=query, k=5, filter={"kind": {"$in": ["toy", "machine"]}}))) == {
        "kite",
        "cars",
    }
    assert ids(svc.search("t1", "docs", q=query, k=5, filter={"year": {"$gte": 2021, "$lt": 2022}})) == ["cars"]


def test_expired_items_are_never_returned(store: Repositories) -> None:
    svc = MemoryService(store.memory)
    # a ttl long enough that a loaded CI machine still searches before it ends (0.3 s was not)
    svc.store_items("t1", "docs", [{"id": "brief", "text": "bees bees bees", "ttl": 2.0}, *DOCS[1:]])
    assert ids(svc.search("t1", "docs", q="bees", k=1)) == ["brief"]
    time.sleep(2.1)
    assert "brief" not in ids(svc.search("t1", "docs", q="bees", k=10))
    with pytest.raises(NotFound):
        svc.get_item("t1", "docs", "brief")


def test_client_vectors_and_dimension_checks(store: Repositories) -> None:
    svc = MemoryService(store.memory)
    svc.store_items("t1", "vecs", [{"id": "x", "vector": [1, 0, 0]}, {"id": "y", "vector": [0, 1, 0]}])
    assert ids(svc.search("t1", "vecs", vector=[0.9, 0.1, 0], k=1)) == ["x"]
    with pytest.raises(ValidationFailed):
        svc.store_items("t1", "vecs", [{"id": "z", "vector": [1, 0]}])  # wrong dimension for the namespace
    with pytest.raises(ValidationFailed):
        svc.search("t1", "vecs", vector=[1, 0])
    with pytest.raises(ValidationFailed):
        svc.search("t1", "vecs", q="text into a 3-d namespace")  # the embedder is 384-d


@pytest.mark.parametrize(
    ("items", "error"),
    [
        ([{"id": "a"}], ValidationFailed),  # no text and no vector
        ([{"id": "a", "vector": [math.nan, 1.0, 0.0]}], ValidationFailed),
        ([{"id": "a", "vector": [math.inf, 1.0, 0.0]}], ValidationFailed),
        ([{"id": "a", "vector": [0.0, 0.0, 0.0]}], ValidationFailed),
        ([{"id": "a", "text": "x", "ttl": -1}], ValidationFailed),
        ([], ValidationFailed),
        ([{"text": f"t{i}"} for i in range(6)], PayloadTooLarge),
    ],
)
def test_bad_batches_store_nothing(store: Repositories, items: list[dict], error: type[Exception]) -> None:  # type: ignore[type-arg]
    svc = MemoryService(store.memory, max_batch=5)
    with pytest.raises(error):
        svc.store_items("t1", "docs", [{"id": "ok", "text": "fine"}, *items] if items else [])
    assert svc.namespaces("t1") == [] or svc.namespaces("t1")[0]["items"] == 0


def test_bad_searches(store: Repositories) -> None:
    svc = MemoryService(store.memory)
    svc.store_items("t1", "docs", DOCS)
    for k in (0, 1001, -1):
        with pytest.raises(ValidationFailed):
            svc.search("t1", "docs", q="bees", k=k)
    with pytest.raises(ValidationFailed):
        svc.search("t1", "docs")  # neither q nor vector
    with pytest.raises(ValidationFailed):
        svc.search("t1", "docs", q="bees", filter={"year": {"$near": 3}})
    with pytest.raises(NotFound):
        svc.search("t1", "nowhere", q="bees")


def test_namespaces_are_per_tenant_and_capped(store: Repositories) -> None:
    svc = MemoryService(store.memory, max_items=5)
    svc.store_items("t1", "docs", DOCS)
    with pytest.raises(NotFound):
        svc.search("t2", "docs", q="bees")
    assert svc.namespaces("t2") == []
    with pytest.raises(RateLimited):
        svc.store_items("t1", "more", DOCS[:2])  # 4 + 2 > 5
    svc.store_items("t2", "docs", DOCS[:2])  # another tenant's cap is its own


def test_a_tenants_first_batch_over_its_cap_is_refused_whole(store: Repositories) -> None:
    svc = MemoryService(store.memory, max_items=3)
    with pytest.raises(RateLimited):
        svc.store_items("t1", "docs", DOCS)  # 4 > 3, and the tenant has no count yet
    assert store.memory.memory_items("t1") == 0
    assert [ns["items"] for ns in svc.namespaces("t1")] in ([], [0])
    svc.store_items("t1", "docs", DOCS[:3])
    assert store.memory.memory_items("t1") == 3 == svc.namespaces("t1")[0]["items"]
