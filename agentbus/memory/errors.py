"""Errors raised by ``agentbus.memory``.

Every error that a caller's bad input can cause derives from :class:`MemoryInputError`, a
``ValidationFailed`` (422) of the project's error tree that is also a ``ValueError``;
``ItemNotFoundError`` is a ``NotFound`` (404), the embedder errors are ``ConfigError``.
"""

from __future__ import annotations

from agentbus.domain.errors import ConfigError, NotFound, ValidationFailed

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


class MemoryInputError(ValidationFailed, ValueError):
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


class UnknownEmbedderError(ConfigError, ValueError):
    """The configuration names an embedder that does not exist."""


class EmbedderUnavailableError(ConfigError, ValueError):
    """The configured embedder needs an optional extra that is not installed."""


class ItemNotFoundError(NotFound, LookupError):
    """No live item with that id in the index."""
