"""Keyword search (BM25 over the items' text) and reciprocal rank fusion with the vector ranking.

Agents look things up by names and ids (``INV-2024-0042``, ``user_42``) as often as by meaning; a
vector of a hashed or learned embedding blurs such a token among its neighbours, BM25 does not.
Terms are the words of the text (NFKC, case-folded, split at anything not a letter or digit, as the
hash embedder splits them) plus each whitespace-separated token whole when it has inner punctuation,
so ``INV-2024-0042`` matches as one term and as its parts.

The index is arrays, not dicts of dicts (1M short notes took 1.4 GB as dicts, and a term found in
every text was scored posting by posting in Python): a *base* of postings in CSR form, grouped by
term (``int32`` rows, ``uint16`` term frequencies, one ``int64`` per term: the term's ``hash()``,
sorted), built in bulk by a numba pass, plus a small *delta* of the items written since (dicts),
merged into the base once it grows.  Documents are *rows*: those of the namespace's
:class:`~agentbus.memory.index.VectorIndex` when the index follows one (its ids are not held twice),
else the index's own.  A query term's postings are scored in numpy, the top-k by ``argpartition``.
Terms are keyed by Python's (per-process salted) 64-bit string hash: the index lives in one process,
and two of a million terms share a key with probability ~3e-8.
"""

from __future__ import annotations

import heapq
import math
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from itertools import filterfalse
from operator import methodcaller
from typing import Protocol

import numba
import numpy as np

from agentbus.memory.embedders import _TOKEN, _tokens

__all__ = ["RRF_K", "KeywordIndex", "RowSpace", "fuse", "terms"]

RRF_K = 60  # the constant of reciprocal rank fusion (Cormack et al. 2009): 1 / (60 + rank)
_EDGE = "\"'()[]{}<>.,;:!?"
# a word, or NUL (which joins the texts of a bulk load) on its own
_WORDS_OR_NUL = re.compile(r"[^\W_]+|\x00")
_ASCII_NON_WORD = str.maketrans({chr(c): " " for c in range(1, 128) if not chr(c).isalnum()})
_MAX_TF = 65535  # a text of at most 100,000 characters holds no term more often
_MERGE_MIN = 65536  # delta postings before a merge into the base (or an eighth of the base)


def terms(text: str) -> list[str]:
    """The BM25 terms of ``text``: its words, and each punctuated token whole."""
    out = _tokens(text)
    for raw in unicodedata.normalize("NFKC", text).casefold().split():
        token = raw.strip(_EDGE)
        if token and not token.isalnum():
            out.append(token)
    return out


def batch_terms(texts: Sequence[str]) -> list[list[str]]:
    """:func:`terms` of each text, normalised in one pass (NUL joins the texts: it neither composes
    nor folds, so the joined normal form is the texts' own, joined; a text holding one is done alone).
    A token all letters and digits stays so stripped: only the others are stripped and looked at."""
    parts = unicodedata.normalize("NFKC", "\x00".join(texts)).casefold().split("\x00")
    if len(parts) != len(texts):
        return [terms(t) for t in texts]
    words, edge = _TOKEN.findall, _EDGE
    out = []
    for p in parts:
        found = words(p)
        found += [t for t in (raw.strip(edge) for raw in p.split() if not raw.isalnum()) if t and not t.isalnum()]
        out.append(found)
    return out


class RowSpace(Protocol):
    """Where documents' rows come from: an item id's row, a row's item id."""

    def row_of(self, item_id: str) -> int | None: ...

    def id_of(self, row: int) -> str | None: ...

    def ids_of(self, rows: list[int]) -> list[str]:
        """The ids of rows that hold items."""
        ...

    def rows_of(self, item_ids: Sequence[str]) -> list[int | None]:
        """:meth:`row_of` of each id."""
        ...


class _OwnRows:
    """Rows of a standalone index: one per id ever set (ids removed keep theirs)."""

    def __init__(self) -> None:
        self.rows: dict[str, int] = {}
        self.ids: list[str] = []

    def row_of(self, item_id: str) -> int | None:
        return self.rows.get(item_id)

    def id_of(self, row: int) -> str | None:
        return self.ids[row] if 0 <= row < len(self.ids) else None

    def ids_of(self, rows: list[int]) -> list[str]:
        ids = self.ids
        return [ids[r] for r in rows]

    def rows_of(self, item_ids: Sequence[str]) -> list[int | None]:
        get = self.rows.get
        return [get(i) for i in item_ids]

    def assign(self, item_id: str) -> int:
        row = self.rows.get(item_id)
        if row is None:
            row = self.rows[item_id] = len(self.ids)
            self.ids.append(item_id)
        return row


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _count(tids: np.ndarray, rows: np.ndarray, last: np.ndarray, counts: np.ndarray) -> None:
    """Count each term's documents in a stream of terms (``tids``) and their documents' rows.  A
    (term, row) pair's occurrences must be contiguous among that term's (each document's terms
    together, or a term only in one part): ``last`` holds the row each term was last seen in."""
    for j in range(tids.shape[0]):
        t = tids[j]
        if last[t] != rows[j]:
            last[t] = rows[j]
            counts[t] += 1


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _fill(
    tids: np.ndarray, rows: np.ndarray, last: np.ndarray, cur: np.ndarray, docs: np.ndarray, tf: np.ndarray
) -> None:
    """Place the stream's postings (the same stream :func:`_count` saw): a term's next posting goes
    to ``cur[t]``; a term again in the same document counts once more (to ``uint16``'s top)."""
    for j in range(tids.shape[0]):
        t = tids[j]
        if last[t] != rows[j]:
            last[t] = rows[j]
            docs[cur[t]] = rows[j]
            tf[cur[t]] = 1
            cur[t] += 1
        elif tf[cur[t] - 1] < 65535:
            tf[cur[t] - 1] += 1


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _score(
    scores: np.ndarray,
    docs: np.ndarray,
    tf: np.ndarray,
    lens: np.ndarray,
    live: np.ndarray,
    check: bool,
    idf: float,
    k1: float,
    b: float,
    avg: float,
) -> None:
    """Add a term's BM25 to ``scores`` of each posting's row (those ``live`` when ``check``): the
    operations of the formula in its order, so the float64 sums are plain BM25's, bit for bit."""
    for p in range(docs.shape[0]):
        d = docs[p]
        if check and not live[d]:
            continue
        f = float(tf[p])
        norm = k1 * (1.0 - b + b * float(lens[d]) / avg)
        scores[d] += idf * f * (k1 + 1.0) / (f + norm)


def _stream(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray] | None:
    """The term hashes of ``texts`` in one stream (each text's words, then each text's punctuated
    tokens: the two never share a term) and each one's text number; ``None`` if a text holds a NUL.
    Each kind is cut out of the NUL-joined texts in one call: the NULs, cut out too, mark where texts end."""
    norm = unicodedata.normalize("NFKC", " \x00 ".join(texts)).casefold()  # spaces: NUL a token of its own
    if norm.count("\x00") != len(texts) - 1:
        return None
    edge = _EDGE
    # ASCII (the usual case): the words are the runs of letters and digits, cut out by C string
    # methods, 4x faster than the regular expression
    words = norm.translate(_ASCII_NON_WORD).split() if norm.isascii() else _WORDS_OR_NUL.findall(norm)
    # a token all letters and digits stays so stripped: only the others are stripped and looked at
    tokens = norm.split()
    punctuated = [
        t for t in map(methodcaller("strip", edge), filterfalse(str.isalnum, tokens)) if t and not t.isalnum()
    ]
    nul = hash("\x00")
    hashes, owners = [], []
    for found in (words, punctuated):
        h = np.fromiter(map(hash, found), np.int64, len(found))
        sep = h == nul
        if int(sep.sum()) != len(texts) - 1:  # a term hashed as NUL does (~2^-64): the careful way
            sep = np.fromiter((t == "\x00" for t in found), np.bool_, len(found))
        owner = np.cumsum(sep)
        hashes.append(h[~sep])
        owners.append(owner[~sep])
    return np.concatenate(hashes), np.concatenate(owners)


def _unique(values: np.ndarray) -> np.ndarray:
    """The sorted distinct values (a sort: ``np.unique``'s hash table was slower on these)."""
    ordered = np.sort(values)
    if ordered.shape[0] < 2:
        return ordered
    first = np.empty(ordered.shape[0], np.bool_)
    first[0] = True
    np.not_equal(ordered[1:], ordered[:-1], out=first[1:])
    out: np.ndarray = ordered[first]
    return out


class KeywordIndex:
    """BM25 (Okapi, ``k1=1.2``, ``b=0.75``) over one namespace's texts.

    ``rows``: the row space the documents live in (a :class:`~agentbus.memory.index.VectorIndex`);
    without it the index numbers its ids itself.  With one, a row must be :meth:`remove`\\ d before the
    row space drops it, and :meth:`remap` follows its compactions.  One lock serialises writes and
    searches (take the row space's lock first when both are needed).
    """

    def __init__(self, k1: float = 1.2, b: float = 0.75, rows: RowSpace | None = None) -> None:
        self.k1, self.b = k1, b
        self._own = _OwnRows() if rows is None else None
        self._space: RowSpace = self._own if self._own is not None else rows  # type: ignore[assignment]
        self.lock = threading.RLock()
        self._len = np.zeros(0, np.int32)  # row -> its document's length in terms (0: none)
        self._inbase = np.zeros(0, np.bool_)  # row -> its postings in the base are live
        self._count = 0  # documents
        self._total = 0  # their terms
        self._hashes = np.zeros(0, np.int64)  # the base's terms (sorted hashes)
        self._indptr = np.zeros(1, np.int64)
        self._docs = np.zeros(0, np.int32)
        self._tf = np.zeros(0, np.uint16)
        self._base_dead = 0  # rows whose base postings are dead
        self._delta: dict[int, dict[int, int]] = {}  # term hash -> {row: tf}
        self._delta_docs: dict[int, tuple[int, ...]] = {}  # row -> its term hashes in the delta
        self._delta_postings = 0

    def __len__(self) -> int:
        return self._count

    @property
    def nbytes(self) -> int:
        """Bytes held: the arrays, plus an estimate for the delta's dicts (and a standalone index's ids)."""
        arrays = (self._len, self._inbase, self._hashes, self._indptr, self._docs, self._tf)
        own = 0 if self._own is None else 200 * len(self._own.ids)
        return sum(a.nbytes for a in arrays) + 150 * self._delta_postings + 120 * len(self._delta_docs) + own

    # ----------------------------------------------------------------- writes
    def _row(self, item_id: str, assign: bool) -> int | None:
        if self._own is not None and assign:
            return self._own.assign(item_id)
        return self._space.row_of(item_id)

    def _grow(self, upto: int) -> None:
        if upto > self._len.shape[0]:
            cap = max(upto, self._len.shape[0] + self._len.shape[0] // 2, 1024)
            self._len = np.concatenate([self._len, np.zeros(cap - self._len.shape[0], np.int32)])
            self._inbase = np.concatenate([self._inbase, np.zeros(cap - self._inbase.shape[0], np.bool_)])

    def set(self, item_id: str, text: str) -> None:
        """Index (or re-index) an item's text."""
        self.set_many([item_id], [text])

    def set_many(self, item_ids: Sequence[str], texts: Sequence[str]) -> None:
        """Index (or re-index) many items; into an empty index, built in bulk (ids without a row are skipped)."""
        with self.lock:
            if self._count == 0 and not self._delta_docs and len(set(item_ids)) == len(item_ids):
                self.load([(item_ids, texts)])
                return
            for item_id, words in zip(item_ids, batch_terms(texts), strict=True):
                row = self._row(item_id, True)
                if row is None:
                    continue
                self._remove_row(row)
                if not words:
                    continue
                self._grow(row + 1)
                tf = Counter(map(hash, words))
                for h, n in tf.items():
                    self._delta.setdefault(h, {})[row] = min(n, _MAX_TF)
                self._delta_docs[row] = tuple(tf)
                self._delta_postings += len(tf)
                self._len[row] = len(words)
                self._count += 1
                self._total += len(words)
            if self._delta_postings > max(_MERGE_MIN, self._docs.shape[0] // 8):
                self._merge()

    def load(self, chunks: Iterable[tuple[Sequence[str], Sequence[str]]]) -> None:
        """Build an empty index in bulk from ``(ids, texts)`` chunks (each id once in all; ids without
        a row are skipped): a chunk's texts can go once its terms are hashed."""
        with self.lock:
            if self._count or self._delta_docs:
                raise ValueError("load() builds an empty index")
            streams: list[tuple[np.ndarray, np.ndarray]] = []  # (term hashes, rows) per chunk
            lens: list[np.ndarray] = []
            rows_of: list[np.ndarray] = []
            for item_ids, texts in chunks:
                for a in range(0, len(texts), 65536):
                    h, token_rows, rows, count = self._chunk(item_ids[a : a + 65536], texts[a : a + 65536])
                    streams.append((h, token_rows))
                    lens.append(count)
                    rows_of.append(rows)
            empty = np.zeros(0, np.int64)
            self._build(streams, np.concatenate(rows_of or [empty]), np.concatenate(lens or [empty]))

    def _chunk(self, ids: Sequence[str], part: Sequence[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """A chunk's term hashes and their rows, and its documents' rows and lengths."""
        found = [self._own.assign(i) for i in ids] if self._own is not None else self._space.rows_of(ids)
        rows = np.array([-1 if r is None else r for r in found], np.int64)
        stream = _stream(part)
        if stream is None:  # a text holds a NUL: each text on its own
            words = batch_terms(part)
            flat = [w for ws in words for w in ws]
            h = np.fromiter(map(hash, flat), np.int64, len(flat))
            owner = np.repeat(np.arange(len(part)), [len(ws) for ws in words])
        else:
            h, owner = stream
        token_rows = rows[owner]
        known = token_rows >= 0
        count = np.bincount(owner, minlength=len(part))
        return h[known], token_rows[known].astype(np.int32), rows[rows >= 0], count[rows >= 0]

    def _build(self, chunks: list[tuple[np.ndarray, np.ndarray]], rows: np.ndarray, lens: np.ndarray) -> None:
        """The base from a stream of term hashes and their rows (``chunks``), the documents' rows and
        lengths; the delta is emptied."""
        uniq = _unique(np.concatenate([_unique(h) for h, _ in chunks] or [np.zeros(0, np.int64)]))
        streams = []
        while chunks:  # each chunk's hashes dropped once they are term numbers
            h, r = chunks.pop(0)
            streams.append((np.searchsorted(uniq, h).astype(np.int32), r))
            del h
        # counting sort, a chunk at a time (never the whole stream in one array): count, then place
        nterms = uniq.shape[0]
        last = np.full(nterms, -1, np.int64)
        counts = np.zeros(nterms, np.int64)
        for t, r in streams:
            _count(t, r, last, counts)
        indptr = np.zeros(nterms + 1, np.int64)
        np.cumsum(counts, out=indptr[1:])
        del counts
        cur = indptr[:-1].copy()
        docs, tf = np.empty(indptr[-1], np.int32), np.zeros(indptr[-1], np.uint16)
        last[:] = -1
        while streams:
            t, r = streams.pop(0)
            _fill(t, r, last, cur, docs, tf)
            del t, r
        del last, cur
        self._hashes, self._indptr, self._docs, self._tf = uniq, indptr, docs, tf
        self._len[:] = 0
        self._inbase[:] = False
        present = lens > 0
        rows, lens = rows[present], lens[present]
        if rows.shape[0]:
            self._grow(int(rows.max()) + 1)
            self._len[rows] = lens
            self._inbase[rows] = True
        self._count, self._total = int(rows.shape[0]), int(lens.sum())
        self._base_dead = 0
        self._delta, self._delta_docs, self._delta_postings = {}, {}, 0

    def _merge(self) -> None:
        """Fold the delta into the base and drop the base's dead postings (vectorised, no re-tokenising)."""
        live = self._inbase[self._docs]
        term_of = np.repeat(np.arange(self._hashes.shape[0]), np.diff(self._indptr))
        hashes = [self._hashes[term_of[live]]]
        docs, tfs = [self._docs[live]], [self._tf[live]]
        del term_of, live
        if self._delta:
            hashes.append(
                np.repeat(np.fromiter(self._delta, np.int64, len(self._delta)), [len(p) for p in self._delta.values()])
            )
            docs.append(np.fromiter((r for p in self._delta.values() for r in p), np.int32, self._delta_postings))
            tfs.append(
                np.fromiter((n for p in self._delta.values() for n in p.values()), np.uint16, self._delta_postings)
            )
        h, d, f = np.concatenate(hashes), np.concatenate(docs), np.concatenate(tfs)
        del hashes, docs, tfs
        order = np.argsort(h, kind="stable")
        h, self._docs, self._tf = h[order], d[order], f[order]
        del order, d, f
        self._hashes, starts = np.unique(h, return_index=True)
        self._indptr = np.append(starts, h.shape[0]).astype(np.int64)
        self._inbase[:] = self._len > 0
        self._base_dead = 0
        self._delta, self._delta_docs, self._delta_postings = {}, {}, 0

    def remove(self, item_id: str) -> None:
        with self.lock:
            row = self._space.row_of(item_id)
            if row is not None:
                self._remove_row(row)

    def remove_many(self, item_ids: Iterable[str]) -> None:
        with self.lock:
            for item_id in item_ids:
                row = self._space.row_of(item_id)
                if row is not None:
                    self._remove_row(row)

    def _remove_row(self, row: int) -> None:
        if row >= self._len.shape[0] or self._len[row] == 0:
            return
        self._count -= 1
        self._total -= int(self._len[row])
        self._len[row] = 0
        if self._inbase[row]:
            self._inbase[row] = False
            self._base_dead += 1
        for h in self._delta_docs.pop(row, ()):
            posting = self._delta[h]
            del posting[row]
            self._delta_postings -= 1
            if not posting:
                del self._delta[h]
        if self._base_dead > 1024 and self._base_dead * 4 > self._count:
            self._merge()

    def remap(self, keep: np.ndarray) -> None:
        """Follow a compaction of the row space: row ``keep[i]`` is now row ``i``, the others are gone."""
        with self.lock:
            new = np.full(max(self._len.shape[0], int(keep.max()) + 1 if keep.shape[0] else 0), -1, np.int64)
            kept = keep[keep < self._len.shape[0]]
            new[kept] = np.flatnonzero(keep < self._len.shape[0])
            gone = self._len > 0
            gone[kept] = False
            for row in np.flatnonzero(gone).tolist():  # documents whose rows went without a remove
                self._remove_row(row)
            mapped = new[self._docs]
            alive = mapped >= 0
            before = np.concatenate([np.zeros(1, np.int64), np.cumsum(alive)])  # live postings before each
            self._indptr = before[self._indptr]
            self._docs, self._tf = mapped[alive].astype(np.int32), self._tf[alive]
            lens, inbase = np.zeros(keep.shape[0], np.int32), np.zeros(keep.shape[0], np.bool_)
            lens[: kept.shape[0]] = self._len[kept]
            inbase[: kept.shape[0]] = self._inbase[kept]
            self._len, self._inbase = lens, inbase
            self._delta = {h: {int(new[r]): n for r, n in p.items()} for h, p in self._delta.items()}
            self._delta_docs = {int(new[r]): hs for r, hs in self._delta_docs.items()}
            self._merge()  # the base without the postings of rows removed earlier (and the delta folded in)

    # ----------------------------------------------------------------- reads
    def search_rows(self, query: str, k: int, mask: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The rows of the ``k`` best documents and their BM25 scores, best first (ties by item id);
        ``mask`` (by row) admits documents; those sharing no term with ``query`` are left out."""
        with self.lock:
            n = self._count
            if not n or k < 1:
                return np.zeros(0, np.int64), np.zeros(0, np.float64)
            avg = self._total / n
            k1, b = self.k1, self.b
            scores = np.zeros(self._len.shape[0], np.float64)
            for term in sorted(set(terms(query))):  # a fixed order: the same float sums every time
                h = hash(term)
                i = int(np.searchsorted(self._hashes, h))
                docs, tf = self._docs[:0], self._tf[:0]
                if i < self._hashes.shape[0] and self._hashes[i] == h:
                    docs = self._docs[self._indptr[i] : self._indptr[i + 1]]
                    tf = self._tf[self._indptr[i] : self._indptr[i + 1]]
                dead = bool(self._base_dead)  # the live share counted only when some are dead
                df = int(np.count_nonzero(self._inbase[docs])) if dead else docs.shape[0]
                extra = self._delta.get(h)
                if extra:
                    df += len(extra)
                if not df:
                    continue
                idf = math.log(1.0 + (n - df + 0.5) / (df + 0.5))
                _score(scores, docs, tf, self._len, self._inbase, dead, idf, k1, b, avg)
                if extra:
                    rows = np.fromiter(extra, np.int32, len(extra))
                    counts = np.fromiter(extra.values(), np.uint16, len(extra))
                    _score(scores, rows, counts, self._len, self._inbase, False, idf, k1, b, avg)
            if mask is not None:
                m = min(mask.shape[0], scores.shape[0])
                scores[:m][~mask[:m]] = 0.0
                scores[m:] = 0.0
            found = np.flatnonzero(scores > 0.0)
            if found.shape[0] > k:
                kth = -np.partition(-scores[found], k - 1)[k - 1]
                found = found[scores[found] >= kth]
            top = scores[found]
            if found.shape[0] > k:  # ties at the k-th score: the smallest ids among them
                better = found[top > kth]
                tied = found[top == kth]
                names = self._space.ids_of(tied.tolist())
                pick = heapq.nsmallest(k - better.shape[0], range(len(names)), key=names.__getitem__)
                found = np.concatenate([better, tied[pick]])
                top = scores[found]
            names = self._space.ids_of(found.tolist())
            order = sorted(range(found.shape[0]), key=lambda j: (-top[j], names[j]))
            return found[order].astype(np.int64), top[order]

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """The ``k`` best ``(item id, BM25 score)``, best first (ties by id); items sharing no term are left out."""
        with self.lock:
            rows, scores = self.search_rows(query, k, mask)
            return [(self._space.id_of(r) or "", s) for r, s in zip(rows.tolist(), scores.tolist(), strict=True)]


def fuse(rankings: Iterable[Sequence[str]], k: int = RRF_K) -> list[tuple[str, float]]:
    """Reciprocal rank fusion: each id scores ``sum(1 / (k + rank))`` over the rankings it is in
    (rank from 1), best first, ties by id. Ranks, not raw scores, so cosine and BM25 need no common scale."""
    fused: dict[str, float] = {}
    for ranking in rankings:
        for rank, item_id in enumerate(ranking, start=1):
            fused[item_id] = fused.get(item_id, 0.0) + 1.0 / (k + rank)
    return sorted(fused.items(), key=lambda e: (-e[1], e[0]))
