"""What the orchestrator's parts need from the record and from Redis: small protocols.

Each part takes the few objects it uses, typed by these, so a unit test hands it in-memory
fakes (``tests/unit/orchestrator/fakes.py``) instead of PostgreSQL and Redis. The record's
protocols follow the store's repositories (``store.Jobs``, ``Steps``, ``Approvals``, ``Signals``, ``Webhooks``)
and list only the methods the orchestrator calls, with the repositories' names and signatures.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

from agentbus.domain import ControlEvent, Dispatch, ErrorInfo, JobState, TaskState
from agentbus.domain.hitl import HumanRequest
from agentbus.domain.messages import Heartbeat, JobEnd
from agentbus.domain.output import Output
from agentbus.domain.replay import StepRecord
from agentbus.store import (
    Due,
    JobRecord,
    NewJob,
    NewSchedule,
    NewStep,
    PurgeCounts,
    Replayed,
    ScheduleRecord,
    StepRow,
    TaskOutcome,
    WebhookRow,
)

# -- the record (PostgreSQL) ------------------------------------------------------------------


class Jobs(Protocol):
    """The jobs the orchestrator reads, creates (children) and cancels (``store.Jobs``)."""

    def job_to_replay(
        self, job_id: str, *, resume: bool = False
    ) -> tuple[JobRecord, bool, dict[int, StepRecord] | None]: ...

    def jobs_to_replay(
        self, job_ids: Sequence[str]
    ) -> dict[str, tuple[JobRecord, bool, dict[int, StepRecord] | None]]: ...

    def create_job(self, new: NewJob) -> tuple[JobRecord, bool]: ...

    def cancel_job(self, job_id: str, tenant: str | None = None) -> JobRecord: ...

    def children(self, job_id: str) -> list[str]: ...

    def jobs_older_than(self, states: list[JobState], before: float, limit: int = 500) -> list[str]: ...


class DueJobs(Protocol):
    """Jobs submitted for later, submitted when due (``store.Jobs``)."""

    def submit_due(self, now: float, limit: int = 500) -> list[tuple[str, float]]: ...


class ScheduleStore(Protocol):
    """Schedules, kept from the app and fired (``store.Schedules``)."""

    def keep(self, new: NewSchedule) -> tuple[ScheduleRecord, bool]: ...

    def due(self, now: float, limit: int = 100) -> list[ScheduleRecord]: ...

    def fire(self, schedule: ScheduleRecord, ticks: Sequence[int], next_tick: int, now: float) -> list[str] | None: ...


class Steps(Protocol):
    """Journals, replays recorded, and task steps moved between states (``store.Steps``)."""

    def load_journal(self, job_id: str) -> dict[int, StepRecord]: ...

    def record_replay(
        self,
        job_id: str,
        steps: Sequence[NewStep],
        outcome: JobState | None,
        *,
        result: Any = None,
        error: ErrorInfo | None = None,
        asks: Sequence[tuple[int, HumanRequest]] = (),
        early: bool = False,
    ) -> bool: ...

    def record_replays(self, replays: Sequence[Replayed]) -> set[str]: ...

    def settle_child_step(
        self, parent_id: str, seq: int, state: TaskState, result: Any, error: ErrorInfo | None
    ) -> bool: ...

    def cancel_open_steps(self, job_id: str) -> list[StepRow]: ...

    def requeue(
        self,
        task_ids: Sequence[str],
        from_states: Sequence[TaskState],
        dispatch_id: str,
        *,
        new_attempt: bool,
        queue: str | None = None,
        reason: str | None = None,
    ) -> list[StepRow]: ...

    def park(
        self, task_ids: Sequence[str], from_states: Sequence[TaskState], reason: str, *, new_attempt: bool
    ) -> int: ...

    def pending_tasks(self, limit: int = 1000) -> list[StepRow]: ...

    def slots_used(self, keys: Sequence[str]) -> dict[str, int]: ...

    def set_route_reason(self, task_ids: Sequence[str], reason: str) -> None: ...

    def tasks_in_state(
        self, state: TaskState, *, due_before: float | None = None, older_than: float | None = None, limit: int = 1000
    ) -> list[StepRow]: ...

    def fire_timers(self, now: float, limit: int = 1000) -> list[str]: ...

    def sweep_orphans(self) -> int: ...

    def unsettled_children(self, older_than: float, limit: int = 500) -> list[str]: ...

    def record_outcomes(self, outcomes: Sequence[TaskOutcome], worker: str | None = None) -> list[str]: ...


class Approvals(Protocol):
    """Questions for people: cancelled with their job, expired past their deadline (``store.Approvals``)."""

    def cancel_approvals(self, job_id: str) -> int: ...

    def expire_due(self, now: float, limit: int = 200) -> list[str]: ...


class Timers(Protocol):
    """Which timers passes have anything due, in one look (``store.DueWork``)."""

    def due(self, now: float) -> Due: ...


class Signals(Protocol):
    """Signals for waits: waits timed out, kept signals paired with waits (``store.Signals``)."""

    def expire_due(self, now: float, limit: int = 200) -> list[str]: ...

    def deliver_waiting(self, limit: int = 200) -> list[str]: ...


class Webhooks(Protocol):
    """The approval webhooks' outbox (``store.Webhooks``)."""

    def due_webhooks(self, now: float, limit: int = 50) -> list[WebhookRow]: ...

    def webhook_attempted(self, delivery_id: str, status: str, next_at: float, error: str | None) -> None: ...


class Purger(Protocol):
    """Retention: deletes what is old enough, a batch at a time (``store.Retention``)."""

    def purge_batch(self, before: float, now: float, batch: int = 1000) -> PurgeCounts: ...


# -- Redis --------------------------------------------------------------------------------------


class Queues(Protocol):
    """The task queues (``bus.Dispatcher``)."""

    def send(self, name: str, dispatches: Sequence[Dispatch], at_front: bool = False) -> None: ...

    def statuses(self, dispatch_ids: Sequence[str]) -> dict[str, tuple[str | None, str | None]]: ...

    def cancel_call(self, worker_name: str, task_id: str) -> None: ...


class Events(Protocol):
    """The control stream, written to (``bus.ControlStream``)."""

    def publish(self, events: Sequence[ControlEvent]) -> None: ...


class Workers(Protocol):
    """The live fleet, from the workers' heartbeats (``bus.Fleet``)."""

    def heartbeats(self) -> list[Heartbeat]: ...

    def alive(self, worker_ids: Sequence[str]) -> dict[str, bool]: ...

    def mark_lost(self, worker_id: str, info: dict[str, Any]) -> None: ...


class Notices(Protocol):
    """Hints to the API's waiters that jobs finished or changed (``bus.JobNotifier``)."""

    def notify(self, finished: Sequence[JobEnd], changed: Sequence[str]) -> None:
        """Send each end only once it is committed, as it was committed: a long-poll answers from it."""
        ...


class Outputs(Protocol):
    """Where agents' ``ctx.emit`` outputs go (``bus.OutputStream``)."""

    def append(self, records: Sequence[Output]) -> None: ...
