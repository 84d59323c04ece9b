"""Later and recurring jobs in the store, on every backend; the races on real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import pytest

from agentbus.domain import Conflict, JobState, NotFound
from agentbus.store import NewJob, NewSchedule, Repositories


def schedule(store: Repositories, name: str = "hourly", tenant: str = "default", **kw: Any) -> NewSchedule:
    fields: dict[str, Any] = {
        "tenant": tenant,
        "name": name,
        "agent": "greet",
        "input": {"name": "x"},
        "cron": "0 * * * *",
        "timezone": "UTC",
        "catch_up": "latest",
        "next_tick": 3600,
    }
    fields.update(kw)
    return NewSchedule(**fields)


def events(store: Repositories, job_id: str) -> list[dict[str, Any]]:
    return [data for _, _, kind, data in store.events.job_events_since(job_id, 0) if kind == "job"]


def test_a_job_for_later_waits_scheduled_and_is_submitted_once_when_due(store: Repositories) -> None:
    now = time.time()
    later, _ = store.jobs.create_job(NewJob("echo", {}, run_at=now + 60))
    past, _ = store.jobs.create_job(NewJob("echo", {}, run_at=now - 60))
    assert later.state == JobState.SCHEDULED and later.run_at == now + 60
    assert past.state == JobState.SUBMITTED  # a time already past runs now
    assert store.jobs.submit_due(now) == []
    assert store.jobs.submit_due(now + 61) == [(later.id, now + 60)]
    assert store.jobs.submit_due(now + 61) == []  # once
    assert store.jobs.get_job(later.id).state == JobState.SUBMITTED
    assert [e["status"] for e in events(store, later.id)] == ["scheduled", "submitted"]
    assert events(store, later.id)[-1]["late_s"] == pytest.approx(1.0)


def test_a_cancelled_job_for_later_is_never_submitted(store: Repositories) -> None:
    now = time.time()
    job, _ = store.jobs.create_job(NewJob("echo", {}, run_at=now + 60))
    assert store.jobs.cancel_job(job.id).state == JobState.CANCELLED
    assert store.jobs.submit_due(now + 120) == []
    assert store.jobs.get_job(job.id).state == JobState.CANCELLED


def test_a_scheduled_job_counts_under_the_tenant_cap(store: Repositories) -> None:
    store.jobs.create_job(NewJob("echo", {}, run_at=time.time() + 60, tenant="acme"))
    assert store.jobs.running_jobs("acme") == 1


def test_a_scheduled_job_is_not_replayed_before_its_time(store: Repositories) -> None:
    job, _ = store.jobs.create_job(NewJob("echo", {}, run_at=time.time() + 60))
    assert not store.steps.record_replay(job.id, [], JobState.SUCCEEDED, result=1)
    assert store.jobs.get_job(job.id).state == JobState.SCHEDULED


def test_schedule_names_are_unique_per_tenant(store: Repositories) -> None:
    a = store.schedules.create(schedule(store))
    with pytest.raises(Conflict):
        store.schedules.create(schedule(store))
    other = store.schedules.create(schedule(store, tenant="acme"))
    assert a.id != other.id
    assert [s.name for s in store.schedules.list_schedules("default")] == ["hourly"]
    with pytest.raises(NotFound):
        store.schedules.get(a.id, "acme")


def test_pause_resume_and_delete(store: Repositories) -> None:
    s = store.schedules.create(schedule(store))
    assert store.schedules.set_paused(s.id, "default", True, 0).paused
    assert store.schedules.due(10**10) == []
    resumed = store.schedules.set_paused(s.id, "default", False, 7200)
    assert not resumed.paused and resumed.next_tick == 7200
    store.schedules.delete(s.id, "default")
    with pytest.raises(NotFound):
        store.schedules.delete(s.id, "default")


def test_firing_makes_one_job_per_tick_and_moves_the_schedule(store: Repositories) -> None:
    s = store.schedules.create(schedule(store))
    assert [d.id for d in store.schedules.due(3600)] == [s.id]
    made = store.schedules.fire(s, [3600], 7200, now=3601)
    assert len(made) == 1
    job = store.jobs.get_job(made[0])
    assert (job.type, job.input, job.state, job.schedule_id, job.schedule_tick) == (
        "greet",
        {"name": "x"},
        JobState.SUBMITTED,
        s.id,
        3600,
    )
    assert events(store, job.id)[0]["tick"] == 3600
    after = store.schedules.get(s.id)
    assert (after.next_tick, after.last_tick, after.last_job_id) == (7200, 3600, job.id)
    # the same look again (a second orchestrator with the schedule as it was): nothing
    assert store.schedules.fire(s, [3600], 7200, now=3601) is None


def test_a_tick_fired_twice_makes_one_job_even_past_the_compare_and_set(store: Repositories) -> None:
    s = store.schedules.create(schedule(store))
    store.schedules.fire(s, [3600], 7200, now=3601)
    moved_on = store.schedules.get(s.id)
    assert len(store.schedules.fire(moved_on, [3600, 7200], 10800, now=7201) or []) == 1
    assert len([j for j in store.jobs.list_jobs(limit=10)[0] if j.schedule_tick == 3600]) == 1


def test_keep_updates_an_apps_schedule_in_place(store: Repositories) -> None:
    first, changed = store.schedules.keep(schedule(store, origin="app"))
    assert changed
    store.schedules.set_paused(first.id, "default", True, 0)
    same, changed = store.schedules.keep(schedule(store, origin="app"))
    assert not changed and same.paused
    moved, changed = store.schedules.keep(schedule(store, origin="app", cron="30 * * * *", next_tick=1800))
    assert changed and moved.id == first.id and moved.cron == "30 * * * *" and moved.next_tick == 1800
    assert moved.paused  # a person's pause outlives a deploy


def _race(n: int, work: Callable[[int], Any]) -> list[Any]:
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def run(i: int) -> None:
        barrier.wait()
        out[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_two_orchestrators_firing_one_tick_at_once_make_one_job(pg_url: str) -> None:
    repos = [Repositories.from_url(pg_url) for _ in range(2)]
    try:
        s = repos[0].schedules.create(schedule(repos[0]))
        for _ in range(5):  # each round: both look at the same due schedule, then fire it together
            seen = [r.schedules.get(s.id) for r in repos]
            tick = seen[0].next_tick
            made = _race(
                2, lambda i, seen=seen, tick=tick: repos[i].schedules.fire(seen[i], [tick], tick + 3600, tick + 1)
            )
            assert sorted(len(m or []) for m in made) == [0, 1]
            assert sum(m is None for m in made) == 1  # the loser wrote nothing
        jobs, _ = repos[0].jobs.list_jobs(limit=50)
        assert sorted(j.schedule_tick for j in jobs) == [3600 * k for k in range(1, 6)]
    finally:
        for r in repos:
            r.close()


def test_two_sweeps_at_once_submit_each_due_job_once(pg_url: str) -> None:
    repos = [Repositories.from_url(pg_url) for _ in range(2)]
    try:
        now = time.time()
        ids = {repos[0].jobs.create_job(NewJob("echo", {}, run_at=now + 1))[0].id for _ in range(50)}
        got = _race(2, lambda i: repos[i].jobs.submit_due(now + 2))
        submitted = [job_id for part in got for job_id, _ in part]
        assert sorted(submitted) == sorted(ids)
    finally:
        for r in repos:
            r.close()
