"""``Context``: what agents and tasks receive as their first argument."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from agentbus.domain.errors import NotInAgent
from agentbus.domain.output import MAX_OUTPUT_BYTES, Output, check_output


class Context:
    """The base every context shares. Agent-only calls raise ``NotInAgent`` elsewhere."""

    job_id: str
    memory: Any
    """Agent memory: ``store(namespace, texts=...)``, ``search(namespace, q=...)``, ``knn_batch(...)``."""

    def _agent_only(self, what: str) -> NotInAgent:
        return NotInAgent(f"ctx.{what} is only available inside an agent, not inside a task")

    def run(self, task: Any, *args: Any, **kwargs: Any) -> Any:
        raise self._agent_only("run")

    def map(
        self, task: Any, items: Iterable[Any], *, unpack: bool = False, return_exceptions: bool = False
    ) -> list[Any]:
        raise self._agent_only("map")

    def call_agent(self, agent: Any, **input: Any) -> Any:
        raise self._agent_only("call_agent")

    def sleep(self, seconds: float) -> None:
        raise self._agent_only("sleep")

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
        raise self._agent_only("ask_human")

    def ask_all(self, questions: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        raise self._agent_only("ask_all")

    def now(self) -> float:
        raise self._agent_only("now")

    def emit(self, data: Any) -> None:
        """Send partial output (a model token, progress) to the job's event stream as it runs.

        ``data`` is JSON (at most ``AGENTBUS_OUTPUT_MAX_BYTES``); never waits on the network.
        Best-effort and bounded (docs/workers.md "Streamed output"): the result stays the record.
        """
        raise NotImplementedError

    def uuid(self) -> str:
        raise self._agent_only("uuid")


class TaskContext(Context):
    """What a task receives on a worker."""

    def __init__(
        self,
        job_id: str,
        task_id: str,
        name: str,
        attempt: int,
        device: str = "cpu",
        memory: Any = None,
        emit: Callable[[Output], None] | None = None,
        max_output_bytes: int = MAX_OUTPUT_BYTES,
    ) -> None:
        self.job_id = job_id
        self.memory = memory
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

    def __repr__(self) -> str:
        return f"TaskContext(task_id={self.task_id!r}, attempt={self.attempt})"
