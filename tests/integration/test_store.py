"""The store against every backend (PostgreSQL and SQLite, through the parametrized ``store`` fixture)."""

from __future__ import annotations

from typing import Any

import pytest

from agentbus.domain import (
    Conflict,
    ErrorInfo,
    IdempotencyConflict,
    InvalidInput,
    JobState,
    NotFound,
    StepRecord,
    TaskState,
)
from agentbus.store import NewJob, NewStep, Replayed, Repositories, TaskOutcome, step_id

T = TaskState


def submit(store: Repositories, type: str = "echo", key: str | None = None, **input: Any) -> str:
    job, created = store.jobs.create_job(NewJob(type, input or {"message": "hi"}, idempotency_key=key))
    assert created
    return job.id


def task(job_id: str, seq: int, state: TaskState = T.QUEUED, name: str = "echo", **kw: Any) -> NewStep:
    kw.setdefault("args", {"message": f"m{seq}"})
    kw.setdefault("dispatch_id", "d-first")
    kw.setdefault("queue", "cpu")
    return NewStep(job_id, seq, "task", name, state, **kw)


def running_job(store: Repositories, steps: int = 1, **kw: Any) -> tuple[str, list[str]]:
    """A running job with ``steps`` queued task steps."""
    job_id = submit(store)
    assert store.steps.record_replay(job_id, [task(job_id, i, **kw) for i in range(steps)], None)
    return job_id, [step_id(job_id, i) for i in range(steps)]


def step_state(store: Repositories, job_id: str, seq: int) -> StepRecord:
    return store.steps.load_journal(job_id)[seq]


# -- jobs ---------------------------------------------------------------------------------------


def test_create_and_get_job(store: Repositories) -> None:
    job, created = store.jobs.create_job(NewJob("echo", {"message": "hi", "n": [1, 2]}, priority=3))
    assert created
    got = store.jobs.get_job(job.id)
    assert got == job
    assert got.state == JobState.SUBMITTED
    assert got.input == {"message": "hi", "n": [1, 2]}
    assert (got.type, got.priority, got.result, got.error) == ("echo", 3, None, None)
    assert got.started_at is None and got.finished_at is None
    assert got.created_at <= got.updated_at


def test_create_job_with_a_given_id_and_parent(store: Repositories) -> None:
    parent = submit(store)
    child, _ = store.jobs.create_job(NewJob("echo", {}, parent_id=parent, parent_seq=0, id=step_id(parent, 0)))
    assert child.id == step_id(parent, 0)
    assert (child.parent_id, child.parent_seq) == (parent, 0)
    assert store.jobs.children(parent) == [child.id]


def test_get_unknown_job_is_not_found(store: Repositories) -> None:
    with pytest.raises(NotFound):
        store.jobs.get_job("nope")


def test_idempotency_key_returns_the_same_job(store: Repositories) -> None:
    first, created = store.jobs.create_job(NewJob("echo", {"message": "hi"}, idempotency_key="k-1"))
    again, created_again = store.jobs.create_job(NewJob("echo", {"message": "hi"}, idempotency_key="k-1"))
    assert created and not created_again
    assert again.id == first.id
    assert len(store.jobs.list_jobs()[0]) == 1


@pytest.mark.parametrize("new", [NewJob("echo", {"message": "other"}, "k-1"), NewJob("noop", {"message": "hi"}, "k-1")])
def test_idempotency_key_with_another_request_conflicts(store: Repositories, new: NewJob) -> None:
    store.jobs.create_job(NewJob("echo", {"message": "hi"}, idempotency_key="k-1"))
    with pytest.raises(IdempotencyConflict):
        store.jobs.create_job(new)
    assert len(store.jobs.list_jobs()[0]) == 1


def test_list_jobs_filters_by_state_and_type(store: Repositories) -> None:
    a = submit(store, "echo")
    b = submit(store, "noop")
    c = submit(store, "echo")
    store.jobs.move_job(c, JobState.RUNNING)
    ids = lambda jobs: {j.id for j in jobs[0]}  # noqa: E731
    assert ids(store.jobs.list_jobs()) == {a, b, c}
    assert ids(store.jobs.list_jobs(states=["submitted"])) == {a, b}
    assert ids(store.jobs.list_jobs(states=["running", "succeeded"])) == {c}
    assert ids(store.jobs.list_jobs(type="echo")) == {a, c}
    assert ids(store.jobs.list_jobs(type="echo", states=["submitted"])) == {a}
    assert ids(store.jobs.list_jobs(type="nothing")) == set()


def _all_pages(store: Repositories, limit: int, **filters: Any) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    while True:
        jobs, cursor = store.jobs.list_jobs(limit=limit, cursor=cursor, **filters)
        pages.append([j.id for j in jobs])
        if cursor is None:
            return pages
        assert len(pages) < 50, "pagination does not end"


def test_list_jobs_pages_newest_first_without_duplicates_or_gaps(store: Repositories) -> None:
    created = [submit(store, message=str(i)) for i in range(7)]
    pages = _all_pages(store, 3)
    assert [len(p) for p in pages] == [3, 3, 1]
    flat = [i for p in pages for i in p]
    assert len(flat) == len(set(flat)) == 7
    assert set(flat) == set(created)
    records = [store.jobs.get_job(i) for i in flat]
    keys = [(r.created_at, r.id) for r in records]
    assert keys == sorted(keys, reverse=True)


def test_list_jobs_pages_through_jobs_created_at_the_same_instant(store: Repositories) -> None:
    created = {submit(store, message=str(i)) for i in range(9)}
    store.db.execute_sql("UPDATE ab_jobs SET created_at = 1700000000.5")
    pages = _all_pages(store, 4)
    flat = [i for p in pages for i in p]
    assert len(flat) == len(set(flat)) == 9
    assert set(flat) == created


def test_list_jobs_last_full_page_has_no_cursor(store: Repositories) -> None:
    for i in range(4):
        submit(store, message=str(i))
    jobs, cursor = store.jobs.list_jobs(limit=4)
    assert len(jobs) == 4 and cursor is None


def test_list_jobs_with_a_bad_cursor_is_invalid_input(store: Repositories) -> None:
    with pytest.raises(InvalidInput):
        store.jobs.list_jobs(cursor="!!!not-a-cursor")


def test_move_job_is_compare_and_set(store: Repositories) -> None:
    job_id = submit(store)
    assert not store.jobs.move_job(job_id, JobState.SUCCEEDED)  # submitted cannot succeed directly
    assert not store.jobs.move_job(job_id, JobState.WAITING_HUMAN)
    assert store.jobs.get_job(job_id).state == JobState.SUBMITTED

    assert store.jobs.move_job(job_id, JobState.RUNNING)
    started = store.jobs.get_job(job_id).started_at
    assert started is not None
    assert store.jobs.move_job(job_id, JobState.WAITING_HUMAN)
    assert store.jobs.move_job(job_id, JobState.RUNNING)
    assert store.jobs.get_job(job_id).started_at == started  # the first start is kept

    assert store.jobs.move_job(job_id, JobState.SUCCEEDED, result='{"ok":true}')
    done = store.jobs.get_job(job_id)
    assert done.state == JobState.SUCCEEDED and done.result == {"ok": True}
    assert done.finished_at is not None
    for target in JobState:
        assert not store.jobs.move_job(job_id, target), target
    assert store.jobs.get_job(job_id).state == JobState.SUCCEEDED


def test_move_unknown_job_changes_nothing(store: Repositories) -> None:
    assert not store.jobs.move_job("nope", JobState.RUNNING)


def test_cancel_job_and_cancel_again(store: Repositories) -> None:
    job_id = submit(store)
    cancelled = store.jobs.cancel_job(job_id)
    assert cancelled.state == JobState.CANCELLED
    assert cancelled.error == ErrorInfo("Cancelled", "cancelled")
    assert cancelled.finished_at is not None
    assert store.jobs.cancel_job(job_id).state == JobState.CANCELLED


@pytest.mark.parametrize("final", [JobState.SUCCEEDED, JobState.FAILED])
def test_cancel_of_a_finished_job_is_a_conflict(store: Repositories, final: JobState) -> None:
    job_id = submit(store)
    assert store.jobs.move_job(job_id, JobState.RUNNING)
    assert store.jobs.move_job(job_id, final)
    with pytest.raises(Conflict):
        store.jobs.cancel_job(job_id)
    assert store.jobs.get_job(job_id).state == final


def test_cancel_unknown_job_is_not_found(store: Repositories) -> None:
    with pytest.raises(NotFound):
        store.jobs.cancel_job("nope")


# -- replays ------------------------------------------------------------------------------------


def test_record_replay_inserts_steps_once(store: Repositories) -> None:
    job_id = submit(store)
    steps = [task(job_id, 0), task(job_id, 1)]
    assert store.steps.record_replay(job_id, steps, None)
    assert store.steps.record_replay(job_id, steps, None)
    # a replay that ran twice with another state for an existing step changes nothing
    assert store.steps.record_replay(job_id, [task(job_id, 0, T.SUCCEEDED, result=1)], None)
    journal = store.steps.load_journal(job_id)
    assert sorted(journal) == [0, 1]
    assert all(r.state == T.QUEUED for r in journal.values())
    assert store.jobs.progress(job_id)["total"] == 2
    assert store.jobs.get_job(job_id).state == JobState.RUNNING


def test_record_replay_with_an_outcome_finishes_the_job(store: Repositories) -> None:
    job_id = submit(store)
    assert store.steps.record_replay(job_id, [], JobState.SUCCEEDED, result={"sum": 14})
    job = store.jobs.get_job(job_id)
    assert (job.state, job.result, job.error) == (JobState.SUCCEEDED, {"sum": 14}, None)
    assert job.started_at is not None and job.finished_at is not None
    assert not store.steps.record_replay(job_id, [task(job_id, 0)], None)
    assert store.steps.load_journal(job_id) == {}


def test_record_replay_stores_the_error_of_a_failed_job(store: Repositories) -> None:
    job_id = submit(store)
    assert store.steps.record_replay(job_id, [], JobState.FAILED, error=ErrorInfo("ValueError", "nope"))
    assert store.jobs.get_job(job_id).error == ErrorInfo("ValueError", "nope")


def test_record_replay_for_a_cancelled_job_writes_nothing(store: Repositories) -> None:
    job_id = submit(store)
    store.jobs.cancel_job(job_id)
    assert not store.steps.record_replay(job_id, [task(job_id, 0)], None)
    assert store.steps.load_journal(job_id) == {}
    assert store.jobs.get_job(job_id).state == JobState.CANCELLED


def job_events(store: Repositories, job_id: str) -> list[dict[str, Any]]:
    return [data for _, _, kind, data in store.events.job_events_since(job_id, 0.0) if kind == "job"]


def test_a_replay_of_a_job_no_longer_open_moves_nothing_and_writes_no_steps_or_events(store: Repositories) -> None:
    job_id = submit(store)
    store.jobs.cancel_job(job_id)
    before = store.jobs.get_job(job_id), job_events(store, job_id)
    # neither the one-job record (an outcome, a step, an early wait) nor the batch
    assert not store.steps.record_replay(job_id, [task(job_id, 0)], JobState.SUCCEEDED, result={"x": 1}, early=True)
    assert store.steps.record_replays([Replayed(job_id, [task(job_id, 1)], None)]) == set()
    assert (store.jobs.get_job(job_id), job_events(store, job_id)) == before
    assert store.steps.load_journal(job_id) == {}


def test_a_replay_logs_the_jobs_move_once_per_record(store: Repositories) -> None:
    job_id = submit(store)
    odd = {"message": "100% of %s and %(x)s, 'quoted' \\ \u00e9"}  # passes through SQL text as it is
    assert store.steps.record_replay(job_id, [task(job_id, 0, args=odd)], None)
    assert job_events(store, job_id)[-1] == {"status": "running"}
    assert store.steps.record_replay(
        job_id, [], JobState.FAILED, error=ErrorInfo("ValueError", "50% off", "Traceback: %s")
    )
    job = store.jobs.get_job(job_id)
    assert (job.state, job.error) == (JobState.FAILED, ErrorInfo("ValueError", "50% off", "Traceback: %s"))
    assert job.finished_at is not None and job.started_at is not None
    assert [e["status"] for e in job_events(store, job_id)] == ["submitted", "running", "failed"]
    assert store.steps.load_journal(job_id)[0].state == T.QUEUED
    assert store.steps.task_rows(job_id)[0]["name"] == "echo"


def test_an_early_wait_is_kept_in_the_job_row_by_each_replay(store: Repositories) -> None:
    job_id, _ = running_job(store, steps=2)
    assert store.jobs.job_to_advance(job_id)[1]  # waits for its open steps
    assert store.steps.record_replay(job_id, [], None, early=True)
    assert not store.jobs.job_to_advance(job_id)[1]  # ctx.wait_any: replayed as each step ends
    assert store.steps.record_replay(job_id, [], None)
    assert store.jobs.job_to_advance(job_id)[1]


def test_job_to_replay_reads_the_journal_with_the_job_when_it_is_to_be_replayed(store: Repositories) -> None:
    fresh = submit(store)
    going, (g0, g1) = running_job(store, steps=2)
    done = submit(store)
    assert store.steps.record_replay(done, [task(done, 0, T.SUCCEEDED, result={"v": 1})], JobState.SUCCEEDED)
    store.steps.mark_running([(g0, 1), (g1, 1)], "w1")
    store.steps.record_outcomes([TaskOutcome(g0, 1, T.FAILED, error=ErrorInfo("KeyError", "k", "tb"))])
    assert store.jobs.job_to_replay(fresh) == (store.jobs.get_job(fresh), False, {})
    job, waiting, journal = store.jobs.job_to_replay(going)
    assert (job, waiting, journal) == (store.jobs.get_job(going), True, None)  # waits: not replayed now
    assert store.jobs.job_to_replay(going, resume=True)[2] == store.steps.load_journal(going)
    assert store.jobs.job_to_replay(done)[1:] == (False, None)  # finished: never replayed
    store.steps.record_outcomes([TaskOutcome(g1, 1, T.SUCCEEDED, "r")])
    journal = store.jobs.job_to_replay(going)[2]
    assert journal == store.steps.load_journal(going)
    assert journal is not None and journal[0].error == ErrorInfo("KeyError", "k", "tb") and journal[1].result == "r"
    with pytest.raises(NotFound):
        store.jobs.job_to_replay("missing")
    many = store.jobs.jobs_to_replay([fresh, going, done, "missing", going])
    assert many == {j: store.jobs.job_to_replay(j) for j in (fresh, going, done)}


def test_record_replays_moves_many_jobs_at_once_and_skips_the_one_cancelled_meanwhile(store: Repositories) -> None:
    going, done, failed, cancelled = (submit(store) for _ in range(4))
    store.jobs.cancel_job(cancelled)
    moved = store.steps.record_replays(
        [
            Replayed(going, [task(going, 0)], None),
            Replayed(done, [task(done, 0, T.SUCCEEDED, result=1)], JobState.SUCCEEDED, result={"sum": 1}),
            Replayed(failed, [], JobState.FAILED, error=ErrorInfo("ValueError", "nope")),
            Replayed(cancelled, [task(cancelled, 0)], None),
        ]
    )
    assert moved == {going, done, failed}
    jobs = store.jobs.jobs_to_advance([going, done, failed, cancelled, "missing"])
    assert {j: (rec.state, open_) for j, (rec, open_) in jobs.items()} == {
        going: (JobState.RUNNING, True),
        done: (JobState.SUCCEEDED, False),
        failed: (JobState.FAILED, False),
        cancelled: (JobState.CANCELLED, False),
    }
    assert jobs[done][0].result == {"sum": 1} and jobs[failed][0].error == ErrorInfo("ValueError", "nope")
    assert jobs[done][0].finished_at is not None and jobs[going][0].finished_at is None
    journals = store.steps.load_journals([going, done, cancelled])
    assert [r.state for r in journals[going].values()] == [T.QUEUED]
    assert journals[cancelled] == {}  # compare-and-set: nothing written for a job no longer open
    assert [job_events(store, j)[-1]["status"] for j in (going, done, failed)] == ["running", "succeeded", "failed"]
    assert [e["status"] for e in job_events(store, cancelled)] == ["submitted", "cancelled"]
    # a second delivery of the same replays: finished jobs stay as they are, steps are not doubled
    assert store.steps.record_replays(
        [Replayed(going, [task(going, 0)], None), Replayed(done, [], JobState.FAILED)]
    ) == {going}
    assert store.jobs.get_job(done).state == JobState.SUCCEEDED
    assert len(store.steps.load_journal(going)) == 1


def test_has_open_steps(store: Repositories) -> None:
    job_id, (t0,) = running_job(store)
    assert store.steps.has_open_steps(job_id)
    assert store.steps.mark_running([(t0, 1)], "w1") == {t0}
    store.steps.record_outcomes([TaskOutcome(t0, 1, T.SUCCEEDED, "done")])
    assert not store.steps.has_open_steps(job_id)


# -- the task life cycle ------------------------------------------------------------------------


def test_mark_running_moves_only_queued_calls_of_the_current_attempt(store: Repositories) -> None:
    job_id = submit(store)
    store.steps.record_replay(job_id, [task(job_id, 0), task(job_id, 1), task(job_id, 2, T.PENDING)], None)
    t0, t1, t2 = (step_id(job_id, i) for i in range(3))
    assert store.steps.mark_running([(t0, 1), (t1, 2), (t2, 1), ("missing-0", 1)], "w1") == {t0}
    assert store.steps.mark_running([(t0, 1)], "w2") == set()  # already running
    running = store.steps.tasks_in_state(T.RUNNING)
    assert [(r.id, r.worker) for r in running] == [(t0, "w1")]
    assert running[0].started_at is not None


def test_mark_running_skips_tasks_of_cancelled_jobs(store: Repositories) -> None:
    job_id, (t0, t1) = running_job(store, 2)
    store.jobs.cancel_job(job_id)  # the steps are still queued: the cancel message has not been handled
    assert store.steps.mark_running([(t0, 1), (t1, 1)], "w1") == set()
    assert {r.state for r in store.steps.load_journal(job_id).values()} == {T.QUEUED}


def test_mark_running_of_nothing(store: Repositories) -> None:
    assert store.steps.mark_running([], "w1") == set()


def test_record_outcomes_moves_running_calls_and_returns_their_jobs(store: Repositories) -> None:
    a, (a0, a1) = running_job(store, 2)
    b, (b0,) = running_job(store, 1)
    store.steps.mark_running([(a0, 1), (a1, 1), (b0, 1)], "w1")
    jobs = store.steps.record_outcomes(
        [
            TaskOutcome(a0, 1, T.SUCCEEDED, {"v": [1, 2]}),
            TaskOutcome(a1, 1, T.FAILED, error=ErrorInfo("ValueError", "bad")),
            TaskOutcome(b0, 1, T.SUCCEEDED, None),
        ],
        worker="w1",
    )
    assert jobs == sorted([a, b])
    journal = store.steps.load_journal(a)
    assert (journal[0].state, journal[0].result) == (T.SUCCEEDED, {"v": [1, 2]})
    assert (journal[1].state, journal[1].error) == (T.FAILED, ErrorInfo("ValueError", "bad"))
    assert store.steps.record_outcomes([]) == []


def test_record_outcomes_for_a_call_not_running_is_dropped(store: Repositories) -> None:
    job_id, (t0,) = running_job(store)
    assert store.steps.record_outcomes([TaskOutcome(t0, 1, T.SUCCEEDED, 1)]) == []
    assert step_state(store, job_id, 0).state == T.QUEUED


def test_late_result_from_a_stale_attempt_is_discarded(store: Repositories) -> None:
    job_id, (t0,) = running_job(store)
    assert store.steps.mark_running([(t0, 1)], "w-dead") == {t0}
    # the worker is presumed dead: the reaper re-queues the call with a new attempt
    (row,) = store.steps.requeue([t0], [T.RUNNING], "d-second", new_attempt=True)
    assert (row.attempt, row.state, row.dispatch_id, row.worker) == (2, T.QUEUED, "d-second", None)
    assert store.steps.mark_running([(t0, 1)], "w-dead") == set()
    assert store.steps.mark_running([(t0, 2)], "w-new") == {t0}

    assert store.steps.record_outcomes([TaskOutcome(t0, 1, T.SUCCEEDED, "stale")], worker="w-dead") == []
    (now_running,) = store.steps.tasks_in_state(T.RUNNING)
    assert (now_running.id, now_running.attempt, now_running.worker) == (t0, 2, "w-new")
    assert step_state(store, job_id, 0).result is None

    assert store.steps.record_outcomes([TaskOutcome(t0, 2, T.SUCCEEDED, "fresh")]) == [job_id]
    assert store.steps.record_outcomes([TaskOutcome(t0, 1, T.FAILED, error=ErrorInfo("E", "late"))]) == []
    rec = step_state(store, job_id, 0)
    assert (rec.state, rec.result, rec.error) == (T.SUCCEEDED, "fresh", None)


def test_retrying_then_requeued_with_a_new_attempt(store: Repositories) -> None:
    job_id, (t0,) = running_job(store, retries=2)
    store.steps.mark_running([(t0, 1)], "w1")
    err = ErrorInfo("RuntimeError", "try again")
    assert store.steps.record_outcomes([TaskOutcome(t0, 1, T.RETRYING, error=err, not_before=100.0)]) == [job_id]
    assert store.steps.tasks_in_state(T.RETRYING, due_before=99.0) == []
    (due,) = store.steps.tasks_in_state(T.RETRYING, due_before=100.0)
    assert (due.id, due.attempt, due.retries) == (t0, 1, 2)

    (row,) = store.steps.requeue([t0], [T.RETRYING], "d-retry", new_attempt=True)
    assert (row.attempt, row.state) == (2, T.QUEUED)
    assert store.steps.mark_running([(t0, 2)], "w2") == {t0}


def test_requeue_without_a_new_attempt_keeps_the_attempt(store: Repositories) -> None:
    job_id, (t0, t1) = running_job(store, 2)
    store.steps.mark_running([(t1, 1)], "w1")
    store.steps.record_outcomes([TaskOutcome(t1, 1, T.SUCCEEDED, 1)])
    rows = store.steps.requeue([t0, t1], [T.QUEUED], "d-again", new_attempt=False)
    assert [(r.id, r.attempt, r.dispatch_id) for r in rows] == [(t0, 1, "d-again")]
    assert step_state(store, job_id, 1).state == T.SUCCEEDED  # a finished call is never re-queued
    assert store.steps.requeue([], [T.QUEUED], "d-none", new_attempt=True) == []


def test_tasks_in_state_older_than(store: Repositories) -> None:
    _, (t0,) = running_job(store)
    assert store.steps.tasks_in_state(T.QUEUED, older_than=0.0) == []
    assert [r.id for r in store.steps.tasks_in_state(T.QUEUED, older_than=4e9)] == [t0]


def test_fire_timers(store: Repositories) -> None:
    job_id = submit(store)
    store.steps.record_replay(
        job_id,
        [
            NewStep(job_id, 0, "sleep", "sleep", T.PENDING, not_before=500.0),
            NewStep(job_id, 1, "sleep", "sleep", T.PENDING, not_before=5000.0),
        ],
        None,
    )
    other = submit(store)
    store.steps.record_replay(other, [NewStep(other, 0, "sleep", "sleep", T.PENDING, not_before=900.0)], None)
    assert store.steps.fire_timers(now=400.0) == []
    assert store.steps.fire_timers(now=1000.0) == sorted([job_id, other])
    assert step_state(store, job_id, 0).state == T.SUCCEEDED
    assert step_state(store, job_id, 1).state == T.PENDING
    assert store.steps.fire_timers(now=1000.0) == []


def test_progress_counts_task_steps(store: Repositories) -> None:
    job_id = submit(store)
    store.steps.record_replay(
        job_id,
        [
            task(job_id, 0),
            task(job_id, 1),
            task(job_id, 2),
            task(job_id, 3, T.PENDING),
            NewStep(job_id, 4, "value", "now", T.SUCCEEDED, result=1.0),
            NewStep(job_id, 5, "sleep", "sleep", T.PENDING, not_before=1.0),
        ],
        None,
    )
    t0, t1 = step_id(job_id, 0), step_id(job_id, 1)
    store.steps.mark_running([(t0, 1), (t1, 1)], "w1")
    store.steps.record_outcomes([TaskOutcome(t0, 1, T.SUCCEEDED, 0)])
    assert store.jobs.progress(job_id) == {
        "done": 1,
        "total": 4,
        "pending": 1,
        "queued": 1,
        "running": 1,
        "succeeded": 1,
    }
    assert store.jobs.progress(submit(store)) == {"done": 0, "total": 0}


def test_cancel_open_steps_returns_the_running_ones(store: Repositories) -> None:
    job_id = submit(store)
    store.steps.record_replay(
        job_id, [task(job_id, 0), task(job_id, 1), task(job_id, 2), task(job_id, 3, T.PENDING)], None
    )
    t0, t1, t2 = (step_id(job_id, i) for i in range(3))
    store.steps.mark_running([(t0, 1), (t1, 1)], "w1")
    store.steps.record_outcomes([TaskOutcome(t0, 1, T.SUCCEEDED, 0)])
    running = store.steps.cancel_open_steps(job_id)
    assert [(r.id, r.worker) for r in running] == [(t1, "w1")]
    states = {s: r.state for s, r in store.steps.load_journal(job_id).items()}
    assert states == {0: T.SUCCEEDED, 1: T.RUNNING, 2: T.CANCELLED, 3: T.CANCELLED}
    assert store.steps.mark_running([(t2, 1)], "w2") == set()


def test_sweep_orphans_cancels_open_steps_of_finished_jobs(store: Repositories) -> None:
    done, _ = running_job(store, 2)
    store.steps.record_replay(done, [], JobState.FAILED, error=ErrorInfo("ValueError", "agent failed"))
    alive, _ = running_job(store, 2)
    assert store.steps.sweep_orphans() == 2
    assert {r.state for r in store.steps.load_journal(done).values()} == {T.CANCELLED}
    assert {r.state for r in store.steps.load_journal(alive).values()} == {T.QUEUED}
    assert store.steps.sweep_orphans() == 0


def test_settle_child_step(store: Repositories) -> None:
    parent = submit(store)
    store.steps.record_replay(parent, [NewStep(parent, 0, "agent", "child", T.RUNNING, args={"n": 1})], None)
    assert store.steps.settle_child_step(parent, 0, T.SUCCEEDED, {"sum": 1}, None)
    assert not store.steps.settle_child_step(parent, 0, T.FAILED, None, ErrorInfo("E", "late"))
    rec = step_state(store, parent, 0)
    assert (rec.kind, rec.name, rec.state, rec.result, rec.error) == ("agent", "child", T.SUCCEEDED, {"sum": 1}, None)


def test_load_journal_round_trips_results_and_errors(store: Repositories) -> None:
    job_id = submit(store)
    store.steps.record_replay(
        job_id,
        [
            NewStep(job_id, 0, "value", "now", T.SUCCEEDED, result=1234.5),
            NewStep(job_id, 1, "value", "uuid", T.SUCCEEDED, result="abc"),
            task(job_id, 2),
            task(job_id, 3),
            task(job_id, 4),
            NewStep(job_id, 5, "sleep", "sleep", T.PENDING, not_before=1.0),
        ],
        None,
    )
    t2, t3, t4 = (step_id(job_id, i) for i in (2, 3, 4))
    store.steps.mark_running([(t2, 1), (t3, 1), (t4, 1)], "w1")
    result = {"text": "héllo ✓", "n": [1, 2.5, None, True], "nested": {"k": {}}}
    store.steps.record_outcomes(
        [
            TaskOutcome(t2, 1, T.SUCCEEDED, result),
            TaskOutcome(t3, 1, T.FAILED, error=ErrorInfo("ZeroDivisionError", "division by zero")),
            TaskOutcome(t4, 1, T.SUCCEEDED, None),
        ]
    )
    assert store.steps.load_journal(job_id) == {
        0: StepRecord(0, "value", "now", T.SUCCEEDED, 1234.5),
        1: StepRecord(1, "value", "uuid", T.SUCCEEDED, "abc"),
        2: StepRecord(2, "task", "echo", T.SUCCEEDED, result),
        3: StepRecord(3, "task", "echo", T.FAILED, None, ErrorInfo("ZeroDivisionError", "division by zero")),
        4: StepRecord(4, "task", "echo", T.SUCCEEDED, None),
        5: StepRecord(5, "sleep", "sleep", T.PENDING),
    }


def test_jobs_older_than_and_touch(store: Repositories) -> None:
    job_id = submit(store)
    assert store.jobs.jobs_older_than([JobState.SUBMITTED], before=4e9) == [job_id]
    assert store.jobs.jobs_older_than([JobState.RUNNING], before=4e9) == []
    store.db.execute_sql("UPDATE ab_jobs SET updated_at = 1.0")
    store.jobs.touch_jobs([job_id])
    assert store.jobs.jobs_older_than([JobState.SUBMITTED], before=2.0) == []


def test_unreachable_database_is_unavailable() -> None:
    from agentbus.domain import Unavailable

    store = Repositories.from_url("postgresql://postgres@127.0.0.1:1/agentbus")
    with pytest.raises(Unavailable):
        store.jobs.get_job("any")
    with pytest.raises(Unavailable):
        store.jobs.ping()
    store.close()


def test_a_postgresql_url_can_opt_into_asynchronous_commits(pg_url: str) -> None:
    """The faster durability mode is opt-in through the URL (docs/benchmarks.md); the default stays synchronous."""
    from agentbus.store.db import open_database

    for url, expected in ((pg_url, "on"), (f"{pg_url}?options=-c%20synchronous_commit%3Doff", "off")):
        db = open_database(url)
        try:
            assert db.execute_sql("SHOW synchronous_commit").fetchone() == (expected,)
        finally:
            db.close_all()  # type: ignore[attr-defined]


def test_tracebacks_are_kept_with_their_errors_and_read_back(store: Repositories) -> None:
    tb = 'Traceback (most recent call last):\n  File "t.py", line 1, in echo\nValueError: nope\n'
    job_id, (sid,) = running_job(store)
    assert store.steps.mark_running([(sid, 1)], "w1") == {sid}
    assert store.steps.record_outcomes([TaskOutcome(sid, 1, T.FAILED, error=ErrorInfo("ValueError", "nope", tb))])
    assert store.steps.load_journal(job_id)[0].error.traceback == tb  # type: ignore[union-attr]
    assert store.steps.load_journals([job_id])[job_id][0].error.traceback == tb  # type: ignore[union-attr]
    assert store.steps.task_rows(job_id)[0]["error_traceback"] == tb

    assert store.steps.record_replay(job_id, [], JobState.FAILED, error=ErrorInfo("ValueError", "nope", tb))
    assert store.jobs.get_job(job_id).error.traceback == tb  # type: ignore[union-attr]
    assert store.jobs.jobs_to_advance([job_id])[job_id][0].error.traceback == tb  # type: ignore[union-attr]

    many = [submit(store) for _ in range(2)]  # the batched write (one statement on PostgreSQL)
    batch = [
        Replayed(many[0], [], JobState.FAILED, error=ErrorInfo("E", "m", tb)),
        Replayed(many[1], [], JobState.FAILED, error=ErrorInfo("E", "m")),
    ]
    assert store.steps.record_replays(batch) == set(many)
    assert [store.jobs.get_job(j).error.traceback for j in many] == [tb, None]  # type: ignore[union-attr]


def test_settling_a_child_step_keeps_the_childs_traceback(store: Repositories) -> None:
    parent = submit(store)
    assert store.steps.record_replay(parent, [NewStep(parent, 0, "agent", "child", T.RUNNING)], None)
    assert store.steps.settle_child_step(parent, 0, T.FAILED, None, ErrorInfo("ValueError", "nope", "the trace"))
    assert store.steps.load_journal(parent)[0].error.traceback == "the trace"  # type: ignore[union-attr]
