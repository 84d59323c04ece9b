"""The reaper recovers running calls that a live worker no longer lists (issue 17.4).

On the real PostgreSQL and Redis: a worker that marked a call running and then lost it (an
outcome write that failed for good, a bug) keeps heartbeating, so the dead-worker rule never
fires; its heartbeats stop listing the call, and that is what brings the call back.
"""

from __future__ import annotations

import time

import redis

from agentbus.bus import Fleet
from agentbus.config import Settings
from agentbus.domain import App, TaskState
from agentbus.domain.messages import CallInfo, Heartbeat
from agentbus.orchestrator.compose import compose_over
from agentbus.orchestrator.maintenance import Maintenance
from agentbus.security import Keyring
from agentbus.store import NewJob, NewStep, Repositories, step_id

RING = Keyring.parse("k1:reaper-test-secret-0123456789")


def setup(pg_url: str, conn: redis.Redis) -> tuple[Repositories, Fleet, Maintenance, str]:
    settings = Settings(orphan_grace_s=0.3, heartbeat_interval_s=0.1)
    store = Repositories.from_url(pg_url)
    fleet = Fleet(conn, ttl_s=30)
    app = App("t")

    @app.task
    def work(ctx: object, i: int) -> int:
        return i

    parts = compose_over(app, settings, store, conn, ring=RING, workers=fleet)
    job, _ = store.jobs.create_job(NewJob("t", {}))
    steps = [
        NewStep(job.id, i, "task", "work", TaskState.QUEUED, args={"i": i}, queue="cpu", dispatch_id="d1")
        for i in range(2)
    ]
    store.steps.record_replay(job.id, steps, None)
    assert store.steps.mark_running([(s.id, 1) for s in steps], "w-live") == {s.id for s in steps}
    return store, fleet, parts.maintenance, job.id


def beat(fleet: Fleet, *task_ids: str) -> None:
    calls = tuple(CallInfo(t, "work", 1, 0, 300.0, time.time()) for t in task_ids)
    fleet.beat(Heartbeat("w-live", concurrency=100, calls=calls, seen=time.time()))


def test_a_running_call_a_live_worker_stopped_listing_runs_again_under_a_new_attempt(
    pg_url: str, redis_conn: redis.Redis
) -> None:
    store, fleet, maintenance, job_id = setup(pg_url, redis_conn)
    kept, lost = step_id(job_id, 0), step_id(job_id, 1)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        beat(fleet, kept)  # alive, still running ``kept``; ``lost`` is gone from its heartbeats
        maintenance.reap()
        rows = {r.id: r for r in store.steps.tasks_in_state(TaskState.QUEUED)}
        if lost in rows:
            break
        time.sleep(0.1)
    assert lost in rows and rows[lost].attempt == 2  # a late outcome of attempt 1 is fenced out
    assert [r.id for r in store.steps.tasks_in_state(TaskState.RUNNING)] == [kept]
    store.close()


def test_calls_a_live_worker_lists_are_left_alone(pg_url: str, redis_conn: redis.Redis) -> None:
    store, fleet, maintenance, job_id = setup(pg_url, redis_conn)
    for _ in range(10):
        beat(fleet, step_id(job_id, 0), step_id(job_id, 1))
        maintenance.reap()
        time.sleep(0.1)
    assert sorted(r.id for r in store.steps.tasks_in_state(TaskState.RUNNING)) == [
        step_id(job_id, 0),
        step_id(job_id, 1),
    ]
    store.close()


def test_a_call_that_overran_its_timeout_retries_after_its_backoff_not_at_once(
    pg_url: str, redis_conn: redis.Redis
) -> None:
    # the reaper's retry is the worker's rule (domain/retry.py): before, it dropped the backoff
    store, fleet, maintenance, job_id = setup(pg_url, redis_conn)
    overran, other = step_id(job_id, 0), step_id(job_id, 1)
    long_ago = time.time() - 1000
    calls = (
        CallInfo(overran, "work", 1, 2, 1.0, long_ago, backoff=60.0),
        CallInfo(other, "work", 1, 0, 300.0, time.time()),
    )
    fleet.beat(Heartbeat("w-live", concurrency=100, calls=calls, seen=time.time()))
    maintenance.reap()
    retrying = store.steps.tasks_in_state(TaskState.RETRYING)
    assert [r.id for r in retrying] == [overran]
    assert store.steps.tasks_in_state(TaskState.RETRYING, due_before=time.time()) == []  # waits its backoff
    assert [r.id for r in store.steps.tasks_in_state(TaskState.RETRYING, due_before=time.time() + 120)] == [overran]
    store.close()
