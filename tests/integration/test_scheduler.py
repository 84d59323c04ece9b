"""The orchestrator's scheduler over real PostgreSQL: app schedules kept, due jobs started, ticks
fired once by two schedulers sweeping at the same moments (a failover's overlap)."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from prometheus_client import REGISTRY

from agentbus import AgentContext, App, Schedule
from agentbus.domain import ConfigError, JobState
from agentbus.domain.schedules import APP_TENANT
from agentbus.orchestrator.schedules import Scheduler
from agentbus.store import NewJob, NewSchedule, Repositories

app = App("scheduled")


@app.agent(schedule="0 * * * *")
def hourly(ctx: AgentContext) -> str:
    return "ran"


@app.agent(schedule=Schedule("30 9 * * mon-fri", timezone="Europe/Paris", input={"who": "team"}, name="standup"))
def remind(ctx: AgentContext, who: str) -> str:
    return who


H = 3600
T0 = 1_800_000_000 - 1_800_000_000 % H


def counted(action: str) -> float:
    return REGISTRY.get_sample_value("agentbus_scheduler_actions_total", {"action": action}) or 0.0


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def scheduler(repos: Repositories, clock: Clock, started: list[str]) -> Scheduler:
    return Scheduler(app, jobs=repos.jobs, schedules=repos.schedules, advance=started.append, clock=clock)


def test_the_apps_schedules_are_kept_under_the_default_tenant(pg_url: str) -> None:
    repos = Repositories.from_url(pg_url)
    try:
        s = scheduler(repos, Clock(T0 - 10), [])
        assert s.keep_app_schedules() == 2
        assert s.keep_app_schedules() == 0  # a restart changes nothing
        names = {r.name: r for r in repos.schedules.list_schedules(APP_TENANT)}
        assert set(names) == {"hourly", "standup"}
        assert names["hourly"].next_tick == T0 and names["hourly"].origin == "app"
        assert (names["standup"].agent, names["standup"].input, names["standup"].timezone) == (
            "remind",
            {"who": "team"},
            "Europe/Paris",
        )
    finally:
        repos.close()


def test_a_bad_schedule_is_refused_when_the_app_loads() -> None:
    other = App("bad")
    with pytest.raises(ConfigError, match="never"):
        other.agent(schedule="0 0 30 2 *")(lambda ctx: None)
    with pytest.raises(ConfigError, match="who"):
        other.agent(schedule=Schedule("@daily", input={"nobody": 1}))(remind.fn)


def test_a_due_tick_fires_once_and_the_next_one_later(pg_url: str) -> None:
    repos = Repositories.from_url(pg_url)
    try:
        clock, started = Clock(T0 - 10), []
        s = scheduler(repos, clock, started)
        s.keep_app_schedules()
        s.sweep()
        assert started == []
        clock.now = T0 + 0.4
        s.sweep()
        s.sweep()
        assert len(started) == 1
        job = repos.jobs.get_job(started[0])
        assert (job.type, job.state, job.schedule_tick, job.tenant) == ("hourly", JobState.SUBMITTED, T0, APP_TENANT)
        skipped = counted("tick_skipped")
        clock.now = T0 + 3 * H + 5  # down for three hours: catch-up "latest" runs the last tick only
        s.sweep()
        assert counted("tick_skipped") - skipped == 2  # the hourly ticks at T0 + 1 h and T0 + 2 h
        hourly_jobs = [repos.jobs.get_job(j) for j in started]
        assert [j.schedule_tick for j in hourly_jobs if j.type == "hourly"] == [T0, T0 + 3 * H]
    finally:
        repos.close()


def test_a_job_for_later_is_started_by_the_sweep_when_due(pg_url: str) -> None:
    repos = Repositories.from_url(pg_url)
    try:
        now = time.time()
        clock, started = Clock(now), []
        job, _ = repos.jobs.create_job(NewJob("hourly", {}, run_at=now + 30))
        s = scheduler(repos, clock, started)
        s.sweep()
        assert started == []
        clock.now = now + 30
        s.sweep()
        s.sweep()
        assert started == [job.id]
    finally:
        repos.close()


def test_two_schedulers_sweeping_together_fire_each_tick_once(pg_url: str) -> None:
    repos = [Repositories.from_url(pg_url) for _ in range(2)]
    try:
        clock = Clock(T0 - 1)
        started: list[str] = []
        lock = threading.Lock()

        def record(job_id: str) -> None:
            with lock:
                started.append(job_id)

        every_second = NewSchedule(APP_TENANT, "fast", "hourly", {}, "* * * * * *", "UTC", "all", T0)
        repos[0].schedules.create(every_second)
        pair = [Scheduler(app, jobs=r.jobs, schedules=r.schedules, advance=record, clock=clock) for r in repos]
        for k in range(20):
            clock.now = T0 + k
            barrier = threading.Barrier(2)

            def sweep(s: Scheduler, r: Repositories, barrier: Any = barrier) -> None:
                with r.db.connection_context():  # handed back when the thread ends
                    barrier.wait()
                    s.sweep()

            threads = [threading.Thread(target=sweep, args=(s, r)) for s, r in zip(pair, repos, strict=True)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        ticks = sorted(repos[0].jobs.get_job(j).schedule_tick or 0 for j in started)
        assert ticks == [T0 + k for k in range(20)]
    finally:
        for r in repos:
            r.close()
