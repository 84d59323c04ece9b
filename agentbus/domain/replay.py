"""The replay engine: pure, no I/O.

An agent is a plain function. Every ``ctx.run / ctx.map / ctx.call_agent /
ctx.sleep / ctx.now / ctx.uuid / ctx.ask_human / ctx.ask_all / ctx.wait_for`` is a *step*
with a sequence number. Replaying
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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal, NoReturn

from agentbus.domain.app import AgentDef, App, TaskDef
from agentbus.domain.builtins import AgentMemory
from agentbus.domain.context import AgentContext, Handle
from agentbus.domain.errors import (
    NonDeterministicAgent,
    SignalTimeout,
    TaskCancelled,
    TaskFailed,
    TooManyTasks,
    ValidationFailed,
)
from agentbus.domain.hitl import HumanRequest
from agentbus.domain.output import MAX_OUTPUT_BYTES, check_output
from agentbus.domain.signals import SignalWait
from agentbus.domain.states import TaskState

StepKind = Literal["task", "agent", "sleep", "value", "human", "signal"]


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
    task: TaskDef[Any, Any]
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
    """A value step, journaled as it is decided: ``now``, ``uuid``, ``wait_any`` (the index of the handle
    it returned) and ``patched:<change id>`` markers."""

    seq: int
    name: str
    value: Any


@dataclass(frozen=True)
class AskHuman:
    seq: int
    request: HumanRequest


@dataclass(frozen=True)
class WaitSignal:
    """A wait for the signal ``wait.name``; past ``deadline`` (when it has a timeout) it fails with
    ``SignalTimeout``."""

    seq: int
    wait: SignalWait
    deadline: float | None = None


Command = ScheduleTask | StartChild | StartTimer | RecordValue | AskHuman | WaitSignal


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
    early: bool = False
    """Suspended waiting for fewer steps than it has open (``wait_any``, or a wait on some steps while
    others it started run on): replay it as each step finishes, not only once none is open."""
    unfinished: tuple[int, ...] = ()
    """Completed or failed with steps it started and never waited for still running: the steps to
    cancel (docs/programming.md "Parallel steps"). Such steps that were new are not in ``commands``."""


class _Suspend(BaseException):
    """Unwinds the agent when it awaits a step that has not finished.

    A BaseException so that an agent's ``except Exception`` cannot swallow it.
    """


def _raise_for(rec: StepRecord) -> NoReturn:
    if rec.state == TaskState.CANCELLED:
        raise TaskCancelled(f"{rec.kind} {rec.name!r} was cancelled")
    err = rec.error or ErrorInfo("Error", "unknown error")
    if rec.kind == "signal" and err.type == "SignalTimeout":
        raise SignalTimeout(rec.name, err.message)
    raise TaskFailed(rec.name, err.type, err.message, err.traceback)


PATCH_PREFIX = "patched:"
MAX_CHANGE_ID = 120
"""A patch marker is a value step named ``patched:<change id>`` (the steps' name column holds 200)."""


class ReplayContext(AgentContext):
    """The context an agent runs with during one replay: it answers each step from the journal, or
    turns it into a command and, once the agent waits for something unfinished, suspends it."""

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
        self._patches: dict[str, bool] = {}
        self.started: list[Handle[Any]] = []
        self.blocked_on: set[int] | None = None
        """The steps the agent suspended waiting for all of (None: waiting for any one, or not waiting)."""
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
                f"step {seq}: the journal recorded {rec.kind} {rec.name!r} but the code now asks for "
                f"{kind} {name!r}; agent code must be deterministic (ctx.now() and ctx.uuid() for time and "
                "randomness; ctx.patched() around a change to an agent's steps, docs/programming.md)"
            )
            raise self.divergence
        return seq, rec

    @property
    def steps_taken(self) -> int:
        return self._seq

    def _resolve(self, target: Any, want: Literal["task", "agent", "any"]) -> TaskDef[Any, Any] | AgentDef[Any, Any]:
        if isinstance(target, str):
            if want != "task" and target in self.app.agents:
                return self.app.agents[target]
            if want == "agent":
                raise TypeError(f"ctx.call_agent expects an agent, {target!r} is not one")
            return self.app.task_def(target)
        if isinstance(target, TaskDef):
            if want == "agent":
                raise TypeError(f"ctx.call_agent expects an agent, {target.name!r} is a task: use ctx.run")
            return target
        if isinstance(target, AgentDef):
            if want == "task":
                raise TypeError(f"{target.name!r} is an agent: use ctx.call_agent, not ctx.run")
            if target.name not in self.app.agents:
                raise TypeError(f"ctx.call_agent expects an agent of this App, {target.name!r} is not one")
            return target
        raise TypeError(f"expected a task (@app.task) or an agent (@app.agent), got {target!r}")

    def _budget_spent(self) -> bool:
        """Whether this replay may schedule no more calls; if so, the agent is to be replayed again."""
        if self._calls_left is not None and self._calls_left <= 0:
            self.more = True
            return True
        return False

    # -- the primitives --------------------------------------------------------------------------
    def _start(
        self, target: TaskDef[Any, Any] | AgentDef[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Handle[Any]:
        kind: StepKind = "task" if isinstance(target, TaskDef) else "agent"
        seq, rec = self._step(kind, target.name)
        if rec is None:
            # checked only when new (a journaled call was checked when it was sent); a bad call keeps
            # its seq, empty in the journal for good, so that every replay raises at the same step
            bound = _checked(target, args, kwargs)
            if isinstance(target, AgentDef):
                self.commands.append(StartChild(seq, target.name, bound))
            elif not self._budget_spent():
                # past the budget a call is counted against the cap (a fan-out over it fails now,
                # before any of it is sent) but built and scheduled by a later replay
                self.commands.append(ScheduleTask(seq, target, bound))
                if self._calls_left is not None:
                    self._calls_left -= 1
        handle: Handle[Any] = Handle(self, seq, kind, target.name)
        self.started.append(handle)
        return handle

    def _ask(self, request: HumanRequest) -> Handle[dict[str, Any]]:
        seq, rec = self._step("human", "ask_human")
        if rec is None:
            self.commands.append(AskHuman(seq, request))
        handle: Handle[dict[str, Any]] = Handle(self, seq, "human", "ask_human")
        self.started.append(handle)
        return handle

    def _signal(self, wait: SignalWait) -> Handle[Any]:
        seq, rec = self._step("signal", wait.name)
        if rec is None:
            deadline = None if wait.timeout is None else self.now_unrecorded() + wait.timeout
            self.commands.append(WaitSignal(seq, wait, deadline))
        handle: Handle[Any] = Handle(self, seq, "signal", wait.name)
        self.started.append(handle)
        return handle

    def _record(self, handle: Handle[Any]) -> StepRecord | None:
        if handle._ctx is not self:
            raise ValueError(f"{handle!r} was started by another replay")
        rec = self._journal.get(handle.seq)
        return rec if rec is not None and rec.state.terminal else None

    def _gather(self, handles: tuple[Handle[Any], ...], return_exceptions: bool) -> list[Any]:
        records = [self._record(h) for h in handles]
        done = [rec for rec in records if rec is not None]
        if len(done) < len(records):
            self.blocked_on = {h.seq for h, rec in zip(handles, records, strict=True) if rec is None}
            raise _Suspend
        out: list[Any] = []
        for rec in done:
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

    def _wait_any(self, handles: tuple[Handle[Any], ...]) -> Handle[Any]:
        if not handles:
            raise ValueError("ctx.wait_any needs at least one handle")
        seq, rec = self._step("value", "wait_any")
        if rec is not None:
            index = rec.result
            if not isinstance(index, int) or not 0 <= index < len(handles):
                self.divergence = self.divergence or NonDeterministicAgent(
                    f"step {seq}: the journal recorded wait_any choosing handle {index!r} but the code now "
                    f"waits for {len(handles)} handles"
                )
                raise self.divergence
            return handles[index]
        finished = [i for i, h in enumerate(handles) if self._record(h) is not None]
        if not finished:
            raise _Suspend  # the same step is asked for again by the next replay (blocked_on None: any)
        self.commands.append(RecordValue(seq, "wait_any", finished[0]))
        return handles[finished[0]]

    def sleep(self, seconds: float) -> None:
        seq, rec = self._step("sleep", "sleep")
        if rec is None:
            self.commands.append(StartTimer(seq, self.now_unrecorded() + float(seconds)))
            self.blocked_on = {seq}
            raise _Suspend
        if not rec.state.terminal:
            self.blocked_on = {seq}
            raise _Suspend

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

    def patched(self, change_id: str) -> bool:
        """Temporal's ``workflow.patched``: the first run of this point records a marker step and takes
        the new branch; a journal with the marker here replays True; a journal holding another step
        here was written by the code before the change and replays False (without taking a step, as
        that code did not). Asked again in one run, the same change id answers the same."""
        if not isinstance(change_id, str) or not 0 < len(change_id) <= MAX_CHANGE_ID:
            raise ValueError(f"ctx.patched needs a change id of 1 to {MAX_CHANGE_ID} characters")
        known = self._patches.get(change_id)
        if known is not None:
            return known
        name = PATCH_PREFIX + change_id
        rec = self._journal.get(self._seq)
        if rec is not None and (rec.kind, rec.name) != ("value", name):
            self._patches[change_id] = False
            return False
        seq, rec = self._step("value", name)
        if rec is None:
            self.commands.append(RecordValue(seq, name, True))
        self._patches[change_id] = True
        return True


def _checked(
    target: TaskDef[Any, Any] | AgentDef[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> dict[str, Any]:
    """A call's arguments by name, or ``TaskFailed`` (error type ``ValidationFailed``, naming the field)
    that the agent can catch like any failed step."""
    try:
        bound = target.bind(args, kwargs)
        target.check(bound)
    except TypeError as exc:
        raise TaskFailed(target.name, "ValidationFailed", str(exc)) from None
    except ValidationFailed as exc:
        raise TaskFailed(target.name, "ValidationFailed", exc.message) from None
    return bound


def _single_task_agent(ctx: AgentContext, task: TaskDef[Any, Any], input: dict[str, Any]) -> Any:
    return ctx.run(task, **input)


def replay(
    app: App,
    job_type: AgentDef[Any, Any] | TaskDef[Any, Any],
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
    ctx = ReplayContext(app, job_id, journal, clock, new_uuid, max_steps, max_new_calls, max_output_bytes)
    res = _run(ctx, job_type, input, journal)
    if ctx.over_cap is not None:
        res = ReplayResult("failed", (), error=ErrorInfo(type(ctx.over_cap).__name__, str(ctx.over_cap)))
    elif ctx.more and res.status == "suspended":
        res = ReplayResult("suspended", res.commands, more=True)
    elif ctx.divergence is not None:
        err = ctx.divergence
        res = ReplayResult("failed", res.commands, error=ErrorInfo(type(err).__name__, str(err)))
    if res.status != "suspended" and ctx.started:
        res = _drop_the_rest(res, ctx.started, journal)
    elif res.status == "suspended" and ctx.started:
        still_open = {h.seq for h in ctx.started if ctx._record(h) is None}
        if ctx.blocked_on is None or still_open - ctx.blocked_on:
            res = replace(res, early=True)
    return replace(res, outputs=tuple(ctx.outputs))


_STARTS = (ScheduleTask, StartChild, AskHuman, WaitSignal)


def _drop_the_rest(res: ReplayResult, started: list[Handle[Any]], journal: Mapping[int, StepRecord]) -> ReplayResult:
    """A job that ends leaves nothing running: of the steps it started and never waited for, a new one
    is not sent at all and one already journaled but unfinished is to be cancelled."""
    new = {c.seq for c in res.commands if isinstance(c, _STARTS)}
    unfinished = tuple(
        h.seq
        for h in started
        if h.seq not in new and (rec := journal.get(h.seq)) is not None and not rec.state.terminal
    )
    commands = tuple(c for c in res.commands if not isinstance(c, _STARTS))
    return replace(res, commands=commands, unfinished=unfinished)


def _run(
    ctx: ReplayContext,
    job_type: AgentDef[Any, Any] | TaskDef[Any, Any],
    input: dict[str, Any],
    journal: Mapping[int, StepRecord],
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
        rec = journal[extra[0]]
        err = NonDeterministicAgent(
            f"step {extra[0]}: the journal recorded {rec.kind} {rec.name!r} but the code now returns after "
            f"{ctx.steps_taken} steps; agent code must be deterministic (docs/programming.md)"
        )
        return ReplayResult("failed", tuple(ctx.commands), error=ErrorInfo(type(err).__name__, str(err)))
    return ReplayResult("completed", tuple(ctx.commands), result=result)
