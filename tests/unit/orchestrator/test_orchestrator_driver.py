"""Advancing jobs: replay, record, then send; over in-memory fakes of the record and of Redis."""

from __future__ import annotations

from fakes import CPU_WORKER, world

from agentbus.config import Settings
from agentbus.domain import App, Context, JobState, TaskState
from agentbus.domain.messages import Heartbeat, JobEnd

app = App("driver")


@app.task
def double(ctx: Context, x: int) -> int:
    return 2 * x


@app.agent
def fan_out(ctx: Context, n: int) -> int:
    return sum(ctx.map(double, range(n)))


@app.agent
def parent(ctx: Context, n: int) -> int:
    return int(ctx.call_agent(fan_out, n=n)) + 1


@app.agent
def chatty(ctx: Context) -> str:
    ctx.emit({"step": "start"})
    return "done"


@app.agent
def unserialisable(ctx: Context) -> object:
    return {1, 2}


@app.agent
def waits(ctx: Context) -> str:
    ctx.sleep(60)
    return "woke"


def test_a_job_advances_from_its_calls_to_its_result_and_its_waiters_are_told() -> None:
    w = world(app, CPU_WORKER)
    job = w.submit("fan_out", {"n": 3})
    w.driver.advance(job)

    assert w.job(job).state == JobState.RUNNING and w.notices.changed_jobs == [job]
    assert w.queues.calls("cpu") == [f"{job}-0", f"{job}-1", f"{job}-2"]
    assert {s.state for s in w.record.of_job(job)} == {TaskState.QUEUED}

    w.driver.advance(job)  # an event while its calls are open: nothing is replayed
    assert len(w.queues.calls()) == 3

    for s in w.record.of_job(job):
        w.record.run(s.id)
        w.record.succeed(s.id, 2 * s.new.seq)
    w.driver.advance(job)
    assert (w.job(job).state, w.job(job).result) == (JobState.SUCCEEDED, 6)
    rec = w.job(job)  # the notice carries the end as committed: a long-poll answers from it
    assert w.notices.ends == [JobEnd(job, rec.tenant, rec.state, rec.result, rec.error)]


def test_a_finished_child_settles_its_step_in_the_parent_and_the_parent_goes_on() -> None:
    w = world(app, CPU_WORKER)
    job = w.submit("parent", {"n": 2})
    w.driver.advance(job)
    child = f"{job}-0"
    assert w.job(child).parent_id == job and w.events.published[0].job_ids == (child,)

    w.driver.advance(child)
    w.run_all(result=5)
    w.driver.advance(child)

    assert (w.job(child).state, w.job(child).result) == (JobState.SUCCEEDED, 10)
    assert (w.job(job).state, w.job(job).result) == (JobState.SUCCEEDED, 11)


def test_a_job_of_an_unknown_type_fails_and_says_so() -> None:
    w = world(app)
    job = w.submit("no_such_agent")
    w.driver.advance(job)
    error = w.job(job).error
    assert w.job(job).state == JobState.FAILED and error is not None and error.type == "NotFound"
    assert w.notices.ends == [JobEnd(job, w.job(job).tenant, JobState.FAILED, None, error)]


def test_a_result_that_is_not_json_fails_the_job() -> None:
    w = world(app)
    job = w.submit("unserialisable")
    w.driver.advance(job)
    assert w.job(job).state == JobState.FAILED and w.job(job).error is not None


def test_outputs_are_sent_once_the_replay_is_recorded() -> None:
    w = world(app)
    job = w.submit("chatty")
    w.driver.advance(job)
    assert [(o.job_id, o.data_json) for o in w.outputs.records] == [(job, '{"step":"start"}')]


def test_a_cancelled_job_gets_no_steps_and_its_open_calls_are_cancelled() -> None:
    w = world(app, CPU_WORKER)
    job = w.submit("fan_out", {"n": 2})
    w.driver.advance(job)
    w.record.cancel_job(job)
    w.driver.advance(job)  # the cancel event
    assert {s.state for s in w.record.of_job(job)} == {TaskState.CANCELLED}


def test_a_fan_out_past_the_budget_of_one_replay_is_built_in_parts() -> None:
    w = world(app, CPU_WORKER, settings=Settings(max_calls_per_replay=4))
    job = w.submit("fan_out", {"n": 10})
    w.driver.advance(job)
    assert len(w.queues.calls()) == 4 and w.driver.resuming
    for resumed in w.driver.take_resumable():
        w.driver.advance(resumed, resume=True)
    for resumed in w.driver.take_resumable():
        w.driver.advance(resumed, resume=True)
    assert len(w.queues.calls()) == 10 and not w.driver.resuming


def test_jobs_advanced_together_share_dispatches_and_each_moves_on_its_own() -> None:
    w = world(app, CPU_WORKER, Heartbeat("w2", queues=("cpu",)))
    jobs = [w.submit("fan_out", {"n": 1}) for _ in range(4)]
    cancelled = w.submit("fan_out", {"n": 1})
    w.record.cancel_job(cancelled)
    others = [w.submit("parent", {"n": 1}), w.submit("no_such_agent")]

    alone = w.driver.advance_many([*jobs, cancelled, *others, "no-such-job"])

    assert sorted(alone) == sorted(others)  # a child to start, an unknown type: each advanced alone
    assert [len(d.calls) for d in w.queues.sent["cpu"]] == [2, 2]  # 4 calls of 4 jobs: one message per live worker
    assert w.record.of_job(cancelled) == []
    moved = w.run_all(result=21)
    assert w.driver.advance_many(moved) == []
    assert [(w.job(j).state, w.job(j).result) for j in jobs] == [(JobState.SUCCEEDED, 21)] * 4


def test_timers_are_recorded_as_steps_and_not_sent() -> None:
    w = world(app)
    job = w.submit("waits")
    w.driver.advance(job)
    (step,) = w.record.of_job(job)
    assert (step.new.kind, step.state) == ("sleep", TaskState.PENDING) and w.queues.sent == {}
