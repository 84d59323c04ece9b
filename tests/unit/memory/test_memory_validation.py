"""Request validation helpers: each bad input raises a MemoryInputError subclass with the reason."""

from __future__ import annotations

import numpy as np
import pytest

from agentbus.memory import (
    DimensionMismatchError,
    HashEmbedder,
    InvalidKError,
    InvalidVectorError,
    MemoryInputError,
    MissingQueryError,
    as_matrix,
    as_vector,
    check_k,
    resolve_query,
)


def test_check_k() -> None:
    assert check_k(1) == 1 and check_k(np.int64(1000)) == 1000
    for bad in (0, -3, 1001, 1.0, "5", None, False):
        with pytest.raises(InvalidKError):
            check_k(bad)


@pytest.mark.parametrize(
    ("value", "error", "message"),
    [
        ([1.0, 2.0], DimensionMismatchError, "dimension 2, the namespace expects 3"),
        ([], DimensionMismatchError, "dimension 0"),
        ([1.0, float("nan"), 0.0], InvalidVectorError, "NaN or infinity"),
        ([1.0, float("-inf"), 0.0], InvalidVectorError, "NaN or infinity"),
        ([1.0, 1e39, 0.0], InvalidVectorError, "float32 range"),
        (["a", "b", "c"], InvalidVectorError, "only numbers"),
        ([[1.0, 2.0, 3.0]], InvalidVectorError, "flat list"),
        ([1.0, [2.0], 3.0], InvalidVectorError, "flat list"),
        ("abc", InvalidVectorError, "flat list"),
    ],
)
def test_as_vector_errors(value: object, error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=message):
        as_vector(value, 3)
    assert issubclass(error, MemoryInputError) and issubclass(error, ValueError)


def test_as_matrix_accepts_ints_and_rejects_float16_overflow() -> None:
    out = as_matrix([[1, 2, 3], [4, 5, 6]], 3)
    assert out.dtype == np.float32 and out.shape == (2, 3)
    with pytest.raises(InvalidVectorError, match="float16"):
        as_matrix([[70000.0, 0.0, 0.0]], 3, float16=True)


def test_resolve_query() -> None:
    emb = HashEmbedder(16)
    assert resolve_query(text=None, vector=[0.0] * 15 + [1.0], embedder=emb, dim=16)[15] == 1.0
    assert resolve_query(text="hello", vector=None, embedder=emb, dim=16).shape == (16,)
    for text in (None, "", "   "):
        with pytest.raises(MissingQueryError):
            resolve_query(text=text, vector=None, embedder=emb, dim=16)
    with pytest.raises(DimensionMismatchError):
        resolve_query(text="hello", vector=None, embedder=emb, dim=32)
