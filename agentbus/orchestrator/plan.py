"""Replaying a job, and planning what its new commands need: steps to record, calls to send, children.

Nothing here writes: the driver records a plan (and only then sends its calls).
"""

from __future__ import annotations

import json
import time
import uuid
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from agentbus.config import Settings
from agentbus.domain import (
    App,
    AskHuman,
    ErrorInfo,
    HumanRequest,
    JobState,
    RecordValue,
    ReplayResult,
    ScheduleTask,
    StartChild,
    StartTimer,
    StepRecord,
    TaskCall,
    TaskState,
    WaitSignal,
    replay,
)
from agentbus.domain.app import JobType
from agentbus.domain.replay import Command
from agentbus.orchestrator.router import Router
from agentbus.store import JobRecord, NewJob, NewStep, step_id

WAITING_FOR_SLOT = "waiting for a concurrency slot"


def _hex_uuid() -> str:
    return uuid.uuid4().hex


def task_step(
    job_id: str,
    cmd: ScheduleTask,
    priority: int,
    state: TaskState,
    *,
    queue: str | None,
    reason: str,
    dispatch_id: str | None = None,
    concurrency_key: str | None = None,
) -> NewStep:
    """The step of a new task call, with its task's options."""
    o = cmd.task.options
    return NewStep(
        job_id,
        cmd.seq,
        "task",
        cmd.task.name,
        state,
        args=cmd.args,
        retries=o.retries,
        timeout=o.timeout,
        backoff=o.backoff,
        queue=queue,
        dispatch_id=dispatch_id,
        priority=priority,
        concurrency_key=concurrency_key,
        route_reason=reason,
    )


@dataclass(frozen=True)
class Call:
    """A new task call that can go to its queue now (``reason``: why that queue)."""

    job_id: str
    priority: int
    command: ScheduleTask
    reason: str

    def step(self, queue: str, dispatch_id: str) -> NewStep:
        return task_step(
            self.job_id,
            self.command,
            self.priority,
            TaskState.QUEUED,
            queue=queue,
            reason=self.reason,
            dispatch_id=dispatch_id,
        )

    def task_call(self, trace: str | None) -> TaskCall:
        """The first attempt of the call, as a worker is sent it."""
        c, o = self.command, self.command.task.options
        return TaskCall(
            step_id(self.job_id, c.seq), self.job_id, c.task.name, c.args, 1, o.retries, o.timeout, o.backoff, trace
        )


@dataclass
class Plan:
    """What one replay's commands need, before anything is written."""

    steps: list[NewStep] = field(default_factory=list)
    """Recorded with the replay: calls that wait as pending, timers, values, children's, questions' and
    signal waits' steps."""
    calls: defaultdict[str, list[Call]] = field(default_factory=lambda: defaultdict(list))
    """Calls that go to a queue now, by queue: their steps are made when they are bundled."""
    children: list[NewJob] = field(default_factory=list)
    asks: list[tuple[int, HumanRequest]] = field(default_factory=list)

    @property
    def parks(self) -> bool:
        """Whether a call waits as pending (for a GPU worker, for a concurrency slot)."""
        return any(st.state == TaskState.PENDING and st.kind == "task" for st in self.steps)


def simple(commands: Sequence[Command]) -> bool:
    """Only task calls, timers and values: a replay that can be recorded together with other jobs'."""
    return all(isinstance(c, ScheduleTask | RecordValue | StartTimer) for c in commands)


def outcome_of(res: ReplayResult) -> tuple[JobState | None, Any, ErrorInfo | None]:
    """How a replay leaves its job: its final state (None: it goes on), its result and its error."""
    if res.status == "completed":
        try:
            json.dumps(res.result)
        except (TypeError, ValueError) as exc:
            return JobState.FAILED, None, ErrorInfo("TypeError", f"result is not JSON: {exc}")
        return JobState.SUCCEEDED, res.result, res.error
    if res.status == "failed":
        return JobState.FAILED, res.result, res.error
    return None, res.result, res.error


class Planner:
    def __init__(
        self,
        app: App,
        settings: Settings,
        router: Router,
        clock: Callable[[], float] = time.time,
        new_uuid: Callable[[], str] = _hex_uuid,
    ) -> None:
        self.app = app
        self.settings = settings
        self.router = router
        self.clock = clock
        self.new_uuid = new_uuid

    def replay(self, job: JobRecord, job_type: JobType, journal: dict[int, StepRecord]) -> ReplayResult:
        # The cap is enforced inside the replay, step by step: a job asking for millions of calls
        # fails at the first one past the cap instead of holding the orchestrator (and every other
        # tenant's job) while its whole fan-out is built. A fan-out under the cap is built a
        # budget of calls at a time, with other jobs' events handled in between.
        s = self.settings
        return replay(
            self.app,
            job_type,
            job.input,
            journal,
            job_id=job.id,
            clock=self.clock,
            new_uuid=self.new_uuid,
            max_steps=s.max_tasks_per_job,
            max_new_calls=s.max_calls_per_replay,
            max_output_bytes=s.output_max_bytes,
        )

    def plan(self, job: JobRecord, commands: Sequence[Command]) -> Plan:
        """Each command's step, or its call's queue. Raises ConfigError (a concurrency_key its
        arguments cannot fill)."""
        out = Plan()
        for cmd in commands:
            if isinstance(cmd, ScheduleTask):
                self._route(job, cmd, out)
            elif isinstance(cmd, StartTimer):
                out.steps.append(NewStep(job.id, cmd.seq, "sleep", "sleep", TaskState.PENDING, not_before=cmd.fire_at))
            elif isinstance(cmd, RecordValue):
                out.steps.append(NewStep(job.id, cmd.seq, "value", cmd.name, TaskState.SUCCEEDED, result=cmd.value))
            elif isinstance(cmd, StartChild):
                out.steps.append(NewStep(job.id, cmd.seq, "agent", cmd.agent, TaskState.RUNNING, args=cmd.input))
                out.children.append(
                    NewJob(
                        cmd.agent,
                        cmd.input,
                        priority=job.priority,
                        parent_id=job.id,
                        parent_seq=cmd.seq,
                        id=step_id(job.id, cmd.seq),
                        tenant=job.tenant,
                    )
                )
            elif isinstance(cmd, AskHuman):
                out.steps.append(
                    NewStep(job.id, cmd.seq, "human", "ask_human", TaskState.PENDING, args=cmd.request.to_dict())
                )
                out.asks.append((cmd.seq, cmd.request))
            elif isinstance(cmd, WaitSignal):
                out.steps.append(
                    NewStep(
                        job.id,
                        cmd.seq,
                        "signal",
                        cmd.wait.name,
                        TaskState.PENDING,
                        args=cmd.wait.to_dict(),
                        not_before=cmd.deadline,
                    )
                )
        return out

    def _route(self, job: JobRecord, cmd: ScheduleTask, out: Plan) -> None:
        """A call goes to its queue now, or waits as pending: for a worker that can take it, or
        (with a concurrency key) for admission, which counts the key's calls in flight."""
        key = cmd.task.options.concurrency_for(cmd.args)
        r = self.router.route(cmd.task.options, job.priority, cmd.task.name)
        if r.queue is None or key is not None:
            reason = r.reason if r.queue is None else WAITING_FOR_SLOT
            out.steps.append(
                task_step(
                    job.id, cmd, job.priority, TaskState.PENDING, queue=r.queue, reason=reason, concurrency_key=key
                )
            )
        else:
            out.calls[r.queue].append(Call(job.id, job.priority, cmd, r.reason))
