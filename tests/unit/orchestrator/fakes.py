"""In-memory stand-ins for what the orchestrator's parts use (``agentbus/orchestrator/ports.py``).

``Record`` plays the store's jobs, steps and approvals with the same rules that matter to
the orchestrator (a replay is written by compare-and-set on an open job; a step moves only
from the states it is asked to move from; a superseded attempt's outcome is dropped), so
the parts can be unit-tested without PostgreSQL. The Redis side records what was sent.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from agentbus.config import Settings
from agentbus.domain import App, Conflict, ControlEvent, Dispatch, ErrorInfo, JobState, NotFound, TaskState
from agentbus.domain.hitl import HumanRequest
from agentbus.domain.messages import Heartbeat, JobEnd
from agentbus.domain.output import Output
from agentbus.domain.replay import StepRecord
from agentbus.domain.states import JOB_REPLAYABLE
from agentbus.orchestrator.compose import Parts, compose
from agentbus.orchestrator.driver import Driver
from agentbus.orchestrator.maintenance import Maintenance
from agentbus.store import Due, JobRecord, NewJob, NewStep, PurgeCounts, Replayed, StepRow, TaskOutcome

OPEN_JOB = (JobState.SUBMITTED, JobState.RUNNING, JobState.WAITING_HUMAN)
OPEN_STEP = (TaskState.PENDING, TaskState.QUEUED, TaskState.RUNNING, TaskState.RETRYING)


@dataclass
class Step:
    new: NewStep
    state: TaskState
    result: Any = None
    error: ErrorInfo | None = None
    attempt: int = 1
    queue: str | None = None
    dispatch_id: str | None = None
    worker: str | None = None
    started_at: float | None = None
    not_before: float | None = None
    route_reason: str | None = None
    updated_at: float = field(default_factory=time.time)

    @property
    def id(self) -> str:
        return self.new.id

    def row(self) -> StepRow:
        n = self.new
        return StepRow(
            n.id,
            n.job_id,
            n.name,
            self.state,
            n.args or {},
            self.attempt,
            n.retries,
            n.timeout or 300.0,
            n.backoff,
            self.queue,
            self.dispatch_id,
            self.worker,
            self.started_at,
            n.priority,
            n.concurrency_key,
            self.route_reason,
        )

    def record(self) -> StepRecord:
        return StepRecord(self.new.seq, self.new.kind, self.new.name, self.state, self.result, self.error)  # type: ignore[arg-type]


class Record:
    """Jobs, steps and approvals in memory (``Jobs``, ``Steps``, ``Approvals`` protocols)."""

    def __init__(self) -> None:
        self.jobs: dict[str, JobRecord] = {}
        self.steps: dict[str, Step] = {}
        self.early: set[str] = set()
        self.asks: dict[str, list[tuple[int, HumanRequest]]] = {}
        self.expiring: list[str] = []
        self._ids = itertools.count(1)

    # -- Jobs
    def create_job(self, new: NewJob) -> tuple[JobRecord, bool]:
        job_id = new.id or f"job{next(self._ids)}"
        if job_id in self.jobs:
            return self.jobs[job_id], False
        now = time.time()
        job = JobRecord(
            job_id,
            new.type,
            JobState.SUBMITTED,
            new.input,
            None,
            None,
            new.idempotency_key,
            new.priority,
            new.parent_id,
            new.parent_seq,
            now,
            None,
            None,
            now,
            new.tenant,
        )
        self.jobs[job_id] = job
        return job, True

    def job_to_advance(self, job_id: str) -> tuple[JobRecord, bool]:
        if job_id not in self.jobs:
            raise NotFound(f"job {job_id} not found")
        return self.jobs[job_id], self.waiting(job_id)

    def job_to_replay(
        self, job_id: str, *, resume: bool = False
    ) -> tuple[JobRecord, bool, dict[int, StepRecord] | None]:
        job, waiting = self.job_to_advance(job_id)
        replays = job.state in JOB_REPLAYABLE and (resume or not waiting)  # as ``store.Jobs.job_to_replay``
        return job, waiting, self.load_journal(job_id) if replays else None

    def jobs_to_replay(self, job_ids: Sequence[str]) -> dict[str, tuple[JobRecord, bool, dict[int, StepRecord] | None]]:
        return {j: self.job_to_replay(j) for j in job_ids if j in self.jobs}

    def cancel_job(self, job_id: str, tenant: str | None = None) -> JobRecord:
        job = self.jobs[job_id]
        if job.state.terminal and job.state != JobState.CANCELLED:
            raise Conflict(f"job {job_id} has already {job.state}")
        self.jobs[job_id] = replace(job, state=JobState.CANCELLED)
        return self.jobs[job_id]

    def children(self, job_id: str) -> list[str]:
        return [j.id for j in self.jobs.values() if j.parent_id == job_id]

    def jobs_older_than(self, states: list[JobState], before: float, limit: int = 500) -> list[str]:
        return [j.id for j in self.jobs.values() if j.state in states and j.updated_at < before][:limit]

    # -- Steps
    def waiting(self, job_id: str) -> bool:
        if job_id in self.early and not self.jobs[job_id].state.terminal:  # as ``Jobs.job_to_advance``
            return False  # its last replay waits on fewer steps than are open (ctx.wait_any)
        return any(s.new.job_id == job_id and s.state in OPEN_STEP for s in self.steps.values())

    def of_job(self, job_id: str) -> list[Step]:
        return sorted((s for s in self.steps.values() if s.new.job_id == job_id), key=lambda s: s.new.seq)

    def load_journal(self, job_id: str) -> dict[int, StepRecord]:
        return {s.new.seq: s.record() for s in self.of_job(job_id)}

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
    ) -> bool:
        job = self.jobs.get(job_id)
        if job is None or job.state not in OPEN_JOB:
            return False
        if early:
            self.early.add(job_id)
        else:
            self.early.discard(job_id)
        state = outcome or (JobState.WAITING_HUMAN if asks else JobState.RUNNING)
        self.jobs[job_id] = replace(job, state=state, result=result, error=error, updated_at=time.time())
        for n in steps:
            if n.id not in self.steps:
                self.steps[n.id] = Step(
                    n,
                    n.state,
                    n.result,
                    queue=n.queue,
                    dispatch_id=n.dispatch_id,
                    not_before=n.not_before,
                    route_reason=n.route_reason,
                )
        if asks:
            self.asks[job_id] = list(asks)
        return True

    def record_replays(self, replays: Sequence[Replayed]) -> set[str]:
        return {
            r.job_id
            for r in replays
            if self.record_replay(r.job_id, r.steps, r.outcome, result=r.result, error=r.error)
        }

    def settle_child_step(
        self, parent_id: str, seq: int, state: TaskState, result: Any, error: ErrorInfo | None
    ) -> bool:
        s = self.steps.get(f"{parent_id}-{seq}")
        if s is None or s.state not in OPEN_STEP:
            return False
        s.state, s.result, s.error = state, result, error
        return True

    def cancel_open_steps(self, job_id: str) -> list[StepRow]:
        for s in self.of_job(job_id):
            if s.state in (TaskState.PENDING, TaskState.QUEUED, TaskState.RETRYING):
                s.state = TaskState.CANCELLED
        return [s.row() for s in self.of_job(job_id) if s.state == TaskState.RUNNING]

    def requeue(
        self,
        task_ids: Sequence[str],
        from_states: Sequence[TaskState],
        dispatch_id: str,
        *,
        new_attempt: bool,
        queue: str | None = None,
        reason: str | None = None,
    ) -> list[StepRow]:
        moved = []
        for tid in task_ids:
            s = self.steps[tid]
            if s.state not in from_states:
                continue
            s.state, s.dispatch_id, s.worker, s.started_at = TaskState.QUEUED, dispatch_id, None, None
            s.attempt += new_attempt
            s.queue = queue if queue is not None else s.queue
            s.route_reason = reason if reason is not None else s.route_reason
            moved.append(s.row())
        return moved

    def park(self, task_ids: Sequence[str], from_states: Sequence[TaskState], reason: str, *, new_attempt: bool) -> int:
        n = 0
        for tid in task_ids:
            s = self.steps[tid]
            if s.state in from_states:
                s.state, s.route_reason, s.worker, s.dispatch_id = TaskState.PENDING, reason, None, None
                s.attempt += new_attempt
                n += 1
        return n

    def pending_tasks(self, limit: int = 1000) -> list[StepRow]:
        rows = [s for s in self.steps.values() if s.state == TaskState.PENDING and s.new.kind == "task"]
        return [s.row() for s in sorted(rows, key=lambda s: -s.new.priority)][:limit]

    def slots_used(self, keys: Sequence[str]) -> dict[str, int]:
        used = dict.fromkeys(keys, 0)
        for s in self.steps.values():
            if s.new.concurrency_key in used and s.state in (TaskState.QUEUED, TaskState.RUNNING):
                used[s.new.concurrency_key] += 1
        return used

    def set_route_reason(self, task_ids: Sequence[str], reason: str) -> None:
        for tid in task_ids:
            self.steps[tid].route_reason = reason

    def tasks_in_state(
        self, state: TaskState, *, due_before: float | None = None, older_than: float | None = None, limit: int = 1000
    ) -> list[StepRow]:
        rows = [s for s in self.steps.values() if s.state == state and s.new.kind == "task"]
        if due_before is not None:
            rows = [s for s in rows if s.not_before is not None and s.not_before <= due_before]
        if older_than is not None:
            rows = [s for s in rows if s.updated_at < older_than]
        return [s.row() for s in rows][:limit]

    def due(self, now: float) -> Due:
        """``store.DueWork``: what the in-memory steps and approvals have due (no signal waits here)."""
        return Due(
            retries=bool(self.tasks_in_state(TaskState.RETRYING, due_before=now)),
            sleeps=any(
                s.new.kind == "sleep" and s.state == TaskState.PENDING and (s.not_before or 0) <= now
                for s in self.steps.values()
            ),
            approvals=bool(self.expiring),
            signals=False,
            pending=bool(self.pending_tasks()),
        )

    def fire_timers(self, now: float, limit: int = 1000) -> list[str]:
        due = [
            s
            for s in self.steps.values()
            if s.new.kind == "sleep" and s.state == TaskState.PENDING and (s.not_before or 0) <= now
        ][:limit]
        for s in due:
            s.state = TaskState.SUCCEEDED
        return sorted({s.new.job_id for s in due})

    def sweep_orphans(self) -> int:
        n = 0
        for s in self.steps.values():
            if (
                s.state in (TaskState.PENDING, TaskState.QUEUED, TaskState.RETRYING)
                and self.jobs[s.new.job_id].state.terminal
            ):
                s.state = TaskState.CANCELLED
                n += 1
        return n

    def unsettled_children(self, older_than: float, limit: int = 500) -> list[str]:
        return [
            s.new.id
            for s in self.steps.values()
            if s.new.kind == "agent"
            and s.state == TaskState.RUNNING
            and s.new.id in self.jobs
            and self.jobs[s.new.id].state.terminal
        ][:limit]

    def record_outcomes(self, outcomes: Sequence[TaskOutcome], worker: str | None = None) -> list[str]:
        jobs = set()
        for o in outcomes:
            s = self.steps[o.task_id]
            if s.state == TaskState.RUNNING and s.attempt == o.attempt:
                s.state, s.result, s.error, s.not_before = o.state, o.result, o.error, o.not_before
                jobs.add(s.new.job_id)
        return sorted(jobs)

    # -- for the tests
    def add(self, steps: Sequence[NewStep]) -> None:
        """Steps as a replay of their (running) job recorded them."""
        for job_id in dict.fromkeys(st.job_id for st in steps):
            self.create_job(NewJob("agent", {}, id=job_id))
            assert self.record_replay(job_id, [st for st in steps if st.job_id == job_id], None)

    def run(self, task_id: str, worker: str = "w1") -> None:
        s = self.steps[task_id]
        assert s.state == TaskState.QUEUED, s.state
        s.state, s.worker, s.started_at = TaskState.RUNNING, worker, time.time()

    def succeed(self, task_id: str, result: Any) -> list[str]:
        s = self.steps[task_id]
        return self.record_outcomes([TaskOutcome(task_id, s.attempt, TaskState.SUCCEEDED, result=result)])

    # -- Approvals
    def cancel_approvals(self, job_id: str) -> int:
        return len(self.asks.pop(job_id, []))

    def expire_due(self, now: float, limit: int = 200) -> list[str]:
        due, self.expiring = self.expiring[:limit], self.expiring[limit:]
        return due


class Queues:
    """``bus.Dispatcher``: what was sent to each queue, and which calls were stopped."""

    def __init__(self) -> None:
        self.sent: dict[str, list[Dispatch]] = {}
        self.cancelled: list[tuple[str, str]] = []
        self.known: dict[str, tuple[str | None, str | None]] = {}

    def send(self, name: str, dispatches: Sequence[Dispatch], at_front: bool = False) -> None:
        if dispatches:
            self.sent.setdefault(name, []).extend(dispatches)
            for d in dispatches:
                self.known[d.dispatch_id] = ("queued", None)

    def statuses(self, dispatch_ids: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        return {d: self.known.get(d, (None, None)) for d in dispatch_ids}

    def cancel_call(self, worker_name: str, task_id: str) -> None:
        self.cancelled.append((worker_name, task_id))

    def calls(self, queue: str | None = None) -> list[str]:
        """The task ids sent (to ``queue``), in order."""
        return [c.task_id for q, ds in self.sent.items() if queue in (None, q) for d in ds for c in d.calls]


class Events:
    def __init__(self) -> None:
        self.published: list[ControlEvent] = []

    def publish(self, events: Sequence[ControlEvent]) -> None:
        self.published.extend(events)


class Workers:
    """``bus.Fleet``: heartbeats set by the test; ``reads`` counts how often they were read."""

    def __init__(self, *heartbeats: Heartbeat) -> None:
        self.beats = list(heartbeats)
        self.reads = 0
        self.lost: dict[str, dict[str, Any]] = {}

    def heartbeats(self) -> list[Heartbeat]:
        self.reads += 1
        return list(self.beats)

    def alive(self, worker_ids: Sequence[str]) -> dict[str, bool]:
        live = {h.id for h in self.beats}
        return {w: w in live for w in worker_ids}

    def mark_lost(self, worker_id: str, info: dict[str, Any]) -> None:
        self.lost[worker_id] = info


class Notices:
    def __init__(self) -> None:
        self.ends: list[JobEnd] = []
        self.changed_jobs: list[str] = []

    def notify(self, finished: Sequence[JobEnd], changed: Sequence[str]) -> None:
        self.ends.extend(finished)
        self.changed_jobs.extend(changed)


class Outputs:
    def __init__(self) -> None:
        self.records: list[Output] = []

    def append(self, records: Sequence[Output]) -> None:
        self.records.extend(records)


class Signals:
    """No signal is ever sent in these tests (signals are tested on the pure engine and the store)."""

    def expire_due(self, now: float, limit: int = 200) -> list[str]:
        return []

    def deliver_waiting(self, limit: int = 200) -> list[str]:
        return []


class Purger:
    def __init__(self) -> None:
        self.asked: list[float] = []

    def purge_batch(self, before: float, now: float, batch: int = 1000) -> PurgeCounts:
        self.asked.append(before)
        return PurgeCounts()


CPU_WORKER = Heartbeat("w1", queues=("cpu.high", "cpu", "cpu.low"), concurrency=8, seen=time.time())


@dataclass
class World:
    """The orchestrator's parts over the fakes, as ``service.py`` puts them together over the store."""

    app: App
    settings: Settings
    record: Record
    queues: Queues
    events: Events
    workers: Workers
    notices: Notices
    outputs: Outputs
    parts: Parts

    @property
    def driver(self) -> Driver:
        return self.parts.driver

    @property
    def maintenance(self) -> Maintenance:
        return self.parts.maintenance

    def submit(self, type: str, input: dict[str, Any] | None = None, **kw: Any) -> str:
        return self.record.create_job(NewJob(type, input or {}, **kw))[0].id

    def job(self, job_id: str) -> JobRecord:
        return self.record.jobs[job_id]

    def run_all(self, result: Any = None) -> list[str]:
        """Every queued call taken by a worker and succeeded (with ``result``, else its args): the jobs moved."""
        moved: set[str] = set()
        for s in list(self.record.steps.values()):
            if s.state == TaskState.QUEUED:
                self.record.run(s.id)
                moved.update(self.record.succeed(s.id, result if result is not None else s.new.args))
        return sorted(moved)


def world(app: App, *beats: Heartbeat, settings: Settings | None = None) -> World:
    settings = settings or Settings()
    record, queues, events, workers, notices, outputs = (
        Record(),
        Queues(),
        Events(),
        Workers(*beats),
        Notices(),
        Outputs(),
    )
    parts = compose(
        app,
        settings,
        jobs=record,
        steps=record,
        approvals=record,
        signals=Signals(),
        queues=queues,
        events=events,
        workers=workers,
        notices=notices,
        outputs=outputs,
        retention=Purger(),
        due=record,
    )
    return World(app, settings, record, queues, events, workers, notices, outputs, parts)
