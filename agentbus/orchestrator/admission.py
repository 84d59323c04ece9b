"""Admission: which waiting calls may go now, and calls sent again, routed afresh.

A call waits as ``pending`` when no live worker can take it (a GPU call without a GPU worker)
or when it carries a concurrency key (``max_concurrency``): it goes once a worker appears, or
once fewer than the cap of its key's calls are queued or running. A call sent again (a retry,
a lost message, a lost worker) is routed afresh and parked the same way if it cannot go.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence

from agentbus.domain import App, TaskState
from agentbus.orchestrator.dispatch import Sender
from agentbus.orchestrator.plan import WAITING_FOR_SLOT
from agentbus.orchestrator.ports import Steps
from agentbus.orchestrator.router import Router
from agentbus.store import StepRow


class Admission:
    def __init__(self, app: App, steps: Steps, router: Router, sender: Sender) -> None:
        self.app = app
        self.steps = steps
        self.router = router
        self.sender = sender
        self.owns_pending: Callable[[], bool] = lambda: True
        """Whether this process dispatches pending calls: with several shards only shard 0's holder
        does, so two orchestrators never share out one concurrency slot twice (service.py)."""

    def dispatch_pending(self) -> int:
        """Dispatch pending calls that can go now: a GPU worker appeared, a concurrency slot freed."""
        if not self.owns_pending():
            return 0
        rows = self.steps.pending_tasks()
        if not rows:
            return 0
        used = self.steps.slots_used(sorted({r.concurrency_key for r in rows if r.concurrency_key}))
        by_queue: dict[tuple[str, str], list[StepRow]] = defaultdict(list)
        reasons: dict[str, list[str]] = defaultdict(list)
        for r in rows:
            td = self.app.tasks.get(r.name)
            if td is None:
                continue
            rt = self.router.route(td.options, r.priority)
            if rt.queue is None:
                if r.route_reason != rt.reason:
                    reasons[rt.reason].append(r.id)
                continue
            key, cap = r.concurrency_key, td.options.max_concurrency
            if key is not None and cap is not None:
                if used.get(key, 0) >= cap:
                    reason = f"{WAITING_FOR_SLOT} ({key!r}: {cap} of {cap} in use)"
                    if r.route_reason != reason:
                        reasons[reason].append(r.id)
                    continue
                used[key] = used.get(key, 0) + 1
            by_queue[(rt.queue, rt.reason)].append(r)
        for reason, ids in reasons.items():
            self.steps.set_route_reason(ids, reason)
        return self.sender.send_rows(by_queue, [TaskState.PENDING], new_attempt=False)

    def redispatch(self, rows: Sequence[StepRow], from_states: Sequence[TaskState], *, new_attempt: bool) -> int:
        """Send calls again, routed afresh: one that cannot go anywhere now, or that needs a
        concurrency slot, waits as pending instead. Returns how many were sent."""
        by_queue: dict[tuple[str, str], list[StepRow]] = defaultdict(list)
        parked: dict[str, list[str]] = defaultdict(list)
        for r in rows:
            td = self.app.tasks.get(r.name)
            if td is None:  # a task this App no longer has: where it went before
                by_queue[(r.queue or "cpu", r.route_reason or "")].append(r)
                continue
            rt = self.router.route(td.options, r.priority)
            if rt.queue is None or r.concurrency_key is not None:
                parked[rt.reason if rt.queue is None else WAITING_FOR_SLOT].append(r.id)
            else:
                by_queue[(rt.queue, rt.reason)].append(r)
        for reason, ids in parked.items():
            self.steps.park(ids, from_states, reason, new_attempt=new_attempt)
        sent = self.sender.send_rows(by_queue, from_states, new_attempt=new_attempt)
        if parked:
            self.dispatch_pending()
        return sent
