"""The replay engine: pure, no I/O.

An agent is a plain function. Every ``ctx.run / ctx.map / ctx.call_agent /
ctx.sleep / ctx.now / ctx.uuid / ctx.ask_human / ctx.ask_all`` is a *step* with a sequence number. Replaying
the agent against its journal returns, for a finished step, its journaled
result; for a missing step, a command to schedule it, after which the agent is
suspended. ``replay`` returns what the agent did this time: completed, failed,
or suspended with new commands.

With ``max_steps`` the engine enforces the task cap as the agent asks for steps: the step past the
cap raises ``TooManyTasks`` at once, so ``ctx.map(task, range(10**8))`` consumes its iterable only
up to the cap and the orchestrator never builds (or holds) the rest. With ``max_new_calls`` one
replay schedules at most that many new task calls: a larger fan-out suspends with ``more`` set and
is built over several replays, so that the orchestrator serves other jobs in between (its items are
still counted against the cap at once, so a fan-out over the cap fails before any of it is sent).
"""

from __future__ import annotations

import traceback as _tb
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NoReturn

from agentbus.domain.app import AgentDef, App, TaskDef
from agentbus.domain.builtins import AgentMemory
from agentbus.domain.context import Context
from agentbus.domain.errors import (
    NonDeterministicAgent,
    TaskCancelled,
    TaskFailed,
    TooManyTasks,
)
from agentbus.domain.hitl import HumanRequest
from agentbus.domain.output import MAX_OUTPUT_BYTES, check_output
from agentbus.domain.states import TaskState

StepKind = Literal["task", "agent", "sleep", "value", "human"]


@dataclass(frozen=True)
class ErrorInfo:
    type: str
    message: str
    traceback: str | None = field(default=None, compare=False)
    """Where the user's own code raised (``format_traceback``); None for errors agentbus itself decides.
    Not compared: two reports of one error are equal wherever the code raised it from."""

    def to_dict(self) -> dict[str, str]:
        d = {"type": self.type, "message": self.message}
        if self.traceback is not None:  # only when set: readers of the old shape see no new key otherwise
            d["traceback"] = self.traceback
        return d

    @classmethod
    def of(cls, exc: BaseException) -> ErrorInfo:
        """The error of user code that raised ``exc``, caught in the frame that called it."""
        return cls(type(exc).__name__, str(exc), format_traceback(exc))


MAX_TRACEBACK_CHARS = 16 * 1024
"""A traceback keeps its last 16 KiB: the innermost frames and the exception line say what failed, and a
deep recursion must not make every job row (and API response) megabytes long."""


def format_traceback(exc: BaseException) -> str:
    """``exc``'s traceback without its first frame (the executor's or engine's own call of the user's
    function, which says nothing to the user), trimmed to its last ``MAX_TRACEBACK_CHARS``."""
    tb = exc.__traceback__
    text = "".join(_tb.format_exception(type(exc), exc, tb.tb_next if tb is not None else None))
    if len(text) > MAX_TRACEBACK_CHARS:
        text = "...\n" + text[-MAX_TRACEBACK_CHARS:]
    return text


@dataclass(frozen=True)
class StepRecord:
    """One journal entry as the store holds it."""

    seq: int
    kind: StepKind
    name: str
    state: TaskState
    result: Any = None
    error: ErrorInfo | None = None


@dataclass(frozen=True)
class ScheduleTask:
    seq: int
    task: TaskDef
    args: dict[str, Any]


@dataclass(frozen=True)
class StartChild:
    seq: int
    agent: str
    input: dict[str, Any]


@dataclass(frozen=True)
class StartTimer:
    seq: int
    fire_at: float


@dataclass(frozen=True)
class RecordValue:
    seq: int
    name: Literal["now", "uuid"]
    value: Any


@dataclass(frozen=True)
class AskHuman:
    seq: int
    request: HumanRequest


Command = ScheduleTask | StartChild | StartTimer | RecordValue | AskHuman


@dataclass(frozen=True)
class Emitted:
    """An agent's ``ctx.emit`` that no earlier replay made: send it (``seq``: the n-th emit of the agent)."""

    seq: int
    data_json: str


@dataclass(frozen=True)
class ReplayResult:
    status: Literal["completed", "failed", "suspended"]
    commands: tuple[Command, ...] = ()
    result: Any = None
    error: ErrorInfo | None = None
    more: bool = False
    """Suspended because this replay's budget of new calls was spent, not (only) to wait: replay again."""
    outputs: tuple[Emitted, ...] = ()


class _Suspend(BaseException):
    """Unwinds the agent when it awaits a step that has not finished.

    A BaseException so that an agent's ``except Exception`` cannot swallow it.
    """


def _raise_for(rec: StepRecord) -> NoReturn:
    if rec.state == TaskState.CANCELLED:
        raise TaskCancelled(f"{rec.kind} {rec.name!r} was cancelled")
    err = rec.error or ErrorInfo("Error", "unknown error")
    raise TaskFailed(rec.name, err.type, err.message, err.traceback)


class AgentContext(Context):
    """The context an agent runs with during one replay."""

    def __init__(
        self,
        app: App,
        job_id: str,
        journal: Mapping[int, StepRecord],
        clock: Callable[[], float],
        new_uuid: Callable[[], str],
        max_steps: int | None = None,
        max_new_calls: int | None = None,
        max_output_bytes: int = MAX_OUTPUT_BYTES,
    ) -> None:
        self.app = app
        self.job_id = job_id
        self._journal = journal
        self._clock = clock
        self._new_uuid = new_uuid
        self._max_steps = max_steps
        self._calls_left = max_new_calls
        self.more = False
        """Set when the budget of new calls stopped this replay before the agent asked for all it will."""
        self._seq = 0
        self.commands: list[Command] = []
        self._frontier = max(journal, default=-1) + 1
        self._emits = 0
        self._max_output_bytes = max_output_bytes
        self.outputs: list[Emitted] = []
        self.memory = AgentMemory(self)
        self.divergence: NonDeterministicAgent | None = None
        """Set on a divergence, so that an agent catching ``Exception`` cannot hide it."""
        self.over_cap: TooManyTasks | None = None
        """Set when the agent asked for a step past the cap; like a divergence, it cannot be caught away."""

    # -- the step machinery ------------------------------------------------------------------
    def _step(self, kind: StepKind, name: str) -> tuple[int, StepRecord | None]:
        seq = self._seq
        if self._max_steps is not None and seq >= self._max_steps:
            self.over_cap = self.over_cap or TooManyTasks(
                f"the job asked for more than {self._max_steps} steps (tasks, sub-agents, sleeps, questions, "
                f"values), over the limit of {self._max_steps} (AGENTBUS_MAX_TASKS_PER_JOB)"
            )
            raise self.over_cap
        self._seq += 1
        rec = self._journal.get(seq)
        if rec is not None and (rec.kind != kind or rec.name != name):
            self.divergence = self.divergence or NonDeterministicAgent(
                f"step {seq}: the journal holds {rec.kind} {rec.name!r} but this replay asked for "
                f"{kind} {name!r}; agent code must be deterministic (use ctx.now() and ctx.uuid())"
            )
            raise self.divergence
        return seq, rec

    @property
    def steps_taken(self) -> int:
        return self._seq

    def _task(self, task: Any) -> TaskDef:
        if isinstance(task, TaskDef):
            return task
        if isinstance(task, str):
            return self.app.task_def(task)
        if isinstance(task, AgentDef):
            raise TypeError(f"{task.name!r} is an agent: use ctx.call_agent, not ctx.run")
        raise TypeError(f"ctx.run expects a task (decorated with @app.task), got {task!r}")

    def _budget_spent(self) -> bool:
        """Whether this replay may schedule no more calls; if so, the agent is to be replayed again."""
        if self._calls_left is not None and self._calls_left <= 0:
            self.more = True
            return True
        return False

    def _schedule(self, cmd: ScheduleTask) -> None:
        self.commands.append(cmd)
        if self._calls_left is not None:
            self._calls_left -= 1

    # -- the public calls -----------------------------------------------------------------------
    def run(self, task: Any, *args: Any, **kwargs: Any) -> Any:
        td = self._task(task)
        seq, rec = self._step("task", td.name)
        if rec is None:
            if self._budget_spent():
                raise _Suspend
            self._schedule(ScheduleTask(seq, td, td.bind(args, kwargs)))
            raise _Suspend
        if not rec.state.terminal:
            raise _Suspend
        if rec.state == TaskState.SUCCEEDED:
            return rec.result
        _raise_for(rec)

    def map(
        self, task: Any, items: Iterable[Any], *, unpack: bool = False, return_exceptions: bool = False
    ) -> list[Any]:
        """Run ``task`` once per item in parallel and wait for all (fan-out, fan-in).

        Each item is the task's first argument; with ``unpack=True`` a dict item is passed as
        keyword arguments and a list/tuple item as positional ones. A failed task raises its
        ``TaskFailed`` once all have finished, unless ``return_exceptions`` puts it in the list.
        """
        td = self._task(task)
        waiting = False
        records: list[StepRecord] = []
        for item in items:
            seq, rec = self._step("task", td.name)
            if rec is None and self._budget_spent():
                # counted against the cap (a fan-out over it fails now, before any of it is sent),
                # but built and scheduled by a later replay
                waiting = True
            elif rec is None:
                if unpack and isinstance(item, dict):
                    args = td.bind((), item)
                elif unpack and isinstance(item, list | tuple):
                    args = td.bind(tuple(item), {})
                else:
                    args = td.bind((item,), {})
                self._schedule(ScheduleTask(seq, td, args))
                waiting = True
            elif not rec.state.terminal:
                waiting = True
            else:
                records.append(rec)
        if waiting:
            raise _Suspend
        out: list[Any] = []
        for rec in records:
            if rec.state == TaskState.SUCCEEDED:
                out.append(rec.result)
                continue
            try:
                _raise_for(rec)
            except (TaskFailed, TaskCancelled) as exc:
                if not return_exceptions:
                    raise
                out.append(exc)
        return out

    def call_agent(self, agent: Any, **input: Any) -> Any:
        name = agent.name if isinstance(agent, AgentDef) else str(agent)
        if name not in self.app.agents:
            raise TypeError(f"ctx.call_agent expects an agent, {name!r} is not one")
        seq, rec = self._step("agent", name)
        if rec is None:
            self.commands.append(StartChild(seq, name, input))
            raise _Suspend
        if not rec.state.terminal:
            raise _Suspend
        if rec.state == TaskState.SUCCEEDED:
            return rec.result
        _raise_for(rec)

    def sleep(self, seconds: float) -> None:
        seq, rec = self._step("sleep", "sleep")
        if rec is None:
            self.commands.append(StartTimer(seq, self.now_unrecorded() + float(seconds)))
            raise _Suspend
        if not rec.state.terminal:
            raise _Suspend

    def ask_human(
        self,
        prompt: str,
        data: Any = None,
        schema: dict[str, Any] | None = None,
        timeout: float | None = None,
        on_timeout: str = "reject",
        assignees: list[Any] | None = None,
        webhook: str | None = None,
    ) -> dict[str, Any]:
        """Ask a person and wait (durably: no worker or orchestrator is held meanwhile).

        Returns ``{approved, input, comment, by, at, timed_out}``. With ``on_timeout="fail"``
        an expired question raises ``TaskFailed`` (error type ``ApprovalExpired``).
        """
        request = HumanRequest.build(prompt, data, schema, timeout, on_timeout, assignees, webhook)
        return self._ask([request])[0]

    def ask_all(self, questions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Several questions at once (each a dict of ask_human's arguments); waits for every answer."""
        return self._ask([HumanRequest.build(**q) for q in questions])

    def _ask(self, requests: list[HumanRequest]) -> list[dict[str, Any]]:
        waiting = False
        records: list[StepRecord] = []
        for request in requests:
            seq, rec = self._step("human", "ask_human")
            if rec is None:
                self.commands.append(AskHuman(seq, request))
                waiting = True
            elif not rec.state.terminal:
                waiting = True
            else:
                records.append(rec)
        if waiting:
            raise _Suspend
        out: list[dict[str, Any]] = []
        for rec in records:
            if rec.state != TaskState.SUCCEEDED:
                _raise_for(rec)
            out.append(rec.result)
        return out

    def emit(self, data: Any) -> None:
        """Partial output, sent once although the agent is replayed many times.

        An emit is not a step. The code before a journaled step ran in the replay that recorded
        that step, so an emit made while the journal still holds steps at or after this point
        was sent then; only once this replay has moved past the journal is an emit new. Emits
        are numbered in the order the agent makes them, so an emit has the same ``seq`` in
        every replay.
        """
        seq = self._emits
        self._emits += 1
        text = check_output(data, self._max_output_bytes)  # refused in every replay alike
        if self._seq >= self._frontier:
            self.outputs.append(Emitted(seq, text))

    def now_unrecorded(self) -> float:
        return self._clock()

    def now(self) -> float:
        seq, rec = self._step("value", "now")
        if rec is not None:
            return float(rec.result)
        value = self._clock()
        self.commands.append(RecordValue(seq, "now", value))
        return value

    def uuid(self) -> str:
        seq, rec = self._step("value", "uuid")
        if rec is not None:
            return str(rec.result)
        value = self._new_uuid()
        self.commands.append(RecordValue(seq, "uuid", value))
        return value


def _single_task_agent(ctx: Context, task: TaskDef, input: dict[str, Any]) -> Any:
    return ctx.run(task, **input)


def replay(
    app: App,
    job_type: AgentDef | TaskDef,
    input: dict[str, Any],
    journal: Mapping[int, StepRecord],
    *,
    job_id: str,
    clock: Callable[[], float],
    new_uuid: Callable[[], str],
    max_steps: int | None = None,
    max_new_calls: int | None = None,
    max_output_bytes: int = MAX_OUTPUT_BYTES,
) -> ReplayResult:
    """Run the agent once against ``journal`` and say what it did (and what it emitted anew).

    A job that asks for more than ``max_steps`` steps fails with ``TooManyTasks`` and no commands:
    none of the calls it asked for this time is scheduled.
    """
    ctx = AgentContext(app, job_id, journal, clock, new_uuid, max_steps, max_new_calls, max_output_bytes)
    res = _run(ctx, job_type, input, journal)
    if ctx.over_cap is not None:
        res = ReplayResult("failed", (), error=ErrorInfo(type(ctx.over_cap).__name__, str(ctx.over_cap)))
    elif ctx.more and res.status == "suspended":
        res = ReplayResult("suspended", res.commands, more=True)
    elif ctx.divergence is not None:
        err = ctx.divergence
        res = ReplayResult("failed", res.commands, error=ErrorInfo(type(err).__name__, str(err)))
    return replace(res, outputs=tuple(ctx.outputs))


def _run(
    ctx: AgentContext, job_type: AgentDef | TaskDef, input: dict[str, Any], journal: Mapping[int, StepRecord]
) -> ReplayResult:
    try:
        if isinstance(job_type, TaskDef):
            result = _single_task_agent(ctx, job_type, input)
        else:
            result = job_type.fn(ctx, **input)
    except _Suspend:
        return ReplayResult("suspended", tuple(ctx.commands))
    except TaskFailed as exc:
        error = ErrorInfo("TaskFailed", str(exc))
        if isinstance(job_type, TaskDef):  # a single-task job reports the task's own error
            error = ErrorInfo(exc.error_type, exc.error_message, exc.error_traceback)
        else:  # where the agent's code did not catch it
            error = replace(error, traceback=format_traceback(exc))
        return ReplayResult("failed", tuple(ctx.commands), error=error)
    except Exception as exc:
        return ReplayResult("failed", tuple(ctx.commands), error=ErrorInfo.of(exc))
    extra = sorted(s for s in journal if s >= ctx.steps_taken)
    if extra:
        err = NonDeterministicAgent(
            f"the agent returned after {ctx.steps_taken} steps but the journal holds step {extra[0]}; "
            "agent code must be deterministic"
        )
        return ReplayResult("failed", tuple(ctx.commands), error=ErrorInfo(type(err).__name__, str(err)))
    return ReplayResult("completed", tuple(ctx.commands), result=result)
