"""The orchestrator advances the jobs of one stream read together (issue 10).

On the real PostgreSQL and Redis: new calls of different jobs bound for one queue share
dispatches, spread over that queue's live workers; each job still moves by compare-and-set
(a job cancelled before its replay is written gets no steps and no call); their outcomes
finish them all in the next read.
"""

from __future__ import annotations

import time

import redis
from rq import Queue

from agentbus.bus import Fleet, queue_name
from agentbus.config import Settings
from agentbus.domain import App, JobState, TaskState
from agentbus.domain.messages import Heartbeat
from agentbus.orchestrator.compose import compose_over
from agentbus.security import Keyring
from agentbus.store import NewJob, Repositories, TaskOutcome, step_id

RING = Keyring.parse("k1:advance-many-test-secret-0123")


def test_calls_of_many_jobs_share_dispatches_and_each_job_moves_on_its_own(
    pg_url: str, redis_conn: redis.Redis
) -> None:
    app = App("t")

    @app.task
    def echo(ctx: object, message: str) -> str:
        return message

    store = Repositories.from_url(pg_url)
    fleet = Fleet(redis_conn, ttl_s=30)
    for name in ("w1", "w2"):
        fleet.beat(Heartbeat(name, queues=("cpu.high", "cpu", "cpu.low"), concurrency=100, seen=time.time()))
    driver = compose_over(app, Settings(), store, redis_conn, ring=RING, workers=fleet).driver
    jobs = [store.jobs.create_job(NewJob("echo", {"message": f"m{i}"}))[0].id for i in range(5)]
    cancelled = jobs.pop()
    store.jobs.cancel_job(cancelled)

    driver.advance_many([*jobs, cancelled, "no-such-job"])

    # 4 calls of 4 jobs in 2 dispatches: one per live worker
    assert Queue(queue_name("cpu"), connection=redis_conn).count == 2
    rows = [r for j in jobs for r in store.steps.task_rows(j)]
    assert {r["state"] for r in rows} == {TaskState.QUEUED.value} and len(rows) == 4
    assert {store.jobs.get_job(j).state for j in jobs} == {JobState.RUNNING}
    assert store.steps.task_rows(cancelled) == [] and store.jobs.get_job(cancelled).state == JobState.CANCELLED

    calls = [(step_id(j, 0), 1) for j in jobs]
    assert store.steps.mark_running(calls, "w1") == {c for c, _ in calls}
    done = store.steps.record_outcomes(
        [TaskOutcome(c, 1, TaskState.SUCCEEDED, result=f"m{i}") for i, (c, _) in enumerate(calls)]
    )
    driver.advance_many(done)

    results = [store.jobs.get_job(j) for j in jobs]
    assert [(r.state, r.result) for r in results] == [(JobState.SUCCEEDED, f"m{i}") for i in range(4)]
    store.close()
