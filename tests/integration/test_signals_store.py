"""Signals in the store: kept until a wait takes them, each taken once (docs/programming.md "Signals")."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from agentbus.domain import Conflict, JobState, NotFound, TaskState, ValidationFailed
from agentbus.store import NewJob, NewStep, Repositories, Steps

T = TaskState


def job(store: Repositories, tenant: str = "default") -> str:
    rec, _ = store.jobs.create_job(NewJob("waiter", {}, tenant=tenant))
    assert store.steps.record_replay(rec.id, [], None)  # running
    return rec.id


def wait(job_id: str, seq: int, name: str, *, schema: Any = None, deadline: float | None = None) -> NewStep:
    args = {"name": name, "timeout": None, "schema": schema}
    return NewStep(job_id, seq, "signal", name, T.PENDING, args=args, not_before=deadline)


def journal(store: Repositories, job_id: str) -> dict[int, Any]:
    return {seq: (r.state, r.result) for seq, r in store.steps.load_journal(job_id).items()}


def test_a_signal_sent_before_the_wait_is_kept_then_taken_as_the_wait_is_recorded(store: Repositories) -> None:
    job_id = job(store)
    sig, created = store.signals.send(job_id, "approve", {"ok": True})
    assert created and sig.status == "pending" and sig.step is None
    assert store.steps.record_replay(job_id, [wait(job_id, 0, "approve")], None)
    assert journal(store, job_id)[0] == (T.SUCCEEDED, {"ok": True})
    [got] = store.signals.list_signals(job_id)
    assert (got.id, got.status, got.step) == (sig.id, "delivered", 0)


def test_a_signal_sent_to_an_open_wait_completes_it_at_once(store: Repositories) -> None:
    job_id = job(store)
    assert store.steps.record_replay(job_id, [wait(job_id, 0, "go")], None)
    sig, _ = store.signals.send(job_id, "go", [1, 2])
    assert (sig.status, sig.step) == ("delivered", 0)
    assert journal(store, job_id)[0] == (T.SUCCEEDED, [1, 2])
    kinds = [(k, d.get("event")) for _, _, k, d in store.events.job_events_since(job_id, 0) if k == "signal"]
    assert kinds == [("signal", "signal.received"), ("signal", "signal.delivered")]


def test_waits_for_one_name_take_its_signals_in_arrival_order(store: Repositories) -> None:
    job_id = job(store)
    for payload in ("first", "second", "third"):
        store.signals.send(job_id, "vote", payload)
    assert store.steps.record_replay(job_id, [wait(job_id, 0, "vote"), wait(job_id, 1, "vote")], None)
    assert journal(store, job_id) == {0: (T.SUCCEEDED, "first"), 1: (T.SUCCEEDED, "second")}
    assert [s.status for s in store.signals.list_signals(job_id)] == ["delivered", "delivered", "pending"]


def test_a_payload_the_open_waits_schema_refuses_is_a_422_and_is_not_kept(store: Repositories) -> None:
    job_id = job(store)
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}
    assert store.steps.record_replay(job_id, [wait(job_id, 0, "n", schema=schema)], None)
    with pytest.raises(ValidationFailed, match=r"payload\.n"):
        store.signals.send(job_id, "n", {"n": "x"})
    assert store.signals.list_signals(job_id) == []
    store.signals.send(job_id, "n", {"n": 3})
    assert journal(store, job_id)[0] == (T.SUCCEEDED, {"n": 3})


def test_a_repeated_idempotency_key_returns_the_same_signal(store: Repositories) -> None:
    job_id = job(store)
    first, created = store.signals.send(job_id, "go", 1, key="k-1")
    again, created_again = store.signals.send(job_id, "go", 2, key="k-1")
    assert created and not created_again and again == first
    other, created_other = store.signals.send(job_id, "go", 3, key="k-2")
    assert created_other and other.id != first.id
    assert len(store.signals.list_signals(job_id)) == 2


def test_another_tenants_job_is_not_found_and_a_finished_job_takes_no_signal(store: Repositories) -> None:
    job_id = job(store, tenant="acme")
    with pytest.raises(NotFound):
        store.signals.send(job_id, "go", 1, tenant="other")
    with pytest.raises(NotFound):
        store.signals.list_signals(job_id, tenant="other")
    store.signals.send(job_id, "go", 1, tenant="acme", key="k")
    assert store.steps.record_replay(job_id, [], JobState.SUCCEEDED, result=1)
    with pytest.raises(Conflict):
        store.signals.send(job_id, "go", 2, tenant="acme")
    assert store.signals.send(job_id, "go", 2, tenant="acme", key="k")[1] is False  # the earlier one


def test_a_wait_past_its_deadline_times_out_once_and_a_late_signal_is_kept(store: Repositories) -> None:
    job_id = job(store)
    assert store.steps.record_replay(job_id, [wait(job_id, 0, "go", deadline=100.0)], None)
    assert store.signals.expire_due(99.0) == []
    assert store.signals.expire_due(101.0) == [job_id]
    assert store.signals.expire_due(102.0) == []
    rec = store.steps.load_journal(job_id)[0]
    assert rec.state == T.FAILED and rec.error is not None and rec.error.type == "SignalTimeout"
    sig, _ = store.signals.send(job_id, "go", 1)
    assert sig.status == "pending"


def test_the_sweep_hands_over_a_signal_kept_for_a_wait_recorded_without_pairing(store: Repositories) -> None:
    job_id = job(store)
    store.signals.send(job_id, "go", "payload")
    blind = Steps(store.db, store.events, store.approvals)  # records the wait without pairing it
    assert blind.record_replay(job_id, [wait(job_id, 0, "go")], None)
    assert journal(store, job_id)[0] == (T.PENDING, None)
    assert store.signals.deliver_waiting() == [job_id]
    assert journal(store, job_id)[0] == (T.SUCCEEDED, "payload")
    assert store.signals.deliver_waiting() == []


def test_a_finished_jobs_signals_are_purged_with_it(store: Repositories) -> None:
    from agentbus.store import Retention

    job_id = job(store)
    store.signals.send(job_id, "go", 1)
    assert store.steps.record_replay(job_id, [], JobState.SUCCEEDED, result=1)
    got = Retention(store.db).purge(before=2e10, now=0)
    assert got.signals == 1 and got.jobs == 1


# -- exactly once, against PostgreSQL with real concurrency ---------------------------------------


def race(n: int, fn: Callable[[int], Any], store: Repositories) -> list[Any]:
    """``fn`` in ``n`` threads at once over one store, each thread on a pooled connection of its own
    (as the API's thread pool runs). One store, not one per thread: the models are bound to the
    database of the last store built, so several stores in a process would share connections."""
    barrier = threading.Barrier(n)
    out: list[Any] = [None] * n

    def go(i: int) -> None:
        barrier.wait()
        try:
            out[i] = fn(i)
        except Exception as exc:
            out[i] = exc
        finally:
            store.db.close()  # the thread's connection back to the pool

    threads = [threading.Thread(target=go, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_two_consumers_at_once_hand_a_signal_to_its_wait_exactly_once(pg_url: str) -> None:
    store = Repositories.from_url(pg_url)
    for _ in range(5):
        job_id = job(store)
        store.signals.send(job_id, "go", "only")
        blind = Steps(store.db, store.events, store.approvals)
        assert blind.record_replay(job_id, [wait(job_id, 0, "go"), wait(job_id, 1, "go")], None)
        done = race(4, lambda _, job_id=job_id: store.signals.deliver(job_id), store)
        assert sorted(done) == [0, 0, 0, 1]
        assert journal(store, job_id) == {0: (T.SUCCEEDED, "only"), 1: (T.PENDING, None)}
    store.close()


def test_signals_sent_at_once_to_one_wait_complete_it_once_and_the_rest_are_kept(pg_url: str) -> None:
    store = Repositories.from_url(pg_url)
    job_id = job(store)
    assert store.steps.record_replay(job_id, [wait(job_id, 0, "go")], None)
    sent = race(6, lambda i: store.signals.send(job_id, "go", i)[0], store)
    delivered = [s for s in sent if s.status == "delivered"]
    assert len(delivered) == 1
    assert journal(store, job_id)[0] == (T.SUCCEEDED, delivered[0].payload)
    listed = store.signals.list_signals(job_id)
    assert sorted(s.status for s in listed) == ["delivered"] + ["pending"] * 5
    store.close()


def test_sends_at_once_with_one_idempotency_key_make_one_signal(pg_url: str) -> None:
    store = Repositories.from_url(pg_url)
    job_id = job(store)
    for n in range(10):  # a few rounds: the sends interleave differently each time
        sent = race(6, lambda i, key=f"k{n}": store.signals.send(job_id, "go", i, key=key), store)
        assert not [s for s in sent if isinstance(s, Exception)]
        assert sum(1 for _, created in sent if created) == 1
        assert len({rec.id for rec, _ in sent}) == 1
    assert len(store.signals.list_signals(job_id)) == 10
    store.close()
