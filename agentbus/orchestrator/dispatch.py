"""Dispatching: calls cut into queue messages (``Dispatch``), their steps marked queued, sent.

A fan-out of N calls is cut into about 16 messages so every worker gets a share, at most
``AGENTBUS_DISPATCH_CHUNK`` calls each (``@app.task(chunk=)`` overrides): see
docs/architecture.md, "Dispatch batching".
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field

from agentbus.config import Settings
from agentbus.domain import Dispatch, TaskState
from agentbus.domain.ids import new_dispatch_id
from agentbus.observability import tracing
from agentbus.orchestrator.plan import Call
from agentbus.orchestrator.ports import Queues, Steps
from agentbus.orchestrator.router import Router
from agentbus.store import NewStep, StepRow


@dataclass
class Bundled:
    """Dispatches by queue, and the queued steps they carry by job (recorded before sending)."""

    by_queue: dict[str, list[Dispatch]] = field(default_factory=dict)
    steps: defaultdict[str, list[NewStep]] = field(default_factory=lambda: defaultdict(list))


class Sender:
    def __init__(self, steps: Steps, queues: Queues, router: Router, settings: Settings) -> None:
        self.steps = steps
        self.queues = queues
        self.router = router
        self.settings = settings

    def chunk_size(self, n: int) -> int:
        # Spread a fan-out over ~16 messages so every worker gets a share, batch it past that.
        return max(1, min(self.settings.dispatch_chunk, math.ceil(n / 16)))

    def bundle(
        self, calls: Mapping[str, Sequence[Call]], traces: Mapping[str, str | None], *, spread: bool = False
    ) -> Bundled:
        """New calls in dispatches by queue. ``spread``: calls of many jobs, cut so that each of the
        queue's live workers gets a share (and never past the chunk setting)."""
        out = Bundled()
        for queue, items in calls.items():
            size = self._size(queue, items, spread)
            batch: list[Dispatch] = []
            for i in range(0, len(items), size):
                did = new_dispatch_id()
                part = items[i : i + size]
                for c in part:
                    out.steps[c.job_id].append(c.step(queue, did))
                batch.append(Dispatch(did, tuple(c.task_call(traces.get(c.job_id)) for c in part)))
            out.by_queue[queue] = batch
        return out

    def _size(self, queue: str, items: Sequence[Call], spread: bool) -> int:
        chosen = items[0].command.task.options.chunk
        if not spread:
            return chosen or self.chunk_size(len(items))
        workers = self.router.listening(queue)
        size = chosen or max(self.chunk_size(len(items)), math.ceil(len(items) / max(1, workers)))
        return min(size, self.settings.dispatch_chunk)

    def send(self, bundled: Bundled, moved: Collection[str] | None = None) -> None:
        """Send what was bundled; with ``moved``, only the calls of those jobs (the others' replays did not count)."""
        for queue, batch in bundled.by_queue.items():
            if moved is not None:
                kept = (Dispatch(d.dispatch_id, tuple(c for c in d.calls if c.job_id in moved)) for d in batch)
                batch = [d for d in kept if d.calls]
            self.queues.send(queue, batch)

    def send_rows(
        self,
        by_queue: Mapping[tuple[str, str], Sequence[StepRow]],
        from_states: Sequence[TaskState],
        *,
        new_attempt: bool,
    ) -> int:
        """Recorded steps sent (again) to their queue, by (queue, reason): each moves to queued by
        compare-and-set from ``from_states`` first, and only those that moved are sent."""
        sent = 0
        for (queue, reason), group in by_queue.items():
            size = self.chunk_size(len(group))
            batch = []
            for i in range(0, len(group), size):
                did = new_dispatch_id()
                ids = [r.id for r in group[i : i + size]]
                moved = self.steps.requeue(
                    ids, from_states, did, new_attempt=new_attempt, queue=queue, reason=reason or None
                )
                if moved:
                    batch.append(
                        Dispatch(did, tuple(r.call(tracing.current() or tracing.for_job(r.job_id)) for r in moved))
                    )
                    sent += len(moved)
            self.queues.send(queue, batch)
        return sent
