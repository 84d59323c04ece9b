"""The programming model's registry: ``App``, ``@app.task`` and ``@app.agent``."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal, overload

from pydantic import BaseModel

from agentbus.domain import schema
from agentbus.domain.errors import ConfigError, NotFound

Device = Literal["cpu", "gpu", "any"]
DEVICES = ("cpu", "gpu", "any")


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


@dataclass(frozen=True)
class TaskDef:
    name: str
    fn: Callable[..., Any]
    options: TaskOptions
    model: type[BaseModel] = field(repr=False)

    kind = "task"

    def bind(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
        """Turn a call's positional and keyword arguments into the keyword arguments stored."""
        sig = inspect.signature(self.fn)
        try:
            bound = sig.bind(None, *args, **kwargs)
        except TypeError as exc:
            raise TypeError(f"{self.name}: {exc}") from None
        return {k: v for k, v in list(bound.arguments.items())[1:]}

    def __call__(self, ctx: Any, *args: Any, **kwargs: Any) -> Any:
        return self.fn(ctx, *args, **kwargs)


@dataclass(frozen=True)
class AgentDef:
    name: str
    fn: Callable[..., Any]
    model: type[BaseModel] = field(repr=False)

    kind = "agent"

    def __call__(self, ctx: Any, *args: Any, **kwargs: Any) -> Any:
        return self.fn(ctx, *args, **kwargs)


JobType = TaskDef | AgentDef


class App:
    """A registry of agents and tasks. Every role loads the same App (``--app module:attr``)."""

    def __init__(self, name: str = "agentbus") -> None:
        from agentbus.domain import builtins

        self.name = name
        self.tasks: dict[str, TaskDef] = {}
        self.agents: dict[str, AgentDef] = {}
        builtins.register(self)

    def _check_name(self, name: str) -> None:
        if name in self.tasks or name in self.agents:
            raise ConfigError(f"{self.name}: the name {name!r} is registered twice")

    @overload
    def task(self, fn: Callable[..., Any]) -> TaskDef: ...

    @overload
    def task(
        self,
        fn: None = None,
        *,
        name: str | None = None,
        device: Device = "cpu",
        fallback: Literal["cpu"] | None = None,
        retries: int = 0,
        timeout: float = 300.0,
        queue: str | None = None,
        backoff: float = 0.5,
        chunk: int | None = None,
        gpu_memory: str | int | None = None,
        concurrency_key: str | None = None,
        max_concurrency: int | None = None,
        worker_concurrency: int | None = None,
    ) -> Callable[[Callable[..., Any]], TaskDef]: ...

    def task(
        self,
        fn: Callable[..., Any] | None = None,
        *,
        name: str | None = None,
        device: Device = "cpu",
        fallback: Literal["cpu"] | None = None,
        retries: int = 0,
        timeout: float = 300.0,
        queue: str | None = None,
        backoff: float = 0.5,
        chunk: int | None = None,
        gpu_memory: str | int | None = None,
        concurrency_key: str | None = None,
        max_concurrency: int | None = None,
        worker_concurrency: int | None = None,
    ) -> TaskDef | Callable[[Callable[..., Any]], TaskDef]:
        if device not in DEVICES:
            raise ConfigError(f"device must be one of {DEVICES}, not {device!r}")
        if fallback not in (None, "cpu"):
            raise ConfigError(f"fallback must be 'cpu' or None, not {fallback!r}")
        if retries < 0 or timeout <= 0 or backoff < 0 or (chunk is not None and chunk < 1):
            raise ConfigError("retries and backoff must be >= 0, timeout > 0, chunk >= 1")
        if max_concurrency is not None and max_concurrency < 1:
            raise ConfigError("max_concurrency must be at least 1")
        if worker_concurrency is not None and worker_concurrency < 1:
            raise ConfigError("worker_concurrency must be at least 1")
        if concurrency_key is not None and max_concurrency is None:
            raise ConfigError("concurrency_key needs max_concurrency")
        if max_concurrency is not None:
            chunk = 1  # one call a message, so a free slot is filled by exactly one call
        options = TaskOptions(
            device,
            fallback,
            retries,
            float(timeout),
            queue,
            float(backoff),
            chunk,
            parse_bytes(gpu_memory),
            concurrency_key,
            max_concurrency,
            worker_concurrency,
        )

        def register(f: Callable[..., Any]) -> TaskDef:
            task_name = name or f.__name__
            self._check_name(task_name)
            td = TaskDef(task_name, f, options, schema.input_model(task_name, f))
            self.tasks[task_name] = td
            return td

        return register(fn) if fn is not None else register

    @overload
    def agent(self, fn: Callable[..., Any]) -> AgentDef: ...

    @overload
    def agent(self, fn: None = None, *, name: str | None = None) -> Callable[[Callable[..., Any]], AgentDef]: ...

    def agent(
        self, fn: Callable[..., Any] | None = None, *, name: str | None = None
    ) -> AgentDef | Callable[[Callable[..., Any]], AgentDef]:
        def register(f: Callable[..., Any]) -> AgentDef:
            agent_name = name or f.__name__
            self._check_name(agent_name)
            ad = AgentDef(agent_name, f, schema.input_model(agent_name, f))
            self.agents[agent_name] = ad
            return ad

        return register(fn) if fn is not None else register

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

    def job_type(self, name: str) -> JobType:
        found: JobType | None = self.agents.get(name) or self.tasks.get(name)
        if found is None:
            known = ", ".join(sorted([*self.agents, *self.tasks])) or "none"
            raise NotFound(f"unknown job type {name!r}; known types: {known}")
        return found

    def task_def(self, name: str) -> TaskDef:
        try:
            return self.tasks[name]
        except KeyError:
            raise NotFound(f"unknown task {name!r}") from None

    def validate_input(self, type_name: str, data: Any) -> dict[str, Any]:
        return schema.validate(self.job_type(type_name).model, data)

    def input_schemas(self) -> dict[str, dict[str, Any]]:
        types: dict[str, JobType] = {**self.tasks, **self.agents}
        return {n: schema.json_schema(d.model) for n, d in sorted(types.items())}
