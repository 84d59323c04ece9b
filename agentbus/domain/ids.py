"""The ids that name steps and dispatches: how they are made and read, in one place."""

from __future__ import annotations

import uuid


def step_id(job_id: str, seq: int) -> str:
    """A step's id: its job's id and its place in the journal (deterministic, so inserts are idempotent)."""
    return f"{job_id}-{seq}"


def job_of(step: str) -> str:
    """The job a step id belongs to (job ids may hold dashes; the seq never does)."""
    return step.rsplit("-", 1)[0]


def new_dispatch_id() -> str:
    """A queue message's id: "d" and 32 hex digits, told apart from RQ's own dashed ids at a glance."""
    return "d" + uuid.uuid4().hex
