"""Keyword search (BM25 over the items' text) and reciprocal rank fusion with the vector ranking.

Agents look things up by names and ids (``INV-2024-0042``, ``user_42``) as often as by meaning; a
vector of a hashed or learned embedding blurs such a token among its neighbours, BM25 does not.
Terms are the words of the text (NFKC, case-folded, split at anything not a letter or digit, as the
hash embedder splits them) plus each whitespace-separated token whole when it has inner punctuation,
so ``INV-2024-0042`` matches as one term and as its parts.
"""

from __future__ import annotations

import heapq
import math
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

from agentbus.memory.embedders import _tokens

__all__ = ["RRF_K", "KeywordIndex", "fuse", "terms"]

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al. 2009): 1 / (60 + rank)
_EDGE = "\"'()[]{}<>.,;:!?"


def terms(text: str) -> list[str]:
    """The BM25 terms of ``text``: its words, and each punctuated token whole."""
    out = _tokens(text)
    for raw in unicodedata.normalize("NFKC", text).casefold().split():
        token = raw.strip(_EDGE)
        if token and not token.isalnum():
            out.append(token)
    return out


class KeywordIndex:
    """BM25 (Okapi, ``k1=1.2``, ``b=0.75``) over one namespace's texts, updated item by item.

    Not thread-safe by itself: the memory service updates and searches it under the namespace's lock.
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1, self.b = k1, b
        self._postings: dict[str, dict[str, int]] = {}  # term -> {item id: term frequency}
        self._docs: dict[str, tuple[int, tuple[str, ...]]] = {}  # item id -> (length, distinct terms)
        self._total = 0

    def __len__(self) -> int:
        return len(self._docs)

    @property
    def nbytes(self) -> int:
        """A rough size (for the cache budget): dict entries and the terms they hold."""
        return 200 * len(self._docs) + 120 * sum(len(p) for p in self._postings.values())

    def set(self, item_id: str, text: str) -> None:
        """Index (or re-index) an item's text."""
        self.remove(item_id)
        words = terms(text)
        if not words:
            return
        tf = Counter(words)
        for term, n in tf.items():
            self._postings.setdefault(term, {})[item_id] = n
        self._docs[item_id] = (len(words), tuple(tf))
        self._total += len(words)

    def remove(self, item_id: str) -> None:
        doc = self._docs.pop(item_id, None)
        if doc is None:
            return
        self._total -= doc[0]
        for term in doc[1]:
            posting = self._postings[term]
            del posting[item_id]
            if not posting:
                del self._postings[term]

    def search(self, query: str, k: int) -> list[tuple[str, float]]:
        """The ``k`` best ``(item id, BM25 score)``, best first (ties by id); items sharing no term are left out."""
        n = len(self._docs)
        if not n:
            return []
        avg = self._total / n
        scores: dict[str, float] = {}
        for term in set(terms(query)):
            posting = self._postings.get(term)
            if not posting:
                continue
            idf = math.log(1.0 + (n - len(posting) + 0.5) / (len(posting) + 0.5))
            for item_id, tf in posting.items():
                norm = self.k1 * (1.0 - self.b + self.b * self._docs[item_id][0] / avg)
                scores[item_id] = scores.get(item_id, 0.0) + idf * tf * (self.k1 + 1.0) / (tf + norm)
        return heapq.nsmallest(k, scores.items(), key=lambda e: (-e[1], e[0]))


def fuse(rankings: Iterable[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each id scores ``sum(1 / (k + rank))`` over the rankings it is in
    (rank from 1), best first, ties by id. Ranks, not raw scores, so cosine and BM25 need no common scale."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item_id in enumerate(ranking, start=1):
            fused[item_id] = fused.get(item_id, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda e: (-e[1], e[0]))
