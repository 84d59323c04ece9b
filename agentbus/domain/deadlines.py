"""What happens when nobody answers a person's question in time: escalate or expire.

The rule is pure; the store selects the approvals past their deadline, asks ``on_deadline``
what to do with each, and writes that by compare-and-set on (status, level).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from agentbus.domain.hitl import answer
from agentbus.domain.replay import ErrorInfo
from agentbus.domain.states import TaskState


def deadline(now: float, timeout: float | None) -> float | None:
    """When an approval asked (or escalated) at ``now`` times out; None: it waits for ever."""
    return None if timeout is None else now + timeout


def iso(ts: float) -> str:
    """The answer's ``at``: UTC, ISO 8601 with a ``Z``."""
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class Escalate:
    """The question goes to the next group of assignees, with a fresh deadline."""

    level: int
    deadline: float | None


@dataclass(frozen=True)
class Expire:
    """The question closes unanswered; its step settles with this state, result and error."""

    step_state: TaskState
    result: Any = None
    error: ErrorInfo | None = None


def on_deadline(on_timeout: str, level: int, levels: int, timeout: float | None, now: float) -> Escalate | Expire:
    """What an approval at ``level`` of ``levels`` assignee groups becomes when its deadline passes.

    ``escalate`` moves it to the next group while there is one, then it expires as a
    rejection; ``fail`` fails the agent's call; ``approve`` and ``reject`` answer it in the
    person's place (``by="timeout"``, ``timed_out=True``).
    """
    if on_timeout == "escalate" and level + 1 < levels:
        return Escalate(level + 1, deadline(now, timeout or 0))
    waited = f"no answer within {timeout:g}s" if timeout else "no answer"
    if on_timeout == "fail":
        return Expire(TaskState.FAILED, error=ErrorInfo("ApprovalExpired", waited))
    return Expire(
        TaskState.SUCCEEDED, answer(on_timeout == "approve", None, waited, "timeout", iso(now), timed_out=True)
    )
