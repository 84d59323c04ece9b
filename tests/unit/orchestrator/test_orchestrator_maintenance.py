"""Timers, the reconciler and the reaper, over in-memory fakes (the PostgreSQL case: test_reaper_orphans.py)."""

from __future__ import annotations

import time

from fakes import CPU_WORKER, Purger, Signals, World, world

from agentbus.config import Settings
from agentbus.domain import App, Context, JobState, TaskState
from agentbus.domain.messages import CallInfo, Heartbeat
from agentbus.orchestrator.maintenance import Maintenance

app = App("maintenance")


@app.task(retries=1)
def work(ctx: Context, i: int) -> int:
    return i


@app.agent
def fan_out(ctx: Context, n: int) -> int:
    return sum(ctx.map(work, range(n)))


@app.agent
def waits(ctx: Context) -> str:
    ctx.sleep(60)
    return "woke"


@app.agent
def outer(ctx: Context, n: int) -> dict[str, int]:
    return {"child": ctx.call_agent(fan_out, n)}


@app.agent
def asks(ctx: Context) -> str:
    return str(ctx.ask_human("ok?", timeout=60, on_timeout="reject"))


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


def maintenance(w: World, clock: Clock, settings: Settings | None = None) -> Maintenance:
    return Maintenance(
        settings or w.settings,
        jobs=w.record,
        steps=w.record,
        approvals=w.record,
        signals=Signals(),
        queues=w.queues,
        workers=w.workers,
        retention=Purger(),
        due=w.record,
        admission=w.driver.admission,
        advance=w.driver.advance,
        clock=clock,
    )


def started(w: World, n: int, worker: str = "w1") -> str:
    job = w.submit("fan_out", {"n": n})
    w.driver.advance(job)
    for s in w.record.of_job(job):
        w.record.run(s.id, worker)
    return job


def test_a_retry_whose_backoff_has_passed_is_sent_again_under_a_new_attempt() -> None:
    w, clock = world(app, CPU_WORKER), Clock()
    job = started(w, 1)
    step = w.record.steps[f"{job}-0"]
    step.state, step.not_before = TaskState.RETRYING, clock.now + 10

    maintenance(w, clock).timers()
    assert step.state == TaskState.RETRYING  # not yet
    clock.now += 11
    maintenance(w, clock).timers()
    assert (step.state, step.attempt) == (TaskState.QUEUED, 2) and w.queues.calls()[-1] == step.id


def test_a_timer_fires_and_its_job_goes_on() -> None:
    w, clock = world(app), Clock()
    job = w.submit("waits")
    w.driver.advance(job)
    clock.now += 61
    maintenance(w, clock).timers()
    assert (w.job(job).state, w.job(job).result) == (JobState.SUCCEEDED, "woke")


def test_a_question_past_its_deadline_is_expired_and_its_job_replayed() -> None:
    w, clock = world(app), Clock()
    job = w.submit("asks")
    w.driver.advance(job)
    assert w.job(job).state == JobState.WAITING_HUMAN and [seq for seq, _ in w.record.asks[job]] == [0]
    w.record.expiring.append(job)  # the store decided the deadline passed
    advanced: list[str] = []
    m = maintenance(w, clock)
    m.advance = advanced.append
    m.timers()
    assert advanced == [job]


def test_queued_calls_whose_queue_message_is_gone_are_sent_again() -> None:
    w, clock = world(app, CPU_WORKER), Clock()
    job = w.submit("fan_out", {"n": 2})
    w.driver.advance(job)
    w.queues.known.clear()  # a FLUSHALL: RQ knows none of the messages
    clock.now += 60

    maintenance(w, clock).reconcile()

    sent = w.queues.calls()
    assert len(sent) == 4 and sorted(sent[2:]) == [f"{job}-0", f"{job}-1"]
    assert {(s.state, s.attempt) for s in w.record.of_job(job)} == {(TaskState.QUEUED, 1)}


def test_queued_calls_still_in_their_queue_are_left_alone() -> None:
    w, clock = world(app, CPU_WORKER), Clock()
    job = w.submit("fan_out", {"n": 2})
    w.driver.advance(job)
    clock.now += 60
    maintenance(w, clock).reconcile()
    assert len(w.queues.calls()) == 2


def test_calls_queued_for_a_build_whose_workers_all_left_are_routed_afresh() -> None:
    old = Heartbeat("old", queues=("cpu", "cpu@b-old"), tasks=(), build="b-old")
    new = Heartbeat("new", queues=("cpu", "cpu@b-new"), tasks=("work",), build="b-new")
    w, clock = world(app, old, new), Clock()
    job = w.submit("fan_out", {"n": 2})
    w.driver.advance(job)
    assert sorted(w.queues.calls("cpu@b-new")) == [f"{job}-0", f"{job}-1"]
    w.workers.beats.remove(new)
    w.driver.admission.router.workers(fresh=True)
    clock.now += 60

    maintenance(w, clock).reconcile()

    steps = w.record.of_job(job)
    assert {(s.state, s.attempt) for s in steps} == {(TaskState.PENDING, 1)}
    assert {s.route_reason for s in steps} == {"waiting for a worker with task 'work'"}


def test_calls_of_a_worker_that_stopped_heartbeating_run_again_after_two_intervals() -> None:
    w, clock = world(app, CPU_WORKER, Heartbeat("w9", queues=("cpu",))), Clock()
    job = started(w, 2, worker="w9")
    w.workers.beats = [CPU_WORKER]  # w9 went silent
    m = maintenance(w, clock, Settings(heartbeat_interval_s=1.0))

    m.reap()
    assert {s.state for s in w.record.of_job(job)} == {TaskState.RUNNING}  # once missing: a key being rewritten?
    clock.now += 2.0
    m.reap()
    assert {(s.state, s.attempt) for s in w.record.of_job(job)} == {(TaskState.QUEUED, 2)}


def test_a_worker_seen_and_then_gone_is_marked_lost_unless_it_was_draining() -> None:
    w, clock = world(app, CPU_WORKER, Heartbeat("w9"), Heartbeat("w8", draining=True)), Clock()
    m = maintenance(w, clock)
    m.reap()
    w.workers.beats = [CPU_WORKER]
    m.reap()
    assert list(w.workers.lost) == ["w9"]


def test_a_call_past_its_timeout_is_failed_or_retried_and_stopped_on_its_worker() -> None:
    w, clock = world(app, CPU_WORKER), Clock()
    job = started(w, 1)
    call = CallInfo(f"{job}-0", "work", 1, 1, 30.0, started=clock.now - 100)
    w.workers.beats = [Heartbeat("w1", queues=("cpu",), calls=(call,), seen=clock.now)]

    maintenance(w, clock).reap()

    assert w.record.steps[call.task_id].state == TaskState.RETRYING  # attempt 1 of 2
    assert w.queues.cancelled == [("w1", call.task_id)]


def test_a_sub_agent_that_ended_without_settling_its_parent_is_found_and_settles_it() -> None:
    """The orchestrator that recorded the child's end stopped before it settled the parent's call."""
    w, clock = world(app, CPU_WORKER), Clock()
    parent = w.submit("outer", {"n": 1})
    w.driver.advance(parent)
    child = f"{parent}-0"
    assert w.record.record_replay(child, [], JobState.SUCCEEDED, result=0)  # and nothing settled the parent
    assert w.job(parent).state == JobState.RUNNING
    clock.now += 60

    maintenance(w, clock).reconcile()

    assert (w.job(parent).state, w.job(parent).result) == (JobState.SUCCEEDED, {"child": 0})
