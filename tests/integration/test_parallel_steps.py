"""Parallel steps through the real orchestrator (PostgreSQL and Redis): ``ctx.wait_any`` moves on when
its first step finishes, and a job that ends cancels the steps it started and never waited for."""

from __future__ import annotations

import time
from typing import Any

import redis

from agentbus.bus import Fleet
from agentbus.config import Settings
from agentbus.domain import AgentContext, App, JobState, TaskState
from agentbus.domain.messages import Heartbeat
from agentbus.orchestrator.compose import compose_over
from agentbus.orchestrator.driver import Driver
from agentbus.security import Keyring
from agentbus.store import NewJob, Repositories, TaskOutcome, step_id

RING = Keyring.parse("k1:parallel-steps-test-secret-01")

app = App("parallel")


@app.task
def fetch(ctx: Any, url: str) -> str:
    return url


@app.agent
def race(ctx: AgentContext) -> dict[str, Any]:
    a, b = ctx.start(fetch, "slow"), ctx.start(fetch, "fast")
    first = ctx.wait_any(a, b)
    return {"first": first.result()}


def driver_for(pg_url: str, redis_conn: redis.Redis) -> tuple[Driver, Repositories]:
    store = Repositories.from_url(pg_url)
    fleet = Fleet(redis_conn, ttl_s=30)
    fleet.beat(Heartbeat("w1", queues=("cpu.high", "cpu", "cpu.low"), concurrency=100, seen=time.time()))
    driver = compose_over(app, Settings(), store, redis_conn, ring=RING, workers=fleet).driver
    return driver, store


def finish(store: Repositories, job_id: str, seq: int, result: Any) -> None:
    call = (step_id(job_id, seq), 1)
    assert store.steps.mark_running([call], "w1") == {call[0]}
    store.steps.record_outcomes([TaskOutcome(call[0], 1, TaskState.SUCCEEDED, result=result)])


def test_wait_any_returns_when_the_first_step_finishes_and_the_other_is_cancelled(
    pg_url: str, redis_conn: redis.Redis
) -> None:
    driver, store = driver_for(pg_url, redis_conn)
    job = store.jobs.create_job(NewJob("race", {}))[0].id
    driver.advance(job)
    assert [r["state"] for r in store.steps.task_rows(job)] == ["queued", "queued"]

    finish(store, job, 1, "fast")  # step 0 ("slow") is still queued
    driver.advance(job)

    done = store.jobs.get_job(job)
    assert (done.state, done.result) == (JobState.SUCCEEDED, {"first": "fast"})
    states = {r["seq"]: r["state"] for r in store.steps.task_rows(job)}
    assert states[0] == TaskState.CANCELLED.value  # started, never waited for: ends with the job
    assert states[1] == TaskState.SUCCEEDED.value
    store.close()


def test_an_orchestrator_that_takes_a_job_over_wakes_its_wait_any_as_early(
    pg_url: str, redis_conn: redis.Redis
) -> None:
    """The job's row says its replay waits on fewer steps than are open: a fresh orchestrator (after a
    failover, knowing nothing of the job) replays it when the first step finishes, not once both have."""
    first, store = driver_for(pg_url, redis_conn)
    jobs = [store.jobs.create_job(NewJob("race", {}))[0].id for _ in range(3)]
    for job in jobs:
        first.advance(job)
    for job in jobs:
        finish(store, job, 1, "fast")  # step 0 ("slow") is still queued

    took_over, _ = driver_for(pg_url, redis_conn)
    took_over.advance(jobs[0])  # one event at a time
    left = took_over.advance_many(jobs[1:])  # or several from one read of the stream
    for job in left:
        took_over.advance(job)
    for job in jobs:
        done = store.jobs.get_job(job)
        assert (done.state, done.result) == (JobState.SUCCEEDED, {"first": "fast"})
        assert {r["seq"]: r["state"] for r in store.steps.task_rows(job)}[0] == TaskState.CANCELLED.value
    store.close()
