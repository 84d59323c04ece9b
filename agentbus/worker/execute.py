"""Executing dispatches: many calls in flight, ``async def`` tasks on an event loop, sync ones on threads.

One worker process holds up to ``concurrency`` calls (docs/workers.md). A dispatch's calls are
marked running when it is taken, wait in this process for a free slot, and run:

* ``async def`` tasks as coroutines on the executor's event loop (its own thread): a timeout
  or a cancel cancels the coroutine;
* sync tasks on threads (``_threads.Threads``): at a timeout or a cancel the call is failed
  (``TaskTimeout``) or cancelled at once, ``ctx.cancelled`` turns True, and the thread is
  abandoned: whatever it returns later is dropped here, and attempt fencing in the store
  refuses it anyway. Past ``max_abandoned`` such threads the worker drains and exits.
  A sync call settles itself on its thread (no round trip through the event loop per call:
  that hop was most of the cost of a short call); whoever settles a call first — its thread
  with the result, or the loop at the deadline or a cancel — decides its outcome.

Outcomes go to PostgreSQL in batches through an ``OutcomeWriter`` that retries until written.
Streamed output (``ctx.emit``) goes to Redis through an ``OutputSender`` (its own thread; an emit
never waits on the network); a call's outcome is handed to the writer after its outputs were sent.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import threading
import time
from collections import Counter, defaultdict, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Literal

from agentbus.domain import (
    App,
    ControlEvent,
    Dispatch,
    ErrorInfo,
    TaskCall,
    TaskCancelled,
    TaskContext,
    TaskState,
)
from agentbus.domain.messages import CallInfo
from agentbus.domain.output import MAX_OUTPUT_BYTES, OUTPUT_BUFFER, OutputRecord
from agentbus.domain.retry import after_failure
from agentbus.observability import bind, metrics, tracing
from agentbus.store import Steps, TaskOutcome
from agentbus.worker._outputs import OutputSender
from agentbus.worker._threads import Threads
from agentbus.worker.outcomes import OutcomeWriter

log = logging.getLogger("agentbus.worker")

WRITE_GRACE_S = 30.0


class ResultTooLarge(Exception):
    pass


@dataclass(eq=False)
class _Held:
    """A call this worker has taken: waiting for a slot, running, or waiting for its outcome to be written."""

    call: TaskCall
    origin: str
    started: float | None = None
    ctx: TaskContext | None = None
    task: asyncio.Task[None] | None = None
    """An ``async def`` call's coroutine, once started."""
    deadline: float | None = None
    """A sync call's deadline (monotonic), once started."""
    settled: bool = False
    stop: Literal["cancel", "interrupt"] | None = None

    def info(self) -> CallInfo:
        c = self.call
        return CallInfo(c.task_id, c.name, c.attempt, c.retries, c.timeout, self.started, c.backoff)


@dataclass
class Stats:
    done: int = 0
    failed: int = 0
    abandoned: int = 0


@dataclass
class _Slots:
    running: int = 0
    by_task: Counter[str] = field(default_factory=Counter)


SWEEP_S = 0.05
"""How often the loop looks for sync calls past their deadline (a timeout's precision)."""


class Executor:
    def __init__(
        self,
        app: App,
        steps: Steps,
        publish: Callable[[list[ControlEvent]], None],
        worker_id: str,
        hand_back: Callable[[str, list[TaskCall]], None],
        device: str = "cpu",
        max_result_bytes: int = 1_048_576,
        memory: Callable[[str], Any] | None = None,
        *,
        concurrency: int = 100,
        max_abandoned: int = 50,
        after_sync_call: Callable[[], None] | None = None,
        outputs: Callable[[list[OutputRecord]], None] | None = None,
        output_buffer: int = OUTPUT_BUFFER,
        max_output_bytes: int = MAX_OUTPUT_BYTES,
        not_here: Callable[[list[TaskCall]], object] | None = None,
    ):
        self.app = app
        self.steps = steps
        self.worker_id = worker_id
        self.hand_back = hand_back
        self.device = device
        self.max_result_bytes = max_result_bytes
        self.memory = memory
        self.concurrency = max(1, concurrency)
        self.max_abandoned = max_abandoned
        self.after_sync_call = after_sync_call
        self.stats = Stats()
        self.stopping = False
        self.exhausted = False
        """Too many abandoned threads: the worker should drain and exit (its supervisor restarts it)."""
        self._held: dict[str, _Held] = {}
        self._waiting: deque[_Held] = deque()
        self._sync: dict[str, _Held] = {}
        self._returned: list[_Held] = []
        self._drained = False
        self._pump_requested = False
        self._is_async: dict[str, bool] = {}
        self._slots = _Slots()
        self._lock = threading.Condition()
        self._threads = Threads()
        self._loop = asyncio.new_event_loop()
        self._loop_thread = threading.Thread(target=self._loop.run_forever, name="agentbus-loop", daemon=True)
        self.writer = OutcomeWriter(steps, publish, worker_id, self._written)
        self.outputs = OutputSender(outputs, output_buffer) if outputs is not None else None
        """Where ``ctx.emit`` goes (None: outputs are checked and dropped, as in a bare test)."""
        self.max_output_bytes = max_output_bytes
        self.not_here = not_here
        """Where calls for tasks this App lacks go, never run (None: they fail with ``NotFound``)."""

    # -- lifecycle (main thread) ----------------------------------------------------------------
    def start(self) -> None:
        self._loop_thread.start()
        self._loop.call_soon_threadsafe(self._sweep)
        self.writer.start()
        if self.outputs is not None:
            self.outputs.start()

    def wait_for_room(self, timeout: float) -> bool:
        """Block until this worker holds fewer calls than its concurrency (then it takes a dispatch)."""
        with self._lock:
            return self._lock.wait_for(lambda: len(self._held) < self.concurrency, timeout)

    @property
    def busy(self) -> bool:
        return bool(self._held)

    def calls(self) -> tuple[CallInfo, ...]:
        with self._lock:
            return tuple(h.info() for h in self._held.values())

    @property
    def room(self) -> int:
        """Free slots: how many more calls this worker would hold now."""
        return max(0, self.concurrency - len(self._held))

    def __call__(self, dispatch: Dispatch, origin: str) -> None:
        self.take([(dispatch, origin)])

    def take(self, dispatches: Sequence[tuple[Dispatch, str]]) -> None:
        """Take dispatches: mark their calls running (one store round trip for all) and queue them
        here; returns without waiting."""
        pairs = [(c, origin) for dispatch, origin in dispatches for c in dispatch.calls]
        if self.not_here is not None:
            missing = [c for c, _ in pairs if c.name not in self.app.tasks]
            if missing:
                self.not_here(missing)
                pairs = [(c, o) for c, o in pairs if c.name in self.app.tasks]
        if not pairs:
            return
        started = self.steps.mark_running([(c.task_id, c.attempt) for c, _ in pairs], self.worker_id)
        taken = [_Held(c, origin) for c, origin in pairs if c.task_id in started]
        if not taken:
            return  # cancelled, superseded by a newer attempt, or run elsewhere already
        with self._lock:
            for h in taken:
                self._held[h.call.task_id] = h
        self._loop.call_soon_threadsafe(self._admit, taken)

    def drain(self, grace: float, force: Callable[[], bool]) -> None:
        """Stop: hand back calls not started, let running ones finish within ``grace`` (or until
        ``force()``), then stop the rest (handed back under a new attempt) and flush outcomes."""
        if self._drained:
            return
        self._drained = True
        self.stopping = True
        self._on_loop(self._return_waiting)
        self._hand_back_returned()
        deadline = time.monotonic() + grace
        with self._lock:
            while self._slots.running and time.monotonic() < deadline and not force():
                self._lock.wait(0.1)
        if self._slots.running:
            log.warning("stopping %d calls still running: they go back to a queue", self._slots.running)
            self._on_loop(self._interrupt_running)
            with self._lock:
                self._lock.wait_for(lambda: not self._slots.running, 5.0)
        self._on_loop(self._return_waiting)  # a dispatch taken while stopping
        self._hand_back_returned()
        if self.outputs is not None:
            self.outputs.close(WRITE_GRACE_S)  # outcomes waiting for their outputs go to the writer
        self.writer.close(WRITE_GRACE_S)
        self._loop.call_soon_threadsafe(self._loop.stop)

    def request_cancel(self, task_id: str) -> None:
        """From RQ's pubsub thread: the orchestrator cancelled (or timed out) a call this worker holds."""
        self._loop.call_soon_threadsafe(self._cancel, task_id)

    def _on_loop(self, fn: Callable[[], None]) -> None:
        done: Future[None] = Future()

        def run() -> None:
            try:
                fn()
            finally:
                done.set_result(None)

        self._loop.call_soon_threadsafe(run)
        done.result(10.0)

    def _hand_back_returned(self) -> None:
        with self._lock:
            returned, self._returned = self._returned, []
            for h in returned:
                self._held.pop(h.call.task_id, None)
            self._lock.notify_all()
        by_origin: dict[str, list[TaskCall]] = defaultdict(list)
        for h in returned:
            by_origin[h.origin].append(h.call)
        for origin, calls in by_origin.items():
            try:
                self.hand_back(origin, calls)
            except Exception as exc:  # the reaper recovers them once this worker is gone
                log.warning("could not hand %d calls back (%s): the reaper will", len(calls), exc)

    # -- slots: taken on the loop, given back by whoever settles the call ------------------------
    def _settle(self, h: _Held) -> bool:
        """Claim the right to decide a running call's outcome; frees its slot. False: decided already."""
        with self._lock:
            if h.settled:
                return False
            h.settled = True
            self._slots.running -= 1
            self._slots.by_task[h.call.name] -= 1
            self._sync.pop(h.call.task_id, None)
            self._lock.notify_all()
            return True

    def _finish(self, h: _Held, outcome: TaskOutcome | None) -> None:
        with self._lock:
            if outcome is None:
                self._returned.append(h)
                return
            if outcome.state == TaskState.SUCCEEDED:
                self.stats.done += 1
            elif outcome.state in (TaskState.FAILED, TaskState.RETRYING):
                self.stats.failed += 1
        metrics.call_finished(h.call.name, h.origin, outcome.state.value, h.started)
        tracing.call_finished(h.call.trace, h.call.name, h.call.task_id, h.call.attempt, outcome.state.value, h.started)
        log.debug("call %s (%s) %s", h.call.task_id, h.call.name, outcome.state.value)
        if self.outputs is None:
            self.writer.put(outcome)
        else:  # a reader sees the call's last outputs before it sees the call end
            self.outputs.then(lambda: self.writer.put(outcome))

    def _written(self, outcomes: list[TaskOutcome]) -> None:
        with self._lock:
            for o in outcomes:
                self._held.pop(o.task_id, None)
            self._lock.notify_all()

    def _request_pump(self) -> None:
        """From a call's thread: a slot freed; start waiting calls (one loop wake-up for many)."""
        if not self._waiting:
            return
        with self._lock:
            if self._pump_requested:
                return
            self._pump_requested = True
        self._loop.call_soon_threadsafe(self._pump)

    # -- on the event loop ----------------------------------------------------------------------
    def _admit(self, taken: Sequence[_Held]) -> None:
        if self.stopping:
            with self._lock:
                self._returned.extend(taken)
            return
        self._waiting.extend(taken)
        self._pump()

    def _pump(self) -> None:
        with self._lock:
            self._pump_requested = False
        slots = self._slots
        skipped: list[_Held] = []
        while self._waiting and slots.running < self.concurrency and not self.stopping:
            h = self._waiting.popleft()
            td = self.app.tasks.get(h.call.name)
            cap = td.options.worker_concurrency if td is not None else None
            if cap is not None and slots.by_task[h.call.name] >= cap:
                skipped.append(h)  # its task is at its per-worker cap: let others past
                continue
            with self._lock:
                slots.running += 1
                slots.by_task[h.call.name] += 1
                h.started = time.time()
            if td is None or self._async(td.name, td.fn):
                h.task = self._loop.create_task(self._run(h, td.fn if td is not None else None))
            else:
                h.ctx = self._context(h.call)
                with self._lock:
                    h.deadline = time.monotonic() + h.call.timeout
                    self._sync[h.call.task_id] = h
                self._threads.submit(self._run_sync, h, td.fn)
        self._waiting.extendleft(reversed(skipped))

    def _async(self, name: str, fn: Callable[..., Any]) -> bool:
        known = self._is_async.get(name)
        if known is None:
            known = self._is_async[name] = inspect.iscoroutinefunction(fn)
        return known

    def _context(self, call: TaskCall) -> TaskContext:
        mem = self.memory(call.job_id) if self.memory is not None else None
        emit = self.outputs.put if self.outputs is not None else None
        return TaskContext(
            call.job_id, call.task_id, call.name, call.attempt, self.device, mem, emit, self.max_output_bytes
        )

    def _sweep(self) -> None:
        """Sync calls past their deadline fail with ``TaskTimeout`` now; their threads are abandoned."""
        now = time.monotonic()
        with self._lock:
            late = [h for h in self._sync.values() if h.deadline is not None and h.deadline <= now]
        for h in late:
            err = ErrorInfo("TaskTimeout", f"task ran past its timeout of {h.call.timeout}s")
            self._stop_sync(h, self._failure(h.call, err))
        if late:
            self._pump()
        self._loop.call_later(SWEEP_S, self._sweep)

    def _stop_sync(self, h: _Held, outcome: TaskOutcome | None) -> None:
        """Decide a running sync call from outside its thread (deadline, cancel, shutdown)."""
        with self._lock:  # settled and counted at once: its thread, returning now, uncounts it after
            if not self._settle(h):
                return
            self.stats.abandoned += 1
            if self.stats.abandoned > self.max_abandoned and not self.exhausted:
                self.exhausted = True
                log.error("%d abandoned threads (limit %d): draining to exit", self.stats.abandoned, self.max_abandoned)
        assert h.ctx is not None
        h.ctx.cancel()
        self._finish(h, outcome)

    def _return_waiting(self) -> None:
        with self._lock:
            self._returned.extend(self._waiting)
        self._waiting.clear()

    def _interrupt_running(self) -> None:
        for h in list(self._held.values()):
            if h.task is not None and not h.task.done():
                h.stop = "interrupt"
                h.task.cancel()
            elif h.deadline is not None:
                self._stop_sync(h, None)

    def _cancel(self, task_id: str) -> None:
        h = self._held.get(task_id)
        if h is None:
            return
        if h.task is not None:
            if not h.task.done():
                h.stop = "cancel"
                h.task.cancel()
        elif h.deadline is not None:
            self._stop_sync(h, self._cancelled(h.call))
            self._pump()
        elif h in self._waiting:  # still waiting for a slot: it never starts
            self._waiting.remove(h)
            self._finish(h, self._cancelled(h.call))

    async def _run(self, h: _Held, fn: Callable[..., Any] | None) -> None:
        try:
            outcome = await self._outcome(h, fn)
        finally:
            self._settle(h)
        self._finish(h, outcome)
        self._pump()

    async def _outcome(self, h: _Held, fn: Callable[..., Any] | None) -> TaskOutcome | None:
        call = h.call
        if fn is None:
            err = ErrorInfo("NotFound", f"task {call.name!r} is not registered in this worker's app")
            return self._failed(call, err)
        ctx = h.ctx = self._context(call)
        bind(job_id=call.job_id, task_id=call.task_id, attempt=call.attempt)  # this coroutine's own context
        deadline: asyncio.Timeout | None = None
        try:
            async with asyncio.timeout(call.timeout) as deadline:
                result = await fn(ctx, **call.args)
            return self._succeeded(call, result)
        except asyncio.CancelledError:
            ctx.cancel()
            if h.stop == "interrupt":
                return None  # shutting down: handed back under a new attempt
            return self._cancelled(call)
        except TaskCancelled:
            return self._cancelled(call)
        except Exception as exc:  # the task's own failure, its timeout or an unserializable result
            if deadline is not None and deadline.expired():
                ctx.cancel()
                return self._failure(call, ErrorInfo("TaskTimeout", f"task ran past its timeout of {call.timeout}s"))
            return self._failure(call, ErrorInfo.of(exc))

    # -- on a call's thread ---------------------------------------------------------------------
    def _run_sync(self, h: _Held, fn: Callable[..., Any]) -> None:
        call = h.call
        assert h.ctx is not None
        bind(job_id=call.job_id, task_id=call.task_id, attempt=call.attempt)  # this thread's until its next call
        try:
            outcome = self._succeeded(call, fn(h.ctx, **call.args))
        except TaskCancelled:
            outcome = self._cancelled(call)
        except Exception as exc:  # the task's own failure or an unserializable result
            outcome = self._failure(call, ErrorInfo.of(exc))
        finally:
            if self.after_sync_call is not None:
                self.after_sync_call()
        if self._settle(h):
            self._finish(h, outcome)
            self._request_pump()
            return
        with self._lock:  # it was timed out, cancelled or handed back meanwhile: the result goes nowhere
            self.stats.abandoned -= 1

    # -- outcomes -------------------------------------------------------------------------------
    def _succeeded(self, call: TaskCall, result: Any) -> TaskOutcome:
        size = len(json.dumps(result))
        if size > self.max_result_bytes:
            raise ResultTooLarge(f"the result is {size} bytes, over the limit of {self.max_result_bytes}")
        return TaskOutcome(call.task_id, call.attempt, TaskState.SUCCEEDED, result=result)

    def _cancelled(self, call: TaskCall) -> TaskOutcome:
        return TaskOutcome(
            call.task_id, call.attempt, TaskState.CANCELLED, error=ErrorInfo("TaskCancelled", "task cancelled")
        )

    def _failed(self, call: TaskCall, error: ErrorInfo) -> TaskOutcome:
        return TaskOutcome(call.task_id, call.attempt, TaskState.FAILED, error=error)

    def _failure(self, call: TaskCall, error: ErrorInfo) -> TaskOutcome:
        then = after_failure(call.attempt, call.retries, call.backoff, time.time())
        return TaskOutcome(call.task_id, call.attempt, then.state, error=error, not_before=then.not_before)
