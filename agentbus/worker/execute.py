"""Executing a dispatch: mark its calls running, run each in-process, report in batches."""

from __future__ import annotations

import json
import logging
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from agentbus.domain import (
    App,
    ControlEvent,
    Dispatch,
    ErrorInfo,
    TaskCall,
    TaskCancelled,
    TaskContext,
    TaskState,
    TaskTimeout,
)
from agentbus.store import Store, TaskOutcome

log = logging.getLogger("agentbus.worker")

MAX_BACKOFF_S = 300.0
FLUSH_EVERY_S = 0.02
FLUSH_EVERY_N = 256


class ResultTooLarge(Exception):
    pass


class Interrupted(BaseException):
    """The worker is shutting down: the call is handed back to a queue, not failed.

    A BaseException so that a task's ``except Exception`` does not swallow it."""


@dataclass
class _Current:
    call: TaskCall
    started: float
    cancelled: bool = False


@dataclass
class Stats:
    done: int = 0
    failed: int = 0
    current: dict[str, Any] | None = field(default=None)


class Executor:
    """Runs calls in this process. Timeouts (SIGALRM) and cancellation (SIGUSR1) interrupt
    the task's own code only: the signal handlers raise while a task function runs."""

    def __init__(
        self,
        app: App,
        store: Store,
        publish: Callable[[list[ControlEvent]], None],
        worker_id: str,
        hand_back: Callable[[str, list[TaskCall]], None],
        device: str = "cpu",
        max_result_bytes: int = 1_048_576,
        memory: Callable[[str], Any] | None = None,
    ):
        self.app = app
        self.store = store
        self.publish = publish
        self.worker_id = worker_id
        self.hand_back = hand_back
        self.device = device
        self.max_result_bytes = max_result_bytes
        self.memory = memory
        self.stats = Stats()
        self.stopping = False
        self._interrupt = False
        self._current: _Current | None = None
        self._in_task = False
        self._main = threading.main_thread().ident

    def install_signals(self) -> None:
        signal.signal(signal.SIGALRM, self._on_alarm)
        signal.signal(signal.SIGUSR1, self._on_cancel_signal)

    def _on_alarm(self, signum: int, frame: object) -> None:
        if self._in_task and self._current is not None:
            raise TaskTimeout(f"task ran past its timeout of {self._current.call.timeout}s")

    def _on_cancel_signal(self, signum: int, frame: object) -> None:
        if self._in_task and self._interrupt:
            raise Interrupted()
        if self._in_task and self._current is not None and self._current.cancelled:
            raise TaskCancelled("task cancelled")

    @property
    def busy(self) -> bool:
        return self._in_task

    def interrupt(self) -> None:
        """Stop the running call now (shutdown): it goes back to a queue under a new attempt."""
        self.stopping = True
        self._interrupt = True
        if self._in_task and self._main is not None:
            if threading.get_ident() == self._main:
                raise Interrupted()
            signal.pthread_kill(self._main, signal.SIGUSR1)

    def request_cancel(self, task_id: str) -> None:
        """Called from RQ's pubsub thread when the orchestrator cancels a running call."""
        cur = self._current
        if cur is not None and cur.call.task_id == task_id and self._main is not None:
            cur.cancelled = True
            signal.pthread_kill(self._main, signal.SIGUSR1)

    def current(self) -> dict[str, Any] | None:
        cur = self._current
        if cur is None:
            return None
        c = cur.call
        return {"task_id": c.task_id, "name": c.name, "attempt": c.attempt, "retries": c.retries,
                "timeout": c.timeout, "started": cur.started}  # fmt: skip

    def __call__(self, dispatch: Dispatch, origin: str) -> None:
        started = self.store.mark_running([(c.task_id, c.attempt) for c in dispatch.calls], self.worker_id)
        pending: list[TaskOutcome] = []
        leftovers: list[TaskCall] = []
        last_flush = time.monotonic()
        for call in dispatch.calls:
            if call.task_id not in started:
                continue  # cancelled, superseded by a newer attempt, or run elsewhere already
            if self.stopping:
                leftovers.append(call)  # shutting down: take no new call
                continue
            outcome = self._run(call)
            if outcome is None:
                leftovers.append(call)
                continue
            pending.append(outcome)
            now = time.monotonic()
            if len(pending) >= FLUSH_EVERY_N or now - last_flush >= FLUSH_EVERY_S:
                self._flush(pending)
                pending, last_flush = [], now
        self._flush(pending)
        if leftovers:
            self.hand_back(origin, leftovers)

    def _flush(self, outcomes: list[TaskOutcome]) -> None:
        if not outcomes:
            return
        jobs = self.store.record_outcomes(outcomes, self.worker_id)
        if jobs:
            self.publish([ControlEvent("job.advance", tuple(jobs))])

    def _run(self, call: TaskCall) -> TaskOutcome | None:
        td = self.app.tasks.get(call.name)
        if td is None:
            self.stats.failed += 1
            err = ErrorInfo("NotFound", f"task {call.name!r} is not registered in this worker's app")
            return TaskOutcome(call.task_id, call.attempt, TaskState.FAILED, error=err)
        mem = self.memory(call.job_id) if self.memory is not None else None
        ctx = TaskContext(call.job_id, call.task_id, call.name, call.attempt, self.device, mem)
        self._current = _Current(call, time.time())
        try:
            signal.setitimer(signal.ITIMER_REAL, call.timeout)
            self._in_task = True
            try:
                result = td.fn(ctx, **call.args)
            finally:
                self._in_task = False
                signal.setitimer(signal.ITIMER_REAL, 0)
            size = len(json.dumps(result))
            if size > self.max_result_bytes:
                raise ResultTooLarge(f"the result is {size} bytes, over the limit of {self.max_result_bytes}")
        except Interrupted:
            return None
        except TaskCancelled as exc:
            return TaskOutcome(
                call.task_id, call.attempt, TaskState.CANCELLED, error=ErrorInfo("TaskCancelled", str(exc))
            )
        except Exception as exc:  # the task's own failure, a timeout or an unserializable result
            return self._failure(call, ErrorInfo(type(exc).__name__, str(exc)))
        finally:
            self._current = None
        self.stats.done += 1
        return TaskOutcome(call.task_id, call.attempt, TaskState.SUCCEEDED, result=result)

    def _failure(self, call: TaskCall, error: ErrorInfo) -> TaskOutcome:
        self.stats.failed += 1
        if call.attempt <= call.retries:
            delay = min(MAX_BACKOFF_S, call.backoff * 2 ** (call.attempt - 1))
            return TaskOutcome(
                call.task_id, call.attempt, TaskState.RETRYING, error=error, not_before=time.time() + delay
            )
        return TaskOutcome(call.task_id, call.attempt, TaskState.FAILED, error=error)
