"""Keyword search (BM25) and reciprocal rank fusion, without any store."""

from __future__ import annotations

import math

from agentbus.memory.keywords import RRF_K, KeywordIndex, fuse, terms


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
