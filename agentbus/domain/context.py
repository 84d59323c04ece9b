"""What agents and tasks receive as their first argument: ``AgentContext`` and ``TaskContext``.

``AgentContext`` declares the agent's calls once, typed: ``ctx.run(task, ...)`` is checked against the
task's own parameters and returns its return type. The replay engine (``domain/replay.py``) implements
its few primitives (start a step, wait for steps, record a value); ``run``, ``map``, ``call_agent``,
``ask_human`` and ``ask_all`` are thin forms of ``start`` and ``gather`` written here.
"""

from __future__ import annotations

import itertools
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterable
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, TypeVar, overload

from agentbus.domain.app import AgentDef, TaskDef
from agentbus.domain.builtins import AgentMemory, TaskMemory
from agentbus.domain.errors import NotInAgent, TaskCancelled, TaskFailed
from agentbus.domain.hitl import HumanRequest
from agentbus.domain.output import MAX_OUTPUT_BYTES, Output, check_output
from agentbus.domain.signals import SignalWait

P = ParamSpec("P")
R = TypeVar("R")
T = TypeVar("T")
T_co = TypeVar("T_co", covariant=True)

StepFailure = TaskFailed | TaskCancelled
"""What a failed step raises in the agent (or stands for it in ``return_exceptions`` lists)."""


class Handle(Generic[T_co]):
    """A step started with ``ctx.start``: it runs while the agent goes on; wait for it with
    ``ctx.gather``, ``ctx.wait_any`` or ``handle.result()``."""

    __slots__ = ("_ctx", "kind", "name", "seq")

    def __init__(self, ctx: AgentContext, seq: int, kind: str, name: str) -> None:
        self._ctx = ctx
        self.seq = seq
        """The step's place in the journal."""
        self.kind = kind
        self.name = name

    def result(self) -> T_co:
        """Wait for this step: its result, or its ``TaskFailed``/``TaskCancelled`` raised."""
        out: T_co = self._ctx.gather(self)[0]
        return out

    def __repr__(self) -> str:
        return f"Handle(seq={self.seq}, {self.kind} {self.name!r})"


class AgentContext(ABC):
    """What an agent receives: every call is a durable, journaled step (docs/programming.md).

    An agent is replayed from its journal after each step finishes, so its code must be deterministic:
    it reads time and randomness through ``ctx.now()`` and ``ctx.uuid()``, and branches on a code
    change with ``ctx.patched(...)``.
    """

    job_id: str
    memory: AgentMemory
    """Agent memory as journaled steps: ``store(namespace, texts=...)``, ``search(namespace, q=...)``, ..."""

    # -- the engine's primitives -----------------------------------------------------------------
    @abstractmethod
    def _start(
        self, target: TaskDef[Any, Any] | AgentDef[Any, Any], args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> Handle[Any]:
        """Start a step (a task call or a child job) without waiting for it."""

    @abstractmethod
    def _ask(self, request: HumanRequest) -> Handle[dict[str, Any]]: ...

    @abstractmethod
    def _signal(self, wait: SignalWait) -> Handle[Any]: ...

    @abstractmethod
    def _gather(self, handles: tuple[Handle[Any], ...], return_exceptions: bool) -> list[Any]: ...

    @abstractmethod
    def _wait_any(self, handles: tuple[Handle[Any], ...]) -> Handle[Any]: ...

    @abstractmethod
    def _resolve(self, target: Any, want: Literal["task", "agent", "any"]) -> TaskDef[Any, Any] | AgentDef[Any, Any]:
        """The task or agent ``target`` names (its def or its name), or TypeError for the wrong kind."""

    @abstractmethod
    def sleep(self, seconds: float) -> None:
        """A durable sleep: no worker is held while the agent waits."""

    @abstractmethod
    def now(self) -> float:
        """The time, recorded once in the journal: every replay sees the same value."""

    @abstractmethod
    def uuid(self) -> str:
        """A random id (hex), recorded once in the journal."""

    @abstractmethod
    def patched(self, change_id: str) -> bool:
        """True where this code runs past what the journal recorded (new jobs, and old ones beyond the
        point they had reached), False where an old journal replays the code from before the change.

        Keep both branches until no job started before the change is still open (docs/programming.md).
        """

    @abstractmethod
    def emit(self, data: Any) -> None:
        """Partial output to the job's event stream, sent once although the agent is replayed."""

    # -- parallel steps ------------------------------------------------------------------------------
    @overload
    def start(self, target: TaskDef[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs) -> Handle[R]: ...

    @overload
    def start(self, target: TaskDef[P, R] | AgentDef[P, R], /, *args: P.args, **kwargs: P.kwargs) -> Handle[R]: ...

    @overload
    def start(self, target: str, /, *args: Any, **kwargs: Any) -> Handle[Any]: ...

    def start(self, target: Any, /, *args: Any, **kwargs: Any) -> Handle[Any]:
        """Start a task or a sub-agent and go on without waiting: the step runs while the agent starts
        others. The arguments are checked against its schema first (``TaskFailed`` with error type
        ``ValidationFailed`` naming the field, before anything is sent)."""
        d = self._resolve(target, "any")
        return self._start(d, args, kwargs)

    @overload
    def gather(self, *handles: Handle[T], return_exceptions: Literal[False] = False) -> list[T]: ...

    @overload
    def gather(self, *handles: Handle[T], return_exceptions: Literal[True]) -> list[T | StepFailure]: ...

    def gather(self, *handles: Handle[Any], return_exceptions: bool = False) -> list[Any]:
        """Wait for every handle; their results in handle order.

        Once all have finished, a failed step raises its ``TaskFailed`` (or ``TaskCancelled``): the
        first failure in handle order, whichever finished first. With ``return_exceptions`` the
        failure takes its place in the list instead. Nothing is cancelled: gather returns or raises
        only when every step is over.
        """
        return self._gather(handles, return_exceptions)

    def wait_any(self, *handles: Handle[T]) -> Handle[T]:
        """Wait until one of the handles has finished and return it (``.result()`` gives its value).

        Which one is recorded in the journal the first time any has finished, so every replay gets the
        same handle; when several had finished by then, the first of them in argument order. The
        others keep running: gather them later, or leave them (they end with the job).
        """
        return self._wait_any(handles)

    # -- thin forms ------------------------------------------------------------------------------------
    @overload
    def run(self, task: TaskDef[P, Coroutine[Any, Any, R]], /, *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def run(self, task: TaskDef[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def run(self, task: str, /, *args: Any, **kwargs: Any) -> Any: ...

    def run(self, task: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run a task and wait for its result (``TaskFailed`` if it failed for good)."""
        d = self._resolve(task, "task")
        return self._start(d, args, kwargs).result()

    @overload
    def call_agent(self, agent: AgentDef[P, R], /, *args: P.args, **kwargs: P.kwargs) -> R: ...

    @overload
    def call_agent(self, agent: str, /, *args: Any, **kwargs: Any) -> Any: ...

    def call_agent(self, agent: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run a sub-agent as a child job and wait for its result."""
        d = self._resolve(agent, "agent")
        return self._start(d, args, kwargs).result()

    @overload
    def map(
        self,
        task: TaskDef[..., Coroutine[Any, Any, R]],
        items: Iterable[Any],
        *,
        unpack: bool = False,
        return_exceptions: Literal[False] = False,
    ) -> list[R]: ...

    @overload
    def map(
        self,
        task: TaskDef[..., R],
        items: Iterable[Any],
        *,
        unpack: bool = False,
        return_exceptions: Literal[False] = False,
    ) -> list[R]: ...

    @overload
    def map(
        self, task: TaskDef[..., R] | str, items: Iterable[Any], *, unpack: bool = False, return_exceptions: bool = ...
    ) -> list[Any]: ...

    def map(
        self, task: Any, items: Iterable[Any], *, unpack: bool = False, return_exceptions: bool = False
    ) -> list[Any]:
        """Run ``task`` once per item in parallel and wait for all (fan-out, fan-in): ``gather`` over a
        ``start`` per item.

        Each item is the task's first argument; with ``unpack=True`` a dict item is passed as keyword
        arguments and a list/tuple item as positional ones.
        """
        d = self._resolve(task, "task")

        def call(item: Any) -> Handle[Any]:
            if unpack and isinstance(item, dict):
                return self._start(d, (), item)
            if unpack and isinstance(item, list | tuple):
                return self._start(d, tuple(item), {})
            return self._start(d, (item,), {})

        return self._gather(tuple(call(item) for item in items), return_exceptions)

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
        return self._ask(request).result()

    def wait_for(self, name: str, timeout: float | None = None, schema: dict[str, Any] | None = None) -> Any:
        """Wait (durably) for the signal ``name`` sent to this job (``POST /jobs/{id}/signals/{name}``)
        and return its payload. A signal sent before the agent got here was kept for it; two waits
        for one name get two signals, in the order they arrived.

        With ``timeout`` (seconds), raises ``SignalTimeout`` (a ``TaskFailed``) if none came in time.
        With ``schema`` (JSON Schema), a signal that does not match it is refused (422) while the
        agent waits, and one kept from before is left for another wait.
        """
        return self.signal(name, timeout=timeout, schema=schema).result()

    def signal(self, name: str, timeout: float | None = None, schema: dict[str, Any] | None = None) -> Handle[Any]:
        """``wait_for`` as a handle: wait for a signal together with other steps
        (``ctx.wait_any(ctx.signal("stop"), ctx.start(work))``)."""
        return self._signal(SignalWait.build(name, timeout, schema))

    def ask_all(self, questions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Several questions at once (each a dict of ask_human's arguments); waits for every answer."""
        return self._gather(tuple(self._ask(HumanRequest.build(**q)) for q in questions), False)


Context = AgentContext
"""The name agents were annotated with before ``AgentContext`` and ``TaskContext`` were told apart."""


class _NoMemory:
    """``ctx.memory`` of a task called outside a worker (a test calling the function itself)."""

    def __getattr__(self, name: str) -> Any:
        raise RuntimeError("ctx.memory is only available to a task running on a worker")


_AGENT_ONLY = frozenset(
    {
        "run",
        "start",
        "gather",
        "wait_any",
        "map",
        "call_agent",
        "sleep",
        "ask_human",
        "ask_all",
        "wait_for",
        "signal",
        "now",
        "uuid",
        "patched",
    }
)


class TaskContext:
    """What a task receives on a worker."""

    def __init__(
        self,
        job_id: str,
        task_id: str,
        name: str,
        attempt: int,
        device: str = "cpu",
        memory: TaskMemory | None = None,
        emit: Callable[[Output], None] | None = None,
        max_output_bytes: int = MAX_OUTPUT_BYTES,
    ) -> None:
        self.job_id = job_id
        self.memory: TaskMemory = memory if memory is not None else _NoMemory()
        """The memory service, bound to the job's tenant (docs/memory.md)."""
        self.task_id = task_id
        self.name = name
        self.attempt = attempt
        self.device = device
        """Where this call runs: ``"gpu"`` on a GPU worker, else ``"cpu"`` (e.g. after a fallback)."""
        # An Event, not a bool: the worker's event loop sets it while the task's thread reads it.
        self._cancelled = threading.Event()
        self._emit = emit
        self._max_output_bytes = max_output_bytes
        self._seqs = itertools.count()  # next() is atomic: a task's own threads may emit at once

    def emit(self, data: Any) -> None:
        """Send partial output (a model token, progress) to the job's event stream as it runs.

        ``data`` is JSON (at most ``AGENTBUS_OUTPUT_MAX_BYTES``); never waits on the network.
        Best-effort and bounded (docs/workers.md "Streamed output"): the result stays the record.
        """
        text = check_output(data, self._max_output_bytes)
        # no sink: a test calling the task itself; cancelled: the call is over (an abandoned thread)
        if self._emit is not None and not self._cancelled.is_set():
            self._emit(Output(self.job_id, self.task_id, self.name, self.attempt, next(self._seqs), text, time.time()))

    @property
    def cancelled(self) -> bool:
        """True once the call was cancelled or ran past its timeout: a sync task that loops should
        check it and return (its result is discarded either way; an async task is cancelled instead)."""
        return self._cancelled.is_set()

    def cancel(self) -> None:
        """Called by the worker: from now on ``cancelled`` is True."""
        self._cancelled.set()

    if not TYPE_CHECKING:  # a type checker flags ctx.run in a task; at run time it says why it fails

        def __getattr__(self, name: str) -> Any:
            if name in _AGENT_ONLY:
                raise NotInAgent(f"ctx.{name} is only available inside an agent, not inside a task")
            raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id!r}, attempt={self.attempt})"
