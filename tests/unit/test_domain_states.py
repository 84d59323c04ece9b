"""The job and task state machines: the only legal transitions (ARCHITECTURE.md §2)."""

from __future__ import annotations

import itertools

import pytest

from agentbus.domain import JobState, TaskState
from agentbus.domain.states import (
    JOB_OPEN,
    JOB_REOPENINGS,
    JOB_RERUNNABLE,
    JOB_RESUMABLE,
    JOB_RETRYABLE,
    JOB_TERMINAL,
    TASK_HOLDING_SLOT,
    TASK_NOT_STARTED,
    TASK_OPEN,
    TASK_REOPENINGS,
    TASK_REPORTABLE,
    TASK_RETRIED_ON_RESUME,
    TASK_STARTABLE,
    can_move_job,
    can_move_task,
    resumes,
    sources_of_job,
    sources_of_task,
    sql_values,
    state_after_replay,
)

J = JobState
T = TaskState

JOB_LEGAL = {
    (J.SUBMITTED, J.RUNNING),
    (J.RUNNING, J.WAITING_HUMAN),
    (J.WAITING_HUMAN, J.RUNNING),
    (J.RUNNING, J.SUCCEEDED),
    (J.RUNNING, J.FAILED),
    (J.RUNNING, J.CANCELLED),
    (J.WAITING_HUMAN, J.FAILED),
    (J.WAITING_HUMAN, J.CANCELLED),
    # a job whose type is unknown fails, and one may be cancelled, before it ever runs
    (J.SUBMITTED, J.FAILED),
    (J.SUBMITTED, J.CANCELLED),
    # a job submitted for later waits as scheduled until it is due, or is cancelled before
    (J.SCHEDULED, J.SUBMITTED),
    (J.SCHEDULED, J.CANCELLED),
}

TASK_LEGAL = {
    (T.PENDING, T.QUEUED),
    (T.QUEUED, T.RUNNING),
    (T.RUNNING, T.SUCCEEDED),
    (T.RUNNING, T.FAILED),
    (T.RUNNING, T.CANCELLED),
    (T.RUNNING, T.RETRYING),
    (T.RETRYING, T.QUEUED),
    # cancellation reaches tasks that have not run yet
    (T.PENDING, T.CANCELLED),
    (T.QUEUED, T.CANCELLED),
    (T.RETRYING, T.CANCELLED),
    # a timer (pending) fires straight to succeeded
    (T.PENDING, T.SUCCEEDED),
    # a lost message or a lost worker: back to queued with a new dispatch
    (T.QUEUED, T.QUEUED),
    (T.RUNNING, T.QUEUED),
    # routed again and nothing can take it now (no GPU worker, no concurrency slot): wait as pending
    (T.QUEUED, T.PENDING),
    (T.RUNNING, T.PENDING),
    (T.RETRYING, T.PENDING),
}


@pytest.mark.parametrize(("old", "new"), sorted(JOB_LEGAL))
def test_legal_job_transitions(old: JobState, new: JobState) -> None:
    assert can_move_job(old, new)
    assert old in sources_of_job(new)


@pytest.mark.parametrize(("old", "new"), sorted(set(itertools.product(JobState, JobState)) - JOB_LEGAL))
def test_illegal_job_transitions(old: JobState, new: JobState) -> None:
    assert not can_move_job(old, new)
    assert old not in sources_of_job(new)


@pytest.mark.parametrize(("old", "new"), sorted(TASK_LEGAL))
def test_legal_task_transitions(old: TaskState, new: TaskState) -> None:
    assert can_move_task(old, new)
    assert old in sources_of_task(new)


@pytest.mark.parametrize(("old", "new"), sorted(set(itertools.product(TaskState, TaskState)) - TASK_LEGAL))
def test_illegal_task_transitions(old: TaskState, new: TaskState) -> None:
    assert not can_move_task(old, new)
    assert old not in sources_of_task(new)


def test_documented_happy_paths_are_legal() -> None:
    for path in (
        [J.SUBMITTED, J.RUNNING, J.SUCCEEDED],
        [J.SUBMITTED, J.RUNNING, J.WAITING_HUMAN, J.RUNNING, J.WAITING_HUMAN, J.RUNNING, J.FAILED],
        [J.SUBMITTED, J.RUNNING, J.WAITING_HUMAN, J.CANCELLED],
    ):
        for old, new in itertools.pairwise(path):
            assert can_move_job(old, new)
    for tpath in (
        [T.PENDING, T.QUEUED, T.RUNNING, T.SUCCEEDED],
        [T.PENDING, T.QUEUED, T.RUNNING, T.RETRYING, T.QUEUED, T.RUNNING, T.FAILED],
    ):
        for told, tnew in itertools.pairwise(tpath):
            assert can_move_task(told, tnew)


def test_terminal_states_lead_nowhere() -> None:
    assert {s for s in JobState if s.terminal} == {J.SUCCEEDED, J.FAILED, J.CANCELLED}
    assert {s for s in TaskState if s.terminal} == {T.SUCCEEDED, T.FAILED, T.CANCELLED}
    for js in (s for s in JobState if s.terminal):
        assert not any(can_move_job(js, n) for n in JobState)
    for ts in (s for s in TaskState if s.terminal):
        assert not any(can_move_task(ts, n) for n in TaskState)


def test_only_a_person_reopens_a_failed_job_and_its_failed_steps() -> None:
    # resume: failed → running, the failed (and cancelled-with-it) steps → pending; kept apart from
    # the orchestrator's transitions, so no compare-and-set of a replay can bring a finished job back
    assert JOB_REOPENINGS == {J.FAILED: J.RUNNING}
    assert JOB_RETRYABLE == (J.FAILED,)
    assert TASK_REOPENINGS == {T.FAILED: T.PENDING, T.CANCELLED: T.PENDING}
    assert set(TASK_RETRIED_ON_RESUME) == {T.FAILED, T.CANCELLED}
    assert J.FAILED not in sources_of_job(J.RUNNING)
    assert T.SUCCEEDED not in TASK_RETRIED_ON_RESUME  # the journal's successes are kept, never run again


def test_a_rerun_repeats_only_a_finished_job() -> None:
    assert set(JOB_RERUNNABLE) == set(JOB_TERMINAL) == {J.SUCCEEDED, J.FAILED, J.CANCELLED}
    assert not set(JOB_RERUNNABLE) & set(JOB_OPEN)


def test_a_job_never_returns_to_submitted_and_a_task_returns_to_pending_only_to_be_routed_again() -> None:
    assert sources_of_job(J.SUBMITTED) == (J.SCHEDULED,)  # only a job that waited for its time
    assert set(sources_of_task(T.PENDING)) == {T.QUEUED, T.RUNNING, T.RETRYING}


def test_states_are_their_wire_strings() -> None:
    assert J.WAITING_HUMAN == "waiting_human"
    assert J("cancelled") is J.CANCELLED
    assert T("retrying") is T.RETRYING
    with pytest.raises(ValueError):
        J("done")


# -- the state sets the store's statements move from (one definition, no PostgreSQL needed) --


def test_open_states_are_exactly_the_non_terminal_ones() -> None:
    assert set(JOB_OPEN) == set(JobState) - JOB_TERMINAL == {J.SCHEDULED, J.SUBMITTED, J.RUNNING, J.WAITING_HUMAN}
    assert set(TASK_OPEN) == {T.PENDING, T.QUEUED, T.RUNNING, T.RETRYING}


def test_a_worker_starts_only_a_queued_call_and_reports_only_a_running_one() -> None:
    assert TASK_STARTABLE == (T.QUEUED,)
    assert TASK_REPORTABLE == (T.RUNNING,)
    for outcome in (T.SUCCEEDED, T.FAILED, T.CANCELLED, T.RETRYING):
        assert set(sources_of_task(outcome)) >= set(TASK_REPORTABLE)


def test_cancelling_a_job_cancels_at_once_only_the_steps_no_worker_holds() -> None:
    assert set(TASK_NOT_STARTED) == set(TASK_OPEN) - {T.RUNNING}
    assert all(can_move_task(s, T.CANCELLED) for s in TASK_NOT_STARTED)


def test_a_concurrency_slot_is_held_from_queued_until_the_call_settles() -> None:
    assert set(TASK_HOLDING_SLOT) == {T.QUEUED, T.RUNNING}


def test_a_replay_leaves_its_job_finished_waiting_for_people_or_running() -> None:
    assert state_after_replay(J.SUCCEEDED, asked=False) is J.SUCCEEDED
    assert state_after_replay(J.FAILED, asked=True) is J.FAILED
    assert state_after_replay(None, asked=True) is J.WAITING_HUMAN
    assert state_after_replay(None, asked=False) is J.RUNNING


def test_a_job_resumes_only_when_it_waits_for_people_and_no_question_is_open() -> None:
    assert resumes(J.WAITING_HUMAN, 0)
    assert not resumes(J.WAITING_HUMAN, 1)
    for state in set(JobState) - {J.WAITING_HUMAN}:
        assert not resumes(state, 0)
    assert all(can_move_job(s, J.RUNNING) for s in JOB_RESUMABLE)


def test_state_sets_become_sql_literals_of_their_wire_strings() -> None:
    assert sql_values(TASK_OPEN) == "'pending', 'queued', 'retrying', 'running'"
    assert sql_values(JOB_TERMINAL) == "'cancelled', 'failed', 'succeeded'"


def test_a_job_with_a_future_run_at_starts_scheduled_and_a_past_one_runs_now() -> None:
    from agentbus.domain.states import initial_state

    assert initial_state(None, 100.0) == JobState.SUBMITTED
    assert initial_state(100.0, 100.0) == JobState.SUBMITTED
    assert initial_state(50.0, 100.0) == JobState.SUBMITTED
    assert initial_state(100.5, 100.0) == JobState.SCHEDULED


def test_a_scheduled_job_is_only_submitted_or_cancelled_and_never_replayed() -> None:
    from agentbus.domain.states import JOB_NOT_DUE, JOB_OPEN, JOB_REPLAYABLE, can_move_job, sources_of_job

    assert can_move_job(JobState.SCHEDULED, JobState.SUBMITTED)
    assert can_move_job(JobState.SCHEDULED, JobState.CANCELLED)
    assert not can_move_job(JobState.SCHEDULED, JobState.RUNNING)
    assert JobState.SCHEDULED in sources_of_job(JobState.CANCELLED)
    assert JobState.SCHEDULED in JOB_OPEN  # counted under the tenant's cap
    assert JobState.SCHEDULED not in JOB_REPLAYABLE
    assert JOB_NOT_DUE == (JobState.SCHEDULED,)
