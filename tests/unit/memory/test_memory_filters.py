"""The filter language: validation, and the vectorised mask against a plain Python evaluation."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from agentbus.memory import InvalidFilterError, compile_filter
from agentbus.memory.filters import MetadataColumns

METAS: list[dict[str, Any] | None] = [
    {"tenant": "a", "n": 1, "flag": True, "score": 0.5},
    {"tenant": "b", "n": 2, "flag": False},
    {"tenant": "a", "n": 2.0, "tags": ["x"]},
    None,
    {"tenant": None, "n": "2", "flag": 1},
    {"tenant": "c", "n": 10**400},
]


def mask(spec: dict[str, Any]) -> list[int]:
    cols = MetadataColumns()
    cols.resize(8)
    return np.flatnonzero(cols.evaluate(compile_filter(spec), METAS, len(METAS))).tolist()


@pytest.mark.parametrize(
    ("spec", "rows"),
    [
        ({}, [0, 1, 2, 3, 4, 5]),
        ({"tenant": "a"}, [0, 2]),
        ({"tenant": {"$eq": "a"}}, [0, 2]),
        ({"tenant": None}, [4]),
        ({"tenant": {"$ne": "a"}}, [1, 3, 4, 5]),
        ({"tenant": {"$in": ["b", "c", "zzz"]}}, [1, 5]),
        ({"tenant": {"$in": []}}, []),
        ({"n": 2}, [1, 2]),
        ({"n": "2"}, [4]),
        ({"n": {"$in": [1, "2"]}}, [0, 4]),
        ({"n": {"$gte": 1, "$lt": 2}}, [0]),
        ({"n": {"$gt": 1}}, [1, 2]),
        ({"n": {"$lte": 2}, "tenant": "a"}, [0, 2]),
        ({"flag": True}, [0]),
        ({"flag": 1}, [4]),  # the number 1, not True
        ({"tags": "x"}, []),
        ({"missing": {"$ne": 1}}, [0, 1, 2, 3, 4, 5]),
        ({"score": {"$gt": 0.1}}, [0]),
    ],
)
def test_filter_semantics(spec: dict[str, Any], rows: list[int]) -> None:
    assert mask(spec) == rows


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"n": {"$regex": "a"}}, "unknown operator"),
        ({"$or": [{"a": 1}]}, "unknown operator"),
        ({"n": {"$gt": "a"}}, "finite number"),
        ({"n": {"$gt": float("nan")}}, "finite number"),
        ({"n": {"$gt": True}}, "finite number"),
        ({"n": {"$in": "abc"}}, "list"),
        ({"n": {"$in": [[1]]}}, "strings, numbers"),
        ({"n": {}}, "empty"),
        ({"n": [1, 2]}, "strings, numbers"),
        ({"": 1}, "non-empty"),
    ],
)
def test_bad_filters(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(InvalidFilterError, match=message):
        compile_filter(spec)


def test_not_an_object() -> None:
    with pytest.raises(InvalidFilterError):
        compile_filter(["a"])  # type: ignore[arg-type]
