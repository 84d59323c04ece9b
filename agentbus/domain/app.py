"""The programming model's registry: ``App``, ``@app.task`` and ``@app.agent``."""

from __future__ import annotations

import functools
import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, Concatenate, Generic, Literal, ParamSpec, Protocol, TypedDict, TypeVar, Unpack, cast, overload

from pydantic import BaseModel

from agentbus.domain import schema
from agentbus.domain.errors import ConfigError, NotFound, ValidationFailed
from agentbus.domain.schedules import Schedule

Device = Literal["cpu", "gpu", "any"]
DEVICES = ("cpu", "gpu", "any")

P = ParamSpec("P")
R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)


class TaskOptionArgs(TypedDict, total=False):
    """The keyword options of ``@app.task`` (each described on ``TaskOptions``), so that the decorator's
    signature is typed without repeating them; a unit test pins the two to the same names."""

    device: Device
    fallback: Literal["cpu"] | None
    retries: int
    timeout: float
    queue: str | None
    backoff: float
    chunk: int | None
    gpu_memory: str | int | None
    concurrency_key: str | None
    max_concurrency: int | None
    worker_concurrency: int | None


@dataclass(frozen=True)
class TaskOptions:
    device: Device = "cpu"
    fallback: Literal["cpu"] | None = None
    retries: int = 0
    timeout: float = 300.0
    queue: str | None = None
    backoff: float = 0.5
    """Base of the exponential backoff between attempts, in seconds."""
    chunk: int | None = None
    """How many of this task's calls one queue message may carry (None: the orchestrator decides)."""
    gpu_memory: int = 0
    """Bytes of GPU memory a device must have to run this task (``gpu_memory="8GB"``)."""
    concurrency_key: str | None = None
    """Calls sharing this key (a template over the arguments, ``"model:{model}"``) are capped fleet-wide."""
    max_concurrency: int | None = None
    worker_concurrency: int | None = None
    """At most this many calls of this task run at once on one worker (None: only the worker's cap)."""

    @classmethod
    def build(cls, **options: Unpack[TaskOptionArgs]) -> TaskOptions:
        """The options ``@app.task`` was given, checked (raises ConfigError) and normalized."""
        o = replace(
            cls(),
            # a TypedDict's items() are typed object: the keys and types were checked by its signature
            **{k: v for k, v in options.items() if k != "gpu_memory"},  # type: ignore[arg-type]
            gpu_memory=parse_bytes(options.get("gpu_memory")),
        )
        if o.device not in DEVICES:
            raise ConfigError(f"device must be one of {DEVICES}, not {o.device!r}")
        if o.fallback not in (None, "cpu"):
            raise ConfigError(f"fallback must be 'cpu' or None, not {o.fallback!r}")
        if o.retries < 0 or o.timeout <= 0 or o.backoff < 0 or (o.chunk is not None and o.chunk < 1):
            raise ConfigError("retries and backoff must be >= 0, timeout > 0, chunk >= 1")
        if o.max_concurrency is not None and o.max_concurrency < 1:
            raise ConfigError("max_concurrency must be at least 1")
        if o.worker_concurrency is not None and o.worker_concurrency < 1:
            raise ConfigError("worker_concurrency must be at least 1")
        if o.concurrency_key is not None and o.max_concurrency is None:
            raise ConfigError("concurrency_key needs max_concurrency")
        # one call a message with a concurrency cap, so that a free slot is filled by exactly one call
        chunk = 1 if o.max_concurrency is not None else o.chunk
        return replace(o, timeout=float(o.timeout), backoff=float(o.backoff), chunk=chunk)

    def concurrency_for(self, args: dict[str, Any]) -> str | None:
        if self.max_concurrency is None:
            return None
        template = self.concurrency_key or ""
        try:
            return template.format(**args) if template else "default"
        except (KeyError, IndexError, ValueError) as exc:
            raise ConfigError(f"concurrency_key {template!r} cannot be filled from the arguments: {exc}") from None


_UNITS = {"": 1, "B": 1, "KB": 2**10, "MB": 2**20, "GB": 2**30, "TB": 2**40, "KIB": 2**10, "MIB": 2**20, "GIB": 2**30}


def parse_bytes(value: str | int | None) -> int:
    """``"8GB"`` → 8 GiB in bytes (binary units, as GPU memory is sold); an int is bytes already."""
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    text = value.strip().upper().replace(" ", "")
    number = text.rstrip("KMGTIB")
    unit = text[len(number) :]
    try:
        return int(float(number) * _UNITS[unit])
    except (ValueError, KeyError):
        raise ConfigError(f"cannot read {value!r} as a size: use e.g. 512MB, 8GB") from None


@functools.cache
def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    """Read once per function: a fan-out binds every call's arguments, and reading a signature costs
    more than binding to it."""
    return inspect.signature(fn)


def _bind(name: str, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    sig = _signature(fn)
    try:
        bound = sig.bind(None, *args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"{name}: {exc}") from None
    return dict(list(bound.arguments.items())[1:])


def _check(name: str, kind: str, model: type[BaseModel], args: dict[str, Any]) -> None:
    """Raise ValidationFailed unless ``args`` are JSON that the worker (or child job) will accept: the
    error names the field, before anything is journaled or sent."""
    try:
        text = json.dumps(args, allow_nan=False)
    except (TypeError, ValueError) as exc:
        bad = next((k for k, v in args.items() if not _is_json(v)), None)
        where = f" {bad!r}" if bad is not None else ""
        raise ValidationFailed(f"argument{where} of {kind} {name!r} is not JSON: {exc}") from None
    schema.validate_json(model, text)


def _is_json(value: Any) -> bool:
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return False
    return True


@dataclass(frozen=True)
class TaskDef(Generic[P, R_co]):
    """A task: its function, options and input model. Typed with the function's parameters ``P`` and
    return type ``R``, so that ``ctx.run(task, ...)`` is checked like a call of the function."""

    name: str
    fn: Callable[Concatenate[Any, P], R_co]
    options: TaskOptions
    model: type[BaseModel] = field(repr=False)

    kind = "task"

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Turn a call's positional and keyword arguments into the keyword arguments stored."""
        return _bind(self.name, self.fn, args, kwargs)

    def check(self, args: dict[str, Any]) -> None:
        """Raise ValidationFailed unless bound ``args`` are JSON that the task's schema accepts."""
        _check(self.name, "task", self.model, args)

    def __call__(self, ctx: Any, *args: P.args, **kwargs: P.kwargs) -> R_co:
        return self.fn(ctx, *args, **kwargs)


@dataclass(frozen=True)
class AgentDef(Generic[P, R_co]):
    name: str
    fn: Callable[Concatenate[Any, P], R_co]
    model: type[BaseModel] = field(repr=False)
    schedule: Schedule | None = None
    """Run on this schedule (``@app.agent(schedule=...)``), kept by the orchestrator at its start."""

    kind = "agent"

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        return _bind(self.name, self.fn, args, kwargs)

    def check(self, args: dict[str, Any]) -> None:
        _check(self.name, "agent", self.model, args)

    def __call__(self, ctx: Any, *args: P.args, **kwargs: P.kwargs) -> R_co:
        return self.fn(ctx, *args, **kwargs)


JobType = TaskDef[Any, Any] | AgentDef[Any, Any]


class _Register(Protocol):
    def __call__(self, fn: Callable[Concatenate[Any, P], R]) -> TaskDef[P, R]: ...


class _RegisterAgent(Protocol):
    def __call__(self, fn: Callable[Concatenate[Any, P], R]) -> AgentDef[P, R]: ...


class App:
    """A registry of agents and tasks. Every role loads the same App (``--app module:attr``)."""

    def __init__(self, name: str = "agentbus") -> None:
        from agentbus.domain import builtins

        self.name = name
        self.tasks: dict[str, TaskDef[Any, Any]] = {}
        self.agents: dict[str, AgentDef[Any, Any]] = {}
        builtins.register(self)

    def _check_name(self, name: str) -> None:
        if name in self.tasks or name in self.agents:
            raise ConfigError(f"{self.name}: the name {name!r} is registered twice")

    @overload
    def task(self, fn: Callable[Concatenate[Any, P], R]) -> TaskDef[P, R]: ...

    @overload
    def task(self, *, name: str | None = None, **options: Unpack[TaskOptionArgs]) -> _Register: ...

    def task(
        self, fn: Callable[..., Any] | None = None, *, name: str | None = None, **options: Unpack[TaskOptionArgs]
    ) -> TaskDef[Any, Any] | _Register:
        """Register a task: ``@app.task`` or ``@app.task(device="gpu", retries=2, ...)`` (``TaskOptions``)."""
        checked = TaskOptions.build(**options)

        def register(f: Callable[..., Any], /) -> TaskDef[Any, Any]:
            task_name = name or f.__name__
            self._check_name(task_name)
            td = TaskDef(task_name, f, checked, schema.input_model(task_name, f))
            self.tasks[task_name] = td
            return td

        if fn is not None:
            return register(fn)
        return cast(_Register, register)  # mypy cannot match a plain callable to the generic protocol

    @overload
    def agent(self, fn: Callable[Concatenate[Any, P], R]) -> AgentDef[P, R]: ...

    @overload
    def agent(self, *, name: str | None = None, schedule: str | Schedule | None = None) -> _RegisterAgent: ...

    def agent(
        self, fn: Callable[..., Any] | None = None, *, name: str | None = None, schedule: str | Schedule | None = None
    ) -> AgentDef[Any, Any] | _RegisterAgent:
        """Register an agent: ``@app.agent``, ``@app.agent(name=...)``; ``schedule="0 * * * *"`` (or a
        ``Schedule`` with a time zone, input and catch-up policy) also runs it on a cron schedule."""
        spec = Schedule(schedule) if isinstance(schedule, str) else schedule

        def register(f: Callable[..., Any], /) -> AgentDef[Any, Any]:
            agent_name = name or f.__name__
            self._check_name(agent_name)
            model = schema.input_model(agent_name, f)
            if spec is not None:
                try:
                    spec.check()
                    schema.validate(model, spec.input)
                except ValidationFailed as exc:
                    raise ConfigError(f"the schedule of agent {agent_name!r}: {exc.message}") from None
            ad = AgentDef(agent_name, f, model, spec)
            self.agents[agent_name] = ad
            return ad

        if fn is not None:
            return register(fn)
        return cast(_RegisterAgent, register)

    def include(self, other: App) -> None:
        """Register every task and agent of ``other`` here too."""
        for t in other.tasks.values():
            if t.name in self.tasks and t.name.startswith("memory."):
                continue  # the built-ins every App has
            self._check_name(t.name)
            self.tasks[t.name] = t
        for a in other.agents.values():
            self._check_name(a.name)
            self.agents[a.name] = a

    def schedules(self) -> dict[str, tuple[str, Schedule]]:
        """The schedules the agents declare, by schedule name: (agent, schedule)."""
        out: dict[str, tuple[str, Schedule]] = {}
        for a in self.agents.values():
            if a.schedule is not None:
                sname = a.schedule.name or a.name
                if sname in out:
                    raise ConfigError(f"{self.name}: two agents declare the schedule {sname!r}")
                out[sname] = (a.name, a.schedule)
        return out

    def job_type(self, name: str) -> JobType:
        found: JobType | None = self.agents.get(name) or self.tasks.get(name)
        if found is None:
            known = ", ".join(sorted([*self.agents, *self.tasks])) or "none"
            raise NotFound(f"unknown job type {name!r}; known types: {known}")
        return found

    def task_def(self, name: str) -> TaskDef[Any, Any]:
        try:
            return self.tasks[name]
        except KeyError:
            raise NotFound(f"unknown task {name!r}") from None

    def validate_input(self, type_name: str, data: Any) -> dict[str, Any]:
        return schema.validate(self.job_type(type_name).model, data)

    def input_schemas(self) -> dict[str, dict[str, Any]]:
        types: dict[str, JobType] = {**self.tasks, **self.agents}
        return {n: schema.json_schema(d.model) for n, d in sorted(types.items())}
