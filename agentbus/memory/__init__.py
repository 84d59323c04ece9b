"""Agent memory: embedders, metadata filters and exact k-NN search with numba kernels.

The package keeps each namespace's vectors in a per-process :class:`VectorIndex` and searches them by
brute force: an int8 scan on all CPU cores with an exact re-rank (:mod:`.kernels_cpu`), or
``numba.cuda`` on a GPU worker (:mod:`.kernels_cuda`, imported on demand).  Kernels compile on first
use, never at import.  See ``docs/memory.md``.
"""

from __future__ import annotations

from agentbus.memory.embedders import EMBEDDERS, Embedder, HashEmbedder, MiniLMEmbedder, make_embedder
from agentbus.memory.errors import (
    DimensionMismatchError,
    EmbedderUnavailableError,
    InvalidFilterError,
    InvalidKError,
    InvalidVectorError,
    ItemNotFoundError,
    MemoryInputError,
    MissingQueryError,
    UnknownEmbedderError,
)
from agentbus.memory.filters import OPERATORS, compile_filter
from agentbus.memory.index import FetchVectors, Hit, Item, VectorIndex
from agentbus.memory.kernels_cpu import search_exact, search_int8
from agentbus.memory.validation import MAX_K, as_matrix, as_vector, check_k, resolve_query

__all__ = [
    "EMBEDDERS",
    "MAX_K",
    "OPERATORS",
    "DimensionMismatchError",
    "Embedder",
    "EmbedderUnavailableError",
    "FetchVectors",
    "HashEmbedder",
    "Hit",
    "InvalidFilterError",
    "InvalidKError",
    "InvalidVectorError",
    "Item",
    "ItemNotFoundError",
    "MemoryInputError",
    "MiniLMEmbedder",
    "MissingQueryError",
    "UnknownEmbedderError",
    "VectorIndex",
    "as_matrix",
    "as_vector",
    "check_k",
    "compile_filter",
    "make_embedder",
    "resolve_query",
    "search_exact",
    "search_int8",
]
