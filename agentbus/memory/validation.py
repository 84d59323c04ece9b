"""Input checks shared by the index and the API layer; each raises a :class:`MemoryInputError` subclass."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from agentbus.memory.errors import (
    DimensionMismatchError,
    InvalidKError,
    InvalidVectorError,
    MissingQueryError,
)

if TYPE_CHECKING:
    from agentbus.memory.embedders import Embedder

__all__ = ["MAX_K", "as_matrix", "as_vector", "check_k", "normalize_rows", "resolve_query", "row_norms"]

MAX_K = 1000
_F16_MAX = 65504.0


def check_k(k: Any) -> int:
    """``k`` as an int in 1..:data:`MAX_K`."""
    if isinstance(k, bool) or not isinstance(k, int | np.integer):
        raise InvalidKError(f"k must be an integer, got {type(k).__name__}")
    if not 1 <= int(k) <= MAX_K:
        raise InvalidKError(f"k must be between 1 and {MAX_K}, got {int(k)}")
    return int(k)


def as_matrix(vectors: Any, dim: int, *, float16: bool = False) -> np.ndarray:
    """Rows of ``vectors`` as a C-contiguous float32 ``(n, dim)`` array, or a clear error.

    ``float16`` also rejects components a float16 copy cannot hold (|x| > 65504).
    """
    try:
        arr = np.asarray(vectors)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise InvalidVectorError("a vector must be a flat list of numbers") from exc
    if arr.ndim == 1 and arr.size == 0 and dim:
        raise DimensionMismatchError(dim, 0)
    if arr.ndim == 1:
        arr = arr[None, :]
    if arr.ndim != 2:
        raise InvalidVectorError("a vector must be a flat list of numbers")
    if arr.dtype.kind not in "iuf":
        raise InvalidVectorError(f"a vector must hold only numbers, got {arr.dtype.name} values")
    if arr.shape[1] != dim:
        raise DimensionMismatchError(dim, int(arr.shape[1]))
    with np.errstate(over="ignore"):
        out = np.ascontiguousarray(arr, dtype=np.float32)
    if not np.isfinite(out).all():
        raise InvalidVectorError("a vector contains NaN or infinity (or a value beyond float32 range)")
    if float16 and out.size and float(np.abs(out).max()) > _F16_MAX:
        raise InvalidVectorError(f"a vector component exceeds {_F16_MAX:g}, the float16 range of this index")
    return out


def as_vector(vector: Any, dim: int) -> np.ndarray:
    """One vector as float32 ``(dim,)``."""
    try:
        arr = np.asarray(vector)
    except (TypeError, ValueError) as exc:
        raise InvalidVectorError("a vector must be a flat list of numbers") from exc
    if arr.ndim != 1:
        raise InvalidVectorError("a vector must be a flat list of numbers")
    row: np.ndarray = as_matrix(arr, dim)[0]
    return row


def row_norms(x: np.ndarray) -> np.ndarray:
    """L2 norm of each row (float32); an all-zero row is an :class:`InvalidVectorError`."""
    norms: np.ndarray = np.sqrt(np.einsum("ij,ij->i", x, x, dtype=np.float64)).astype(np.float32)
    if (norms == 0).any():
        raise InvalidVectorError("a vector is all zeros, so it has no direction to compare")
    return norms


def normalize_rows(x: np.ndarray) -> np.ndarray:
    """``x`` scaled to unit L2 norm per row, in place (pass a float32 array you own)."""
    np.divide(x, row_norms(x)[:, None], out=x)
    return x


def resolve_query(*, text: str | None, vector: Any, embedder: Embedder, dim: int) -> np.ndarray:
    """The query vector of a store/search request: the client's own vector, else the embedded text."""
    if vector is not None:
        return as_vector(vector, dim)
    if text is None or not str(text).strip():
        raise MissingQueryError("give either a non-empty text or a vector")
    if embedder.dim != dim:
        raise DimensionMismatchError(dim, embedder.dim)
    return as_vector(embedder.embed([str(text)])[0], dim)
