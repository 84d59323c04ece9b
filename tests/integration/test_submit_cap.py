"""A submit under the tenant's cap of open jobs: on PostgreSQL the count and the insert are one
statement, on SQLite two; both refuse the same jobs and write nothing when they refuse."""

from __future__ import annotations

import time

import pytest

from agentbus.domain import IdempotencyConflict, JobState, NotFound, RateLimited, Unavailable
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


def test_a_batch_admits_of_each_tenant_only_the_first_jobs_under_its_cap(store: Repositories) -> None:
    store.jobs.create_job(NewJob("echo", {}, tenant="acme"), open_cap=3)
    batch = [NewJob("echo", {"i": i}, tenant="acme" if i % 2 == 0 else "zeta") for i in range(10)]
    results = store.jobs.create_jobs(batch, open_cap=3)
    admitted = [r[0] for r in results if isinstance(r, tuple)]
    refused = [r for r in results if isinstance(r, RateLimited)]
    assert len(admitted) + len(refused) == len(batch)
    # acme had one open job: its first two of the batch fit; zeta had none: its first three
    assert [(rec.tenant, rec.input["i"]) for rec in admitted] == [
        ("acme", 0),
        ("zeta", 1),
        ("acme", 2),
        ("zeta", 3),
        ("zeta", 5),
    ]
    assert all(isinstance(r, RateLimited) for r in results[6:]) and isinstance(results[4], RateLimited)
    assert all("its cap is 3" in r.message and "has 3 open jobs" in r.message for r in refused)
    assert store.jobs.running_jobs("acme") == 3 and store.jobs.running_jobs("zeta") == 3
    for rec in admitted:  # each one written, with its first event
        assert store.jobs.get_job(rec.id) == rec
        assert [e[2:] for e in store.events.job_events_since(rec.id, 0)] == [("job", {"status": "submitted"})]
    # a refused job was written nowhere: every job of the tenants is one of those admitted
    listed = {j.id for t in ("acme", "zeta") for j in store.jobs.list_jobs(tenant=t, limit=50)[0]}
    assert {rec.id for rec in admitted} <= listed and len(listed) == len(admitted) + 1


def test_a_batch_replays_a_known_idempotency_key_and_refuses_it_with_another_input(store: Repositories) -> None:
    first, _ = store.jobs.create_job(NewJob("echo", {"m": 1}, tenant="acme", idempotency_key="k"))
    later = time.time() + 3600
    batch = [
        NewJob("echo", {"m": 1}, tenant="acme", idempotency_key="k"),
        NewJob("echo", {"m": 2}, tenant="acme", idempotency_key="k"),
        NewJob("echo", {"m": 3}, tenant="acme", idempotency_key="new"),
        NewJob("echo", {"m": 4}, tenant="acme", run_at=later),
        NewJob("echo", {"m": 5}, tenant="acme"),
    ]
    replay, conflict, keyed, scheduled, plain = store.jobs.create_jobs(batch, open_cap=10)
    assert replay == (first, False)
    assert isinstance(conflict, IdempotencyConflict)
    assert isinstance(keyed, tuple) and keyed[1] and keyed[0].idempotency_key == "new"
    assert isinstance(scheduled, tuple) and scheduled[0].state is JobState.SCHEDULED and scheduled[0].run_at == later
    assert isinstance(plain, tuple) and plain[0].state is JobState.SUBMITTED
    for rec in (keyed[0], scheduled[0], plain[0]):
        assert store.jobs.get_job(rec.id) == rec
    assert store.jobs.running_jobs("acme") == 4


def test_a_store_failure_after_some_jobs_were_written_answers_those_as_written(
    store: Repositories, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A client told 503 for a job that was written would submit it again: a duplicate."""
    jobs = getattr(store.jobs, "_target", store.jobs)
    create_job = jobs.create_job

    def failing(new: NewJob, open_cap: int | None = None) -> object:
        if new.idempotency_key == "lost":
            raise Unavailable("database unavailable: connection lost")
        return create_job(new, open_cap)

    monkeypatch.setattr(jobs, "create_job", failing)
    batch = [
        NewJob("echo", {"m": 1}, tenant="acme"),
        NewJob("echo", {"m": 2}, tenant="acme"),
        NewJob("echo", {"m": 3}, tenant="acme", idempotency_key="lost"),
        NewJob("echo", {"m": 4}, tenant="acme", idempotency_key="after"),
    ]
    one, two, lost, after = jobs.create_jobs(batch, open_cap=10)
    assert isinstance(one, tuple) and isinstance(two, tuple)
    assert isinstance(lost, Unavailable) and isinstance(after, Unavailable)
    assert {store.jobs.get_job(r[0].id).input["m"] for r in (one, two)} == {1, 2}
    assert store.jobs.running_jobs("acme") == 2


def test_a_store_failure_before_any_job_is_written_fails_the_batch(
    store: Repositories, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = getattr(store.jobs, "_target", store.jobs)

    def failing(new: NewJob, open_cap: int | None = None) -> object:
        raise Unavailable("database unavailable: connection lost")

    monkeypatch.setattr(jobs, "create_job", failing)
    with pytest.raises(Unavailable):
        jobs.create_jobs([NewJob("echo", {}, tenant="acme", idempotency_key="a")], open_cap=10)
