"""The executor: many calls in flight, async and sync, timeouts, cancels, fencing, draining.

On the real store (PostgreSQL and SQLite); no Redis: the executor is handed a dispatch directly.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from agentbus.domain import App, ControlEvent, Dispatch, TaskCall, TaskContext, TaskState
from agentbus.store import NewJob, NewStep, Repositories, step_id
from agentbus.worker.execute import Executor


class Peak:
    """How many calls were inside a task at once."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.now = 0
        self.peak = 0

    def __enter__(self) -> None:
        with self.lock:
            self.now += 1
            self.peak = max(self.peak, self.now)

    def __exit__(self, *exc: object) -> None:
        with self.lock:
            self.now -= 1


@pytest.fixture
def peak() -> Peak:
    return Peak()


@pytest.fixture
def app(peak: Peak) -> App:
    app = App("t")
    release = threading.Event()

    @app.task
    async def wait_async(ctx: TaskContext, seconds: float) -> str:
        with peak:
            await asyncio.sleep(seconds)
        return ctx.task_id

    @app.task(worker_concurrency=2)
    async def narrow(ctx: TaskContext, seconds: float) -> str:
        with peak:
            await asyncio.sleep(seconds)
        return ctx.task_id

    @app.task
    def wait_sync(ctx: TaskContext, seconds: float) -> str:
        with peak:
            time.sleep(seconds)
        return ctx.task_id

    @app.task(timeout=0.2)
    def hangs(ctx: TaskContext, seconds: float) -> str:
        """Ignores its deadline, then reports whether it was told it was cancelled."""
        time.sleep(seconds)
        return "cancelled" if ctx.cancelled else "not told"

    @app.task
    def until_cancelled(ctx: TaskContext, seconds: float) -> bool:
        while not ctx.cancelled and not release.wait(0.01):
            pass
        return ctx.cancelled

    return app


class Harness:
    def __init__(self, store: Repositories, app: App, **kw: Any) -> None:
        self.store = store
        self.handed_back: list[TaskCall] = []
        self.events: list[ControlEvent] = []
        self.executor = Executor(app, store.steps, self.events.extend, "w-test", self._hand_back, **kw)
        self.executor.start()
        job, _ = store.jobs.create_job(NewJob("t", {}))
        self.job_id = job.id
        self.seq = 0

    def _hand_back(self, origin: str, calls: list[TaskCall]) -> None:
        self.handed_back.extend(calls)

    def send(self, name: str, n: int, timeout: float = 30.0, **args: Any) -> list[TaskCall]:
        steps = [
            NewStep(
                self.job_id,
                self.seq + i,
                "task",
                name,
                TaskState.QUEUED,
                args=args,
                timeout=timeout,
                queue="cpu",
                dispatch_id="d1",
            )
            for i in range(n)
        ]
        self.store.steps.record_replay(self.job_id, steps, None)
        calls = [TaskCall(step_id(self.job_id, s.seq), self.job_id, name, args, 1, 0, timeout, 0.5) for s in steps]
        self.seq += n
        self.executor(Dispatch("d1", tuple(calls)), "cpu")
        return calls

    def states(self, calls: list[TaskCall]) -> list[tuple[str, Any]]:
        journal = self.store.steps.load_journal(self.job_id)
        seqs = [int(c.task_id.rsplit("-", 1)[1]) for c in calls]
        out = []
        for s in seqs:
            rec = journal[s]
            out.append((rec.state.value, rec.error.type if rec.error else rec.result))
        return out

    def settle(self, calls: list[TaskCall], check: Callable[[Any], bool], timeout: float = 20.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(self.states(calls)):
                return
            time.sleep(0.02)
        raise AssertionError(f"timed out: {self.states(calls)}")


@pytest.fixture
def harness(store: Repositories, app: App) -> Iterator[Callable[..., Harness]]:
    made: list[Harness] = []

    def make(**kw: Any) -> Harness:
        made.append(Harness(store, app, **kw))
        return made[-1]

    yield make
    for h in made:
        h.executor.drain(0.0, force=lambda: True)


def done(states: list[tuple[str, Any]]) -> bool:
    return all(s not in ("queued", "running") for s, _ in states)


@pytest.mark.parametrize("name", ["wait_async", "wait_sync"])
def test_calls_up_to_the_concurrency_run_at_once_and_no_more(harness: Any, peak: Peak, name: str) -> None:
    h = harness(concurrency=8)
    calls = h.send(name, 20, seconds=0.1)
    h.settle(calls, done)
    assert h.states(calls) == [("succeeded", c.task_id) for c in calls]
    assert peak.peak == 8


def test_a_task_cap_per_worker_holds_while_other_calls_go_past(harness: Any, peak: Peak) -> None:
    h = harness(concurrency=50)
    calls = h.send("narrow", 6, seconds=0.1)
    h.settle(calls, done)
    assert [s for s, _ in h.states(calls)] == ["succeeded"] * 6
    assert peak.peak == 2


def test_a_sync_call_past_its_deadline_fails_at_once_and_its_late_result_is_dropped(harness: Any) -> None:
    h = harness(concurrency=4)
    (call,) = h.send("hangs", 1, timeout=0.2, seconds=1.0)
    h.settle([call], done)
    assert h.states([call]) == [("failed", "TaskTimeout")]
    assert h.executor.stats.abandoned == 1  # the thread still runs...
    time.sleep(1.2)
    assert h.states([call]) == [("failed", "TaskTimeout")]  # ...and what it returned went nowhere
    assert h.executor.stats.abandoned == 0
    assert not h.executor.exhausted


def test_too_many_abandoned_threads_tell_the_worker_to_leave(harness: Any) -> None:
    h = harness(concurrency=4, max_abandoned=1)
    calls = h.send("hangs", 2, timeout=0.2, seconds=2.0)
    h.settle(calls, done)
    assert h.executor.exhausted


@pytest.mark.parametrize("name", ["wait_async", "until_cancelled"])
def test_cancel_reaches_a_running_call(harness: Any, name: str) -> None:
    h = harness(concurrency=4)
    (call,) = h.send(name, 1, seconds=30)
    h.settle([call], lambda st: bool(h.executor.calls()) and h.executor.calls()[0].started is not None)
    h.executor.request_cancel(call.task_id)
    h.settle([call], done)
    assert h.states([call]) == [("cancelled", "TaskCancelled")]


def test_drain_finishes_running_calls_and_hands_back_the_waiting_ones(harness: Any) -> None:
    h = harness(concurrency=2)
    calls = h.send("wait_async", 5, seconds=0.3)
    h.settle(calls, lambda st: sum(1 for c in h.executor.calls() if c.started) == 2)
    h.executor.drain(10.0, force=lambda: False)
    states = h.states(calls)
    assert [s for s, _ in states].count("succeeded") == 2
    assert sorted(c.task_id for c in h.handed_back) == sorted(
        c.task_id for c, (s, _) in zip(calls, states, strict=True) if s == "running"
    )
    assert len(h.handed_back) == 3


def test_drain_past_its_grace_stops_running_calls_and_hands_them_back(harness: Any) -> None:
    h = harness(concurrency=4)
    calls = h.send("wait_async", 2, seconds=30)
    h.settle(calls, lambda st: sum(1 for c in h.executor.calls() if c.started) == 2)
    h.executor.drain(0.2, force=lambda: False)
    assert sorted(c.task_id for c in h.handed_back) == sorted(c.task_id for c in calls)


def test_calls_for_a_task_this_app_lacks_are_handed_over_unstarted_and_the_rest_run(
    store: Repositories, app: App
) -> None:
    not_here: list[TaskCall] = []
    h = Harness(store, app, not_here=not_here.extend)
    try:
        mixed = h.send("wait_async", 1, seconds=0.0) + h.send("from_a_newer_build", 2, seconds=0.0)
        h.settle(mixed[:1], done)
        assert h.states(mixed) == [("succeeded", mixed[0].task_id), ("queued", None), ("queued", None)]
        assert [c.task_id for c in not_here] == [c.task_id for c in mixed[1:]]
    finally:
        h.executor.drain(0.0, force=lambda: True)


def test_a_worker_hands_a_call_for_a_task_it_lacks_back_to_pending_under_the_same_attempt(
    store: Repositories, app: App
) -> None:
    from agentbus.worker.service import not_here

    h = Harness(store, app, not_here=lambda calls: not_here(store.steps, "w-old", calls))
    try:
        (call,) = h.send("from_a_newer_build", 1)
        (row,) = store.steps.tasks_in_state(TaskState.PENDING)
        assert (row.id, row.attempt, row.worker) == (call.task_id, 1, None)
        assert row.route_reason == "w-old has no task from_a_newer_build: routed again"
    finally:
        h.executor.drain(0.0, force=lambda: True)
