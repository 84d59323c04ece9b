"""Which of the timers' passes have anything to do now: one statement for all of them.

The orchestrator checks its timers every ``AGENTBUS_TIMER_INTERVAL`` (0.1 s): retries whose
backoff has passed, ``ctx.sleep`` steps, approvals and ``ctx.wait_for`` waits past their
deadline, calls pending a worker or a slot. Asked one by one, that was five statements per pass
even when nothing was due: 6 to 10 ms of a busy orchestrator's loop in every 100 ms, during which
it advanced no job (docs/benchmarks.md, seventh pass). This asks whether each has anything due
in one statement (an ``EXISTS`` per pass, each on an index), and the passes with nothing to do
are skipped.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentbus.domain import TaskState
from agentbus.domain.states import ApprovalStatus
from agentbus.store._repository import Repository
from agentbus.store.db import translate_errors


@dataclass(frozen=True)
class Due:
    """Whether each timers pass has anything to do."""

    retries: bool
    """Task calls retrying whose backoff has passed."""
    sleeps: bool
    """``ctx.sleep`` steps whose time has come."""
    approvals: bool
    """Pending approvals past their deadline."""
    signals: bool
    """``ctx.wait_for`` waits past their timeout."""
    pending: bool
    """Task calls pending a worker or a concurrency slot (dispatched when one is free)."""


class DueWork(Repository):
    @translate_errors
    def due(self, now: float) -> Due:
        p = self.db.param
        steps = "SELECT 1 FROM ab_steps WHERE state = {p} AND kind = {p}"
        timed = steps + " AND not_before <= {p}"
        sql = (
            f"SELECT EXISTS ({timed}), EXISTS ({timed}), "
            "EXISTS (SELECT 1 FROM ab_approvals WHERE status = {p} AND deadline <= {p}), "
            f"EXISTS ({timed}), EXISTS ({steps})"
        ).format(p=p)
        pending = TaskState.PENDING.value
        params = (
            *(TaskState.RETRYING.value, "task", now),
            *(pending, "sleep", now),
            *(ApprovalStatus.PENDING.value, now),
            *(pending, "signal", now),
            *(pending, "task"),
        )
        row = self.db.execute_sql(sql, params).fetchone()
        return Due(*(bool(v) for v in row))
