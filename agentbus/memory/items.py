"""The records that go into and come out of a :class:`~agentbus.memory.index.VectorIndex`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["Hit", "Item"]


@dataclass(frozen=True, slots=True)
class Hit:
    """One search result: the item's id, its score (inner product; cosine for unit vectors) and metadata."""

    id: str
    score: float
    metadata: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Item:
    """One stored item (``expires_at``: unix seconds, ``None`` = never)."""

    id: str
    vector: Any
    metadata: Mapping[str, Any] | None = None
    expires_at: float | None = None
