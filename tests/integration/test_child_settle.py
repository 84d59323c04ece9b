"""A sub-agent's end settles its parent's call even when the orchestrator that recorded the end stopped
before it settled the parent (a SIGKILL between the two transactions): the shard's next holder, handed the
child's unacknowledged entry, or the reconciler, which finds such children, settles it."""

from __future__ import annotations

import time
from typing import Any

import redis

from agentbus.bus import Fleet
from agentbus.config import Settings
from agentbus.domain import AgentContext, App, JobState
from agentbus.domain.messages import Heartbeat
from agentbus.orchestrator.compose import compose_over
from agentbus.orchestrator.driver import Driver
from agentbus.security import Keyring
from agentbus.store import NewJob, Repositories, step_id

RING = Keyring.parse("k1:child-settle-test-secret-0001")

app = App("child-settle")


@app.agent
def inner(ctx: AgentContext, x: int) -> int:
    return x * x


@app.agent
def outer(ctx: AgentContext, x: int) -> dict[str, Any]:
    return {"child": ctx.call_agent(inner, x)}


def driver_for(pg_url: str, redis_conn: redis.Redis) -> tuple[Driver, Repositories]:
    store = Repositories.from_url(pg_url)
    fleet = Fleet(redis_conn, ttl_s=30)
    fleet.beat(Heartbeat("w1", queues=("cpu.high", "cpu", "cpu.low"), concurrency=100, seen=time.time()))
    return compose_over(app, Settings(), store, redis_conn, ring=RING, workers=fleet).driver, store


def test_a_child_that_ended_unsettled_is_settled_by_the_next_orchestrator(pg_url: str, redis_conn: redis.Redis) -> None:
    first, store = driver_for(pg_url, redis_conn)
    parent = store.jobs.create_job(NewJob("outer", {"x": 4}))[0].id
    first.advance(parent)
    child = step_id(parent, 0)  # a sub-agent's job id is its parent's step id
    assert store.jobs.get_job(child).state == JobState.SUBMITTED
    # The child's end is recorded, and the orchestrator stops before it settles the parent's call:
    assert store.steps.record_replay(child, [], JobState.SUCCEEDED, result=16)
    assert store.jobs.get_job(parent).state == JobState.RUNNING
    assert store.steps.unsettled_children(time.time() + 1) == [child]  # what the reconciler finds

    took_over, _ = driver_for(pg_url, redis_conn)
    took_over.advance(child)  # the child's entry, or the reconciler's advance of it

    done = store.jobs.get_job(parent)
    assert (done.state, done.result) == (JobState.SUCCEEDED, {"child": 16})
    assert store.steps.unsettled_children(time.time() + 1) == []
    took_over.advance(child)  # again: settling is a compare-and-set, nothing moves twice
    assert store.jobs.get_job(parent).result == {"child": 16}
    store.close()
