"""Keyword search (BM25) and reciprocal rank fusion, without any store."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from agentbus.memory import VectorIndex, keywords
from agentbus.memory.keywords import RRF_K, KeywordIndex, batch_terms, fuse, terms


def test_terms_keep_ids_whole_and_in_parts() -> None:
    assert terms("Ticket INV-2024-0042, owner user_42.") == [
        "ticket",
        "inv",
        "2024",
        "0042",
        "owner",
        "user",
        "42",
        "inv-2024-0042",
        "user_42",
    ]


def test_batch_terms_are_each_texts_terms() -> None:
    texts = [
        "Ticket INV-2024-0042, owner user_42.",
        "",
        "Ünïcode ﬁle (x) ½ x²",
        "nul\x00inside a-b",
        'tabs\tand\u00a0nbsp\u2003em\x1cfs "quoted" (a.b) __ _ ... x_y!? ¿qué?',
    ]
    assert batch_terms(texts) == [terms(t) for t in texts]
    assert batch_terms(texts[:3]) == [terms(t) for t in texts[:3]]


def test_bm25_scores_match_the_formula_and_prefer_rare_terms() -> None:
    index = KeywordIndex()
    index.set("a", "apple banana")
    index.set("b", "apple apple cherry")
    index.set("c", "banana")
    (best, score), *_ = index.search("cherry", 3)
    n, df, avg = 3, 1, (2 + 3 + 1) / 3
    idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
    assert best == "b" and math.isclose(score, idf * 2.2 / (1 + 1.2 * (0.25 + 0.75 * 3 / avg)))
    assert [i for i, _ in index.search("apple cherry", 3)] == ["b", "a"]  # items sharing no term are left out
    assert index.search("durian", 3) == []


def test_reindexing_and_removing_an_item_updates_the_postings() -> None:
    index = KeywordIndex()
    index.set("a", "order ZX-9001 shipped")
    index.set("a", "order cancelled")
    assert index.search("ZX-9001", 5) == [] and [i for i, _ in index.search("cancelled", 5)] == ["a"]
    index.remove("a")
    index.remove("never-there")
    assert len(index) == 0 and index.search("order", 5) == []


def test_fusion_adds_reciprocal_ranks() -> None:
    fused = dict(fuse([["x", "y", "z"], ["y", "w"]]))
    assert math.isclose(fused["y"], 1 / (RRF_K + 2) + 1 / (RRF_K + 1))
    assert [i for i, _ in fuse([["x", "y", "z"], ["y", "w"]])] == ["y", "x", "w", "z"]


def _reference_bm25(
    docs: dict[str, str], query: str, k: int, k1: float = 1.2, b: float = 0.75
) -> list[tuple[str, float]]:
    """BM25 written out plainly: the ranking the array index must give."""
    tokenized = {i: terms(t) for i, t in docs.items() if terms(t)}
    n = len(tokenized)
    avg = sum(len(w) for w in tokenized.values()) / n
    scores: dict[str, float] = {}
    for term in sorted(set(terms(query))):
        having = {i: w.count(term) for i, w in tokenized.items() if term in w}
        idf = math.log(1.0 + (n - len(having) + 0.5) / (len(having) + 0.5))
        for i, tf in having.items():
            norm = k1 * (1.0 - b + b * len(tokenized[i]) / avg)
            scores[i] = scores.get(i, 0.0) + idf * tf * (k1 + 1.0) / (tf + norm)
    return sorted(scores.items(), key=lambda e: (-e[1], e[0]))[:k]


def _corpus(rng: random.Random, n: int, start: int = 0) -> dict[str, str]:
    words = ["alpha", "beta", "gamma", "delta", "INV-2024-0042", "user_42", "refund", "note", "deploy", "x"]
    return {
        f"d{j:04d}": " ".join(rng.choice(words) for _ in range(rng.randint(0, 9))) + f" n{j % 7}"
        for j in range(start, start + n)
    }


QUERIES = ["alpha", "note deploy", "INV-2024-0042 refund", "user_42 n3", "x x beta", "nothing-here", "n1 n2 n5 gamma"]


def _assert_same(index: KeywordIndex, docs: dict[str, str]) -> None:
    for q in QUERIES:
        for k in (1, 5, 40, 1000):
            got, want = index.search(q, k), _reference_bm25(docs, q, k)
            assert [i for i, _ in got] == [i for i, _ in want], (q, k)
            assert all(math.isclose(a, b, rel_tol=1e-12) for (_, a), (_, b) in zip(got, want, strict=True))


def test_the_array_index_ranks_as_plain_bm25_through_bulk_load_writes_deletes_and_merges(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(keywords, "_MERGE_MIN", 50)  # merges happen within this small corpus
    rng = random.Random(7)
    docs = _corpus(rng, 300)
    index = KeywordIndex()
    index.set_many(list(docs), list(docs.values()))  # into an empty index: the bulk (CSR) build
    _assert_same(index, docs)
    for round_ in range(4):  # rewrites, deletes and new items land in the delta, then merge
        changed = _corpus(rng, 60, start=250 + 40 * round_)
        for item_id, text in changed.items():
            index.set(item_id, text)
        docs.update(changed)
        for item_id in rng.sample(sorted(docs), 25):
            index.remove(item_id)
            del docs[item_id]
        _assert_same(index, docs)


def test_the_keyword_index_follows_the_vector_index_rows_through_a_compaction() -> None:
    rng = random.Random(3)
    docs = _corpus(rng, 3000)
    vectors = VectorIndex(8)
    vectors.upsert_many(list(docs), np.random.default_rng(0).standard_normal((len(docs), 8)).astype(np.float32))
    index = KeywordIndex(rows=vectors)
    index.set_many(list(docs), list(docs.values()))
    vectors.on_compact.append(index.remap)
    gone = rng.sample(sorted(docs), 1200)  # over a quarter of the rows: the vector index compacts
    index.remove_many(gone)
    vectors.delete_many(gone)
    for item_id in gone:
        del docs[item_id]
    assert len(vectors) == len(docs) and len(index) == len(docs)
    _assert_same(index, docs)
    rows, _ = index.search_rows("alpha", 5, vectors.row_mask({"missing": 1}))  # the mask admits nothing
    assert rows.shape == (0,)


def test_the_bulk_build_indexes_each_text_as_its_terms_say() -> None:
    texts = [
        "Ticket INV-2024-0042, owner user_42.",
        "Ünïcode ﬁle (x) ½ x² café-crème",
        "...",
        "",
        "tabs\tand\u00a0nbsp (a.b) __ x_y!? ¿qué? INV-2024-0042",
        "ascii only: deploy step 3, alpha-7",
    ]
    for chunk in (texts, texts[-1:], [t for t in texts if t.isascii()]):  # non-ASCII chunks and ASCII ones
        ids = [f"d{j}" for j in range(len(chunk))]
        bulk, one_by_one = KeywordIndex(), KeywordIndex()
        bulk.load([(ids, chunk)])
        one_by_one.set("seed", "zzz")  # the first write into an empty index is a bulk build: the rest are not
        for item_id, text in zip(ids, chunk, strict=True):
            one_by_one.set(item_id, text)
        one_by_one.remove("seed")
        assert len(bulk) == len(one_by_one)
        for q in ["inv-2024-0042", "x", "café-crème crème", "qué", "alpha-7 3", "a.b x_y", "½"]:
            assert bulk.search(q, 10) == one_by_one.search(q, 10), q
