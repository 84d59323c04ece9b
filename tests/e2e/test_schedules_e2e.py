"""Later and recurring jobs on the real roles: a delayed job runs when due (and not before, and never
once cancelled, and through a Redis FLUSHALL); a per-second schedule makes exactly one job per tick
with two orchestrators and a failover between them; pause stops it, delete removes it."""

from __future__ import annotations

import signal
from collections import Counter
from datetime import datetime
from typing import Any

import pytest
import redis

from _cluster import Cluster, wait_until

pytestmark = pytest.mark.e2e


def ts(iso: str | None) -> float:
    assert iso is not None
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def events(c: Cluster, job_id: str) -> list[dict[str, Any]]:
    return [e.data for e in c.client.events(job_id, timeout=30) if e.event == "job"]


def test_a_delayed_job_runs_when_due_not_before_and_a_cancelled_one_never(running: Cluster) -> None:
    c = running
    cancelled = c.client.submit("two_steps", {"x": 2}, delay=2)
    later = c.client.submit("two_steps", {"x": 3}, delay=3)
    assert cancelled.status == later.status == "scheduled"
    assert c.client.cancel(cancelled.id).status == "cancelled"
    redis.Redis.from_url(c.env["AGENTBUS_REDIS_URL"]).flushall()  # the due time lives in PostgreSQL
    body = c.wait(later.id)
    assert body["status"] == "succeeded" and body["result"] == {"first": 9, "second": 81}
    job = c.client.job(later.id)
    assert ts(job["started_at"]) >= ts(job["run_at"])  # not before its time
    assert [e["status"] for e in events(c, later.id)][:3] == ["scheduled", "submitted", "running"]
    # due before the other one, which has run: the cancelled job never started
    gone = c.client.job(cancelled.id)
    assert gone.status == "cancelled" and gone.started_at is None and gone.progress == {"done": 0, "total": 0}


def test_the_apps_schedule_is_kept_under_the_default_tenant(running: Cluster) -> None:
    (s,) = wait_until(lambda: [s for s in running.client.schedules() if s.name == "new-year"], 30, "the app's schedule")
    assert (s.agent, s.cron, s.timezone, s.origin, dict(s.input)) == (
        "new_year",
        "0 0 1 1 *",
        "Europe/Paris",
        "app",
        {"x": 2},
    )


def tick_jobs(c: Cluster, schedule_id: str) -> list[Any]:
    return [j for j in c.client.iter_jobs() if j.schedule_id == schedule_id]


def test_one_job_per_tick_across_a_failover_then_pause_and_delete(cluster: Cluster) -> None:
    c = cluster
    c.orchestrator("orch-a")
    c.orchestrator("orch-b")
    c.worker("w1")
    c.api()
    every2 = c.client.create_schedule("every-2s", "two_steps", "*/2 * * * * *", {"x": 2}, catch_up="all")
    wait_until(lambda: len(tick_jobs(c, every2.id)) >= 3, 60, "three ticks")
    holder = c.client.status()["orchestrator"]["lease_holder"]
    victim = holder if holder in ("orch-a", "orch-b") else "orch-a"
    c.kill(victim, signal.SIGKILL)  # the other takes over once the lease expires, and catches up
    before = {j.raw["schedule_tick"] for j in tick_jobs(c, every2.id)}
    wait_until(lambda: len(tick_jobs(c, every2.id)) >= len(before) + 4, 60, "ticks after the failover")
    jobs = tick_jobs(c, every2.id)
    ticks = sorted(ts(j.raw["schedule_tick"]) for j in jobs)
    assert max(Counter(ticks).values()) == 1  # exactly once per tick
    assert ticks == [ticks[0] + 2 * k for k in range(len(ticks))]  # none missed: catch-up "all"
    for j in jobs[-3:]:
        assert c.wait(j.id)["result"] == {"first": 4, "second": 16}

    paused = c.client.pause_schedule(every2.id)
    made = {j.id for j in tick_jobs(c, every2.id)}
    witness = c.client.create_schedule("witness", "two_steps", "* * * * * *", {"x": 1})
    wait_until(lambda: len(tick_jobs(c, witness.id)) >= 3, 60, "three ticks of another schedule")
    assert {j.id for j in tick_jobs(c, every2.id)} == made  # no tick of a paused schedule fired
    assert c.client.schedule(paused.id).paused

    c.client.delete_schedule(every2.id)
    assert every2.id not in {s.id for s in c.client.schedules()}
    assert {j.id for j in tick_jobs(c, every2.id)} == made  # its jobs are kept
