"""VectorIndex: upsert/delete, filters before the top-k, TTL, compaction, incremental apply."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest

from agentbus.memory import (
    DimensionMismatchError,
    InvalidFilterError,
    InvalidKError,
    InvalidVectorError,
    Item,
    ItemNotFoundError,
    MemoryInputError,
    VectorIndex,
)

DIM = 24


def unit(rng: np.random.Generator, n: int) -> np.ndarray:
    x = rng.standard_normal((n, DIM)).astype(np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


@pytest.fixture(params=["int8", "float32"])
def index(request: pytest.FixtureRequest) -> VectorIndex:
    return VectorIndex(DIM, storage=request.param, capacity=8)


def ids_of(hits: list) -> list[str]:
    return [h.id for h in hits]


def test_upsert_search_and_growth(index: VectorIndex) -> None:
    rng = np.random.default_rng(0)
    x = unit(rng, 500)
    index.upsert_many([f"d{i}" for i in range(500)], x, [{"i": i} for i in range(500)])
    assert len(index) == 500 and "d7" in index
    hits = index.search(x[42], k=3)
    assert hits[0].id == "d42" and hits[0].metadata == {"i": 42}
    assert hits[0].score == pytest.approx(1.0, abs=1e-3)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    batch = index.search_batch(x[:5], k=1)
    assert [b[0].id for b in batch] == [f"d{i}" for i in range(5)]


def test_upsert_replaces_and_delete_removes(index: VectorIndex) -> None:
    rng = np.random.default_rng(1)
    x = unit(rng, 3)
    index.upsert("a", x[0], {"v": 1})
    index.upsert("b", x[1])
    version = index.version
    index.upsert("a", x[2], {"v": 2})
    assert index.version > version and len(index) == 2
    assert index.search(x[2], k=1)[0].id == "a"
    assert index.get("a").metadata == {"v": 2}
    assert index.delete("a") is True and index.delete("a") is False
    assert ids_of(index.search(x[2], k=5)) == ["b"]
    with pytest.raises(ItemNotFoundError):
        index.get("a")


def test_duplicate_ids_in_one_batch_keep_the_last(index: VectorIndex) -> None:
    x = unit(np.random.default_rng(2), 3)
    index.upsert_many(["a", "b", "a"], x, [{"n": 0}, {"n": 1}, {"n": 2}])
    assert len(index) == 2 and index.get("a").metadata == {"n": 2}
    assert index.search(x[2], k=1)[0].id == "a"


def test_filters_apply_before_top_k(index: VectorIndex) -> None:
    rng = np.random.default_rng(3)
    x = unit(rng, 400)
    q = x[0]
    near = np.argsort(-(x @ q))[:50]  # the 50 nearest rows are all tenant "a"
    metas = [{"tenant": "a" if i in set(near.tolist()) else "b", "n": i % 10, "flag": i % 2 == 0} for i in range(400)]
    index.upsert_many([str(i) for i in range(400)], x, metas)
    hits = index.search(q, k=10, filter={"tenant": "b"})
    assert len(hits) == 10 and all(h.metadata["tenant"] == "b" for h in hits)
    exact_b = [str(i) for i in np.argsort(-(x @ q)) if metas[i]["tenant"] == "b"][:10]
    assert ids_of(hits) == exact_b
    assert all(h.metadata["n"] in (3, 4) for h in index.search(q, k=20, filter={"n": {"$in": [3, 4]}}))
    hits = index.search(q, k=20, filter={"n": {"$gte": 2, "$lt": 4}, "tenant": {"$ne": "a"}})
    assert hits and all(2 <= h.metadata["n"] < 4 and h.metadata["tenant"] == "b" for h in hits)
    assert all(h.metadata["flag"] is True for h in index.search(q, k=20, filter={"flag": True}))
    assert index.search(q, k=5, filter={"tenant": "nobody"}) == []
    # a column built by a filter follows later upserts
    index.upsert("0", x[0], {"tenant": "b", "n": 3})
    assert index.search(q, k=1, filter={"tenant": "b"})[0].id == "0"


def test_expired_items_are_never_returned(index: VectorIndex) -> None:
    x = unit(np.random.default_rng(4), 3)
    index.upsert_many(["old", "new", "forever"], x, expires_at=[100.0, 200.0, None])
    assert ids_of(index.search(x[0], k=3, now=50.0))[0] == "old"
    assert "old" not in ids_of(index.search(x[0], k=3, now=100.0))
    assert ids_of(index.search(x[0], k=3, now=250.0)) == ["forever"]
    assert index.purge_expired(now=150.0) == ["old"]
    assert len(index) == 2 and index.get("new").expires_at == 200.0


def test_compaction_keeps_results(index: VectorIndex) -> None:
    rng = np.random.default_rng(5)
    x = unit(rng, 3000)
    index.upsert_many([f"d{i}" for i in range(3000)], x, [{"i": i} for i in range(3000)])
    index.delete_many([f"d{i}" for i in range(0, 3000, 2)])  # 1500 dead > a quarter: compacts
    assert index._dead == 0 and index._n == 1500 and len(index) == 1500
    hits = index.search(x[7], k=1, filter={"i": {"$lte": 10}})
    assert hits[0].id == "d7" and hits[0].metadata == {"i": 7}
    assert index.search(x[8], k=1)[0].id != "d8"


def test_apply_changes_and_cursor(index: VectorIndex) -> None:
    x = unit(np.random.default_rng(6), 3)
    index.apply(upserts=[Item("a", x[0].tolist()), Item("b", x[1], {"k": "v"}, None)], cursor=10)
    assert index.cursor == 10 and len(index) == 2
    index.apply(upserts=[Item("c", x[2])], deletes=["a", "zzz"], cursor=11)
    assert index.cursor == 11 and sorted(ids_of(index.search(x[0], k=5))) == ["b", "c"]


def test_bad_input_raises_clear_errors(index: VectorIndex) -> None:
    x = unit(np.random.default_rng(7), 1)[0]
    with pytest.raises(DimensionMismatchError, match="dimension 3"):
        index.upsert("a", [1.0, 2.0, 3.0])
    with pytest.raises(DimensionMismatchError):
        index.search(np.zeros(DIM + 1), k=1)
    bad = x.copy()
    bad[3] = np.nan
    with pytest.raises(InvalidVectorError, match="NaN"):
        index.upsert("a", bad)
    bad[3] = np.inf
    with pytest.raises(InvalidVectorError):
        index.search(bad)
    with pytest.raises(InvalidVectorError, match="zeros"):
        index.upsert("a", np.zeros(DIM))
    with pytest.raises(InvalidVectorError):
        index.upsert("a", ["x"] * DIM)
    for k in (0, -1, 1001, 2.5, True):
        with pytest.raises(InvalidKError):
            index.search(x, k=k)
    with pytest.raises(InvalidFilterError, match="unknown operator"):
        index.search(x, filter={"n": {"$regex": "a"}})
    with pytest.raises(MemoryInputError):
        index.upsert("", x)
    with pytest.raises(MemoryInputError):
        index.upsert_many(["a", "b"], [x])
    assert len(index) == 0  # nothing half-stored


def test_ip_metric_keeps_magnitudes() -> None:
    index = VectorIndex(2, metric="ip")
    index.upsert_many(["small", "big"], [[1.0, 0.0], [3.0, 0.0]])
    hits = index.search([1.0, 0.0], k=2)
    assert ids_of(hits) == ["big", "small"] and hits[0].score == pytest.approx(3.0, rel=1e-3)
    with pytest.raises(InvalidVectorError, match="float16"):
        index.upsert("huge", [1e6, 0.0])


def _stored(x: np.ndarray) -> tuple[list[str], Callable[[list[str]], np.ndarray], list[int]]:
    """Ids ``d0``, ``d1``, ... of the rows of ``x``, a fetcher of their originals (as the store's
    read would be), and the sizes of the fetches it served."""
    calls: list[int] = []

    def fetch(ids: list[str]) -> np.ndarray:
        calls.append(len(ids))
        return x[[int(i[1:]) for i in ids]]

    return [f"d{i}" for i in range(len(x))], fetch, calls


def test_int8_only_index_reranks_with_fetched_originals() -> None:
    rng = np.random.default_rng(8)
    x = unit(rng, 2000)
    q = unit(rng, 5)
    names, fetch, calls = _stored(x)
    lean = VectorIndex(DIM, rerank="none", fetch_vectors=fetch)
    lean.upsert_many(names, x)
    got = lean.search_batch(q, k=10)
    assert calls and calls[0] <= 5 * 80
    for j in range(5):
        exact = np.argsort(-(x @ q[j]), kind="stable")[:10]
        assert ids_of(got[j]) == [names[i] for i in exact]
        assert [h.score for h in got[j]] == pytest.approx((x @ q[j])[exact].tolist(), abs=1e-5)


def test_an_index_that_drops_its_originals_reranks_from_the_fetcher_and_keeps_taking_writes() -> None:
    rng = np.random.default_rng(9)
    x = unit(rng, 1500)
    q = unit(rng, 4)
    names, fetch, fetched = _stored(x)
    index = VectorIndex(DIM, capacity=8)
    index.upsert_many(names[:1000], x[:1000])
    before = index.nbytes
    assert index.drop_originals(fetch) > 0 and index.nbytes < before
    assert index.drop_originals(fetch) == 0  # already int8-only
    index.upsert_many(names[1000:], x[1000:])  # rows written after the drop keep no originals either
    got = index.search_batch(q, k=10)
    assert fetched
    for j in range(4):
        exact = np.argsort(-(x @ q[j]), kind="stable")[:10]
        assert ids_of(got[j]) == [names[i] for i in exact]
    assert VectorIndex(DIM, rerank="none").drop_originals(fetch) == 0


def test_constructor_validation() -> None:
    with pytest.raises(ValueError):
        VectorIndex(0)
    with pytest.raises(ValueError):
        VectorIndex(4, storage="int4")
    lean = VectorIndex(4, rerank="none")
    lean.upsert("a", [1, 0, 0, 0])
    assert lean.search([1, 0, 0, 0], k=1)[0].score == pytest.approx(1.0, abs=1e-2)
    assert lean.nbytes < VectorIndex(4).nbytes
