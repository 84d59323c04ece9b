"""Errors raised by ``agentbus.memory``.

Every error that a caller's bad input can cause derives from :class:`MemoryInputError` (a
``ValueError``), so the API layer can map the whole family to a 4xx answer and use ``str(err)`` as the
reason.  The lead re-parents these under the project's ``AgentbusError`` once ``agentbus.domain`` exists.
"""

from __future__ import annotations

__all__ = [
    "DimensionMismatchError",
    "EmbedderUnavailableError",
    "InvalidFilterError",
    "InvalidKError",
    "InvalidVectorError",
    "ItemNotFoundError",
    "MemoryInputError",
    "MissingQueryError",
    "UnknownEmbedderError",
]


class MemoryInputError(ValueError):
    """A request to the memory index is malformed (a 4xx, never a 5xx)."""


class DimensionMismatchError(MemoryInputError):
    """A vector's length differs from the namespace's dimension (HTTP 422)."""

    def __init__(self, expected: int, got: int) -> None:
        super().__init__(f"vector has dimension {got}, the namespace expects {expected}")
        self.expected = expected
        self.got = got


class InvalidVectorError(MemoryInputError):
    """A vector holds NaN or infinity, is all zeros, or is not a flat list of numbers."""


class InvalidKError(MemoryInputError):
    """``k`` is not an integer in 1..1000."""


class InvalidFilterError(MemoryInputError):
    """A metadata filter is malformed or names an unknown operator."""


class MissingQueryError(MemoryInputError):
    """A search or store request carries neither text nor a vector."""


class UnknownEmbedderError(ValueError):
    """The configuration names an embedder that does not exist."""


class EmbedderUnavailableError(ValueError):
    """The configured embedder needs an optional extra that is not installed."""


class ItemNotFoundError(LookupError):
    """No live item with that id in the index."""
