"""Retention against every backend: old finished jobs go with everything that hangs off them; open,
recent and still-needed ones stay; a dry run deletes nothing; the orchestrator's hook does the same."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from typer.testing import CliRunner

from agentbus.cli import cli
from agentbus.config import Settings
from agentbus.domain import HumanRequest, JobState, NotFound, TaskState
from agentbus.domain.retention import job_is_purgeable
from agentbus.orchestrator.maintenance import Maintenance
from agentbus.store import NewItem, NewJob, NewStep, PurgeCounts, Repositories, Retention
from agentbus.store.models import Job

DAY = 86_400.0
HOOK = "http://hooks.example.com/agentbus"


def make_job(
    store: Repositories,
    state: JobState,
    finished_days_ago: float | None = None,
    steps: int = 2,
    parent: str | None = None,
) -> str:
    """A job with ``steps`` task steps and one approval (with a webhook delivery and events), moved to
    ``state``; a finished one is backdated ``finished_days_ago`` (created earlier still)."""
    job, _ = store.jobs.create_job(
        NewJob("research", {"topic": "x"}, parent_id=parent, parent_seq=0 if parent else None)
    )
    calls = [NewStep(job.id, i, "task", "fetch", TaskState.QUEUED, args={"i": i}, queue="cpu") for i in range(steps)]
    assert store.steps.record_replay(job.id, calls, None, asks=[(steps, HumanRequest("Keep?", webhook=HOOK))])
    if state in (JobState.SCHEDULED, JobState.SUBMITTED):
        Job.update(state=state.value).where(Job.id == job.id).execute()
    elif state != JobState.WAITING_HUMAN:
        assert store.jobs.move_job(job.id, JobState.RUNNING)
        assert state == JobState.RUNNING or store.jobs.move_job(job.id, state)
    if finished_days_ago is not None:
        at = time.time() - finished_days_ago * DAY
        Job.update(finished_at=at, created_at=at - 60, updated_at=at).where(Job.id == job.id).execute()
    return job.id


def exists(store: Repositories, job_id: str) -> bool:
    try:
        store.jobs.get_job(job_id)
    except NotFound:
        return False
    return True


def purge(store: Repositories, older_than_days: float = 30, batch: int = 1000) -> PurgeCounts:
    now = time.time()
    return Retention(store.db).purge(now - older_than_days * DAY, now, batch)


def test_an_old_finished_job_goes_with_its_steps_events_approvals_and_deliveries(store: Repositories) -> None:
    old = make_job(store, JobState.SUCCEEDED, finished_days_ago=40)
    (approval,), _ = store.approvals.list_approvals(job_id=old)
    assert store.webhooks.webhook_deliveries(approval.id)
    assert store.steps.load_journal(old) and store.events.job_events_since(old, 0.0)

    got = purge(store)

    assert got.jobs == 1 and got.steps == 2 and got.approvals == 1 and got.deliveries == 1 and got.events >= 2
    assert not exists(store, old)
    assert store.steps.load_journal(old) == {}
    assert store.events.job_events_since(old, 0.0) == []
    assert store.webhooks.webhook_deliveries(approval.id) == []
    with pytest.raises(NotFound):
        store.approvals.get_approval(approval.id)


def test_open_and_recently_finished_jobs_stay_with_all_their_rows(store: Repositories) -> None:
    recent = make_job(store, JobState.FAILED, finished_days_ago=29)
    waiting = make_job(store, JobState.WAITING_HUMAN)
    running = make_job(store, JobState.CANCELLED, finished_days_ago=40)
    Job.update(state=JobState.RUNNING.value).where(Job.id == running).execute()  # reopened: no longer finished
    before = {
        j: (len(store.steps.load_journal(j)), len(store.events.job_events_since(j, 0.0)))
        for j in (recent, waiting, running)
    }

    assert purge(store).jobs == 0

    for j in (recent, waiting, running):
        assert exists(store, j)
        assert (len(store.steps.load_journal(j)), len(store.events.job_events_since(j, 0.0))) == before[j]


def test_the_store_deletes_exactly_what_the_domain_rule_names(store: Repositories) -> None:
    cases = {}
    for state in JobState:
        for days in (None, 1.0, 40.0):
            if state.terminal and days is None:
                continue
            cases[make_job(store, state, finished_days_ago=days if state.terminal else None, steps=1)] = (state, days)
    now = time.time()
    before = now - 30 * DAY
    expected = {
        j
        for j, (state, days) in cases.items()
        if job_is_purgeable(state, None if days is None else now - days * DAY, before)
    }

    Retention(store.db).purge(before, now)

    assert {j for j in cases if not exists(store, j)} == expected
    assert len(expected) == 3  # succeeded, failed, cancelled: 40 days ago


def test_a_child_stays_while_its_parent_runs_and_goes_with_it_later(store: Repositories) -> None:
    parent = make_job(store, JobState.RUNNING)
    child = make_job(store, JobState.SUCCEEDED, finished_days_ago=40, parent=parent)

    assert purge(store).jobs == 0
    assert exists(store, child)

    assert store.jobs.move_job(parent, JobState.SUCCEEDED)
    Job.update(finished_at=time.time() - 35 * DAY).where(Job.id == parent).execute()
    assert purge(store).jobs == 2
    assert not exists(store, child) and not exists(store, parent)


def test_small_batches_delete_everything_a_batch_at_a_time(store: Repositories) -> None:
    old = [make_job(store, JobState.SUCCEEDED, finished_days_ago=40, steps=3) for _ in range(5)]
    keep = make_job(store, JobState.SUCCEEDED, finished_days_ago=2, steps=3)

    got = purge(store, batch=2)

    assert got.jobs == 5 and got.steps == 15 and got.approvals == 5
    assert not any(exists(store, j) for j in old)
    assert exists(store, keep) and len(store.steps.load_journal(keep)) == 3


def test_a_dry_run_counts_what_a_purge_then_deletes_and_deletes_nothing(store: Repositories) -> None:
    old = [make_job(store, JobState.SUCCEEDED, finished_days_ago=40) for _ in range(3)]
    make_job(store, JobState.SUCCEEDED, finished_days_ago=1)
    retention = Retention(store.db)
    now = time.time()

    counted = retention.count(now - 30 * DAY, now)

    assert counted.jobs == 3 and counted.steps == 6
    assert all(exists(store, j) for j in old)
    assert retention.purge(now - 30 * DAY, now) == counted


def test_expired_memory_items_are_purged_and_live_ones_stay(store: Repositories) -> None:
    vec = np.ones(4, dtype=np.float32).tobytes()
    now = time.time()
    items = [
        NewItem("expired", "a", None, vec, now - 10),
        NewItem("later", "b", None, vec, now + 3600),
        NewItem("forever", "c", None, vec, None),
    ]
    store.memory.store_items("t1", "notes", 4, None, items, max_items=100)

    got = Retention(store.db).purge(now - 30 * DAY, now)

    assert got.memory_items == 1
    ns = store.memory.namespace("t1", "notes")
    assert ns is not None
    assert sorted(r.item_id for r in store.memory.changes_since(ns.id, 0)) == ["forever", "later"]


def test_the_orchestrator_purges_by_its_settings_and_not_when_retention_is_off(store: Repositories) -> None:
    old = make_job(store, JobState.SUCCEEDED, finished_days_ago=3)
    # the purge uses the retention alone: nothing else is reached
    unused: Any = dict.fromkeys(("queues", "workers", "admission", "advance", "due"))

    def maintenance(settings: Settings) -> Maintenance:
        retention = Retention(store.db)
        return Maintenance(
            settings,
            jobs=store.jobs,
            steps=store.steps,
            approvals=store.approvals,
            signals=store.signals,
            retention=retention,
            **unused,
        )

    assert maintenance(Settings(retention_s=0)).purge().jobs == 0
    assert maintenance(Settings(retention_s=7 * DAY)).purge().jobs == 0
    assert exists(store, old)
    assert maintenance(Settings(retention_s=2 * DAY)).purge().jobs == 1
    assert not exists(store, old)


def test_cli_purge_dry_run_deletes_nothing_and_purge_deletes(pg_url: str) -> None:
    store = Repositories.from_url(pg_url)
    try:
        old = make_job(store, JobState.SUCCEEDED, finished_days_ago=40)
        env = {"AGENTBUS_DATABASE_URL": pg_url, "AGENTBUS_ENV": "dev"}
        dry = CliRunner().invoke(cli, ["purge", "--older-than", "30d", "--dry-run"], env=env)
        assert dry.exit_code == 0, dry.output
        assert "would delete: 1 jobs, 2 steps" in dry.output
        assert exists(store, old)

        done = CliRunner().invoke(cli, ["purge", "--older-than", "30d"], env=env)
        assert done.exit_code == 0, done.output
        assert "deleted: 1 jobs, 2 steps" in done.output
        assert not exists(store, old)
    finally:
        store.close()


def test_a_running_orchestrator_purges_on_its_own(pg_url: str, redis_url: str) -> None:
    """The loop calls the purge (first after a reconcile interval, then every retention interval)."""
    import threading

    from agentbus.bus import connect
    from agentbus.examples import app
    from agentbus.orchestrator.service import Orchestrator

    store = Repositories.from_url(pg_url)
    old = make_job(store, JobState.SUCCEEDED, finished_days_ago=3)
    recent = make_job(store, JobState.SUCCEEDED, finished_days_ago=1)
    settings = Settings(
        database_url=pg_url,
        redis_url=redis_url,
        retention_s=2 * DAY,
        retention_interval_s=0.2,
        reconcile_interval_s=0.2,
    )
    orch = Orchestrator(settings, app, Repositories.from_url(pg_url), connect(redis_url), name="retention-test")
    runner = threading.Thread(target=orch.run, daemon=True)
    runner.start()
    try:
        deadline = time.monotonic() + 30
        while exists(store, old) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not exists(store, old)
        assert exists(store, recent)
    finally:
        orch.stop.set()
        runner.join(10)
        store.close()
