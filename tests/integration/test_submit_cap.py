"""A submit under the tenant's cap of open jobs: on PostgreSQL the count and the insert are one
statement, on SQLite two; both refuse the same jobs and write nothing when they refuse."""

from __future__ import annotations

import time

import pytest

from agentbus.domain import JobState, NotFound, RateLimited
from agentbus.store import NewJob, Repositories


def test_the_cap_refuses_the_job_past_it_and_writes_nothing(store: Repositories) -> None:
    for i in range(3):
        store.jobs.create_job(NewJob("echo", {"i": i}, tenant="acme"), open_cap=3)
    with pytest.raises(RateLimited) as refused:
        store.jobs.create_job(NewJob("echo", {"i": 3}, tenant="acme", id="over"), open_cap=3)
    assert "3 open jobs" in refused.value.message and refused.value.retry_after > 0
    assert store.jobs.running_jobs("acme") == 3
    assert store.events.job_events_since("over", 0) == []
    with pytest.raises(NotFound):
        store.jobs.get_job("over")
    # another tenant has its own cap; a finished job is no longer open
    store.jobs.create_job(NewJob("echo", {}, tenant="other"), open_cap=3)
    first, _ = store.jobs.list_jobs(tenant="acme", limit=1)
    store.jobs.cancel_job(first[0].id, "acme")
    rec, created = store.jobs.create_job(NewJob("echo", {"i": 4}, tenant="acme"), open_cap=3)
    assert created and store.jobs.get_job(rec.id) == rec


def test_a_known_idempotency_key_under_the_cap_returns_its_job_and_at_the_cap_is_refused(store: Repositories) -> None:
    new = NewJob("echo", {"m": 1}, tenant="acme", idempotency_key="k1")
    rec, created = store.jobs.create_job(new, open_cap=2)
    again, created_again = store.jobs.create_job(new, open_cap=2)
    assert created and not created_again and again.id == rec.id
    store.jobs.create_job(NewJob("echo", {}, tenant="acme"), open_cap=2)
    with pytest.raises(RateLimited):  # as before: the cap is checked before the key is looked up
        store.jobs.create_job(new, open_cap=2)


def test_the_record_returned_is_the_row_written(store: Repositories) -> None:
    later = time.time() + 3600
    new = NewJob("echo", {"m": "é", "n": [1, 2.5]}, priority=7, tenant="acme", run_at=later, parent_seq=None)
    rec, created = store.jobs.create_job(new, open_cap=5)
    stored = store.jobs.get_job(rec.id)
    assert created and stored == rec
    assert stored.state is JobState.SCHEDULED and stored.run_at == later and stored.priority == 7
    keyed, _ = store.jobs.create_job(NewJob("echo", {"x": 1}, tenant="acme", idempotency_key="k2"), open_cap=5)
    assert store.jobs.get_job(keyed.id) == keyed
