"""When a failed call runs again: the one retry and backoff rule of the bus.

The worker applies it to a call that raised, the reaper to a call that overran its timeout;
neither has its own copy. (Webhook deliveries have their own, configured cap:
``AGENTBUS_WEBHOOK_MAX_BACKOFF``.)
"""

from __future__ import annotations

from dataclasses import dataclass

from agentbus.domain.states import TaskState

MAX_BACKOFF_S = 300.0
"""No wait between two attempts is longer than this, however many attempts came before."""


def backoff_delay(backoff: float, attempt: int) -> float:
    """The wait before the attempt after ``attempt`` (1-based): ``backoff``, doubled per attempt."""
    return min(MAX_BACKOFF_S, backoff * 2.0 ** (attempt - 1))


@dataclass(frozen=True)
class RetryDecision:
    """What becomes of a failed attempt: ``retrying`` until ``not_before``, or ``failed`` for good."""

    state: TaskState
    not_before: float | None = None

    @property
    def retries(self) -> bool:
        return self.state == TaskState.RETRYING


def after_failure(attempt: int, retries: int, backoff: float, now: float) -> RetryDecision:
    """A call that failed on ``attempt`` (1-based) runs again while attempts are left
    (``retries`` after the first), after its backoff; then it has failed."""
    if attempt <= retries:
        return RetryDecision(TaskState.RETRYING, now + backoff_delay(backoff, attempt))
    return RetryDecision(TaskState.FAILED)
