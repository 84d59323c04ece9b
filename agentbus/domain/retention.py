"""What is old enough to delete: the one definition, used by the store's purge and tested without a database.

A job goes when it is finished (a terminal state) and finished before the cutoff, together with its
journal (steps), its events, its approvals and their webhook deliveries. A child job stays while its
parent stays: the parent's page links to it, and it goes in the same round as the parent or later.
A memory item goes once it has expired: searches already skip it, so deleting it changes no answer.
"""

from __future__ import annotations

import re

from agentbus.domain.errors import InvalidInput
from agentbus.domain.states import JOB_TERMINAL, JobState

DEFAULT_RETENTION_S = 30 * 86_400.0

# The states a job may be deleted in: the store's SQL reads them from here, never types them.
PURGEABLE_JOB_STATES: frozenset[JobState] = JOB_TERMINAL

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86_400.0, "w": 7 * 86_400.0}


def parse_age(text: str) -> float:
    """``30d``, ``12h``, ``15m``, ``90s``, ``2w`` or plain seconds → seconds (above 0)."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*", text)
    if not m:
        raise InvalidInput(f"cannot read {text!r} as an age: use e.g. 30d, 12h, 15m, 90s")
    seconds = float(m.group(1)) * _UNITS[m.group(2) or "s"]
    if seconds <= 0:
        raise InvalidInput(f"an age must be above 0, got {text!r}")
    return seconds


def cutoff(now: float, retention_s: float) -> float:
    """Jobs finished before this instant are old enough to delete."""
    return now - retention_s


def job_is_purgeable(state: JobState, finished_at: float | None, before: float, parent_kept: bool = False) -> bool:
    """The rule for one job, given whether its parent (if it has one) is being kept."""
    return state in PURGEABLE_JOB_STATES and finished_at is not None and finished_at < before and not parent_kept


def memory_item_is_purgeable(expires_at: float | None, now: float) -> bool:
    return expires_at is not None and expires_at <= now


__all__ = [
    "DEFAULT_RETENTION_S",
    "PURGEABLE_JOB_STATES",
    "cutoff",
    "job_is_purgeable",
    "memory_item_is_purgeable",
    "parse_age",
]
