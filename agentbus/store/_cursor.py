"""Page cursors of the list queries (jobs, approvals): opaque to callers, checked as input."""

from __future__ import annotations

import base64
import math

from agentbus.domain.errors import InvalidInput
from agentbus.domain.jsonsafe import text_problem


def encode_cursor(created_at: float, row_id: str) -> str:
    return base64.urlsafe_b64encode(f"{created_at!r}|{row_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The (created_at, id) a cursor from ``encode_cursor`` holds; anything else is InvalidInput.

    A cursor comes from the caller, so what it decodes to is checked as any input would be: a
    finite timestamp (``nan``/``1e400`` compare with nothing) and an id PostgreSQL can hold.
    """
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        created, sep, row_id = raw.partition("|")
        at = float(created)
    except (ValueError, UnicodeDecodeError):
        raise InvalidInput(f"invalid cursor {cursor[:100]!r}") from None
    if not sep or not math.isfinite(at) or not 0 < len(row_id) <= 160 or text_problem(row_id):
        raise InvalidInput(f"invalid cursor {cursor[:100]!r}")
    return at, row_id
