"""The job and task state machines: the only legal transitions (ARCHITECTURE.md §2)."""

from __future__ import annotations

import itertools

import pytest

from agentbus.domain import IllegalTransition, JobState, TaskState
from agentbus.domain.states import (
    can_move_job,
    can_move_task,
    check_job_transition,
    check_task_transition,
    sources_of_job,
    sources_of_task,
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
    check_job_transition(old, new)
    assert old in sources_of_job(new)


@pytest.mark.parametrize(("old", "new"), sorted(set(itertools.product(JobState, JobState)) - JOB_LEGAL))
def test_illegal_job_transitions(old: JobState, new: JobState) -> None:
    assert not can_move_job(old, new)
    with pytest.raises(IllegalTransition):
        check_job_transition(old, new)
    assert old not in sources_of_job(new)


@pytest.mark.parametrize(("old", "new"), sorted(TASK_LEGAL))
def test_legal_task_transitions(old: TaskState, new: TaskState) -> None:
    assert can_move_task(old, new)
    check_task_transition(old, new)
    assert old in sources_of_task(new)


@pytest.mark.parametrize(("old", "new"), sorted(set(itertools.product(TaskState, TaskState)) - TASK_LEGAL))
def test_illegal_task_transitions(old: TaskState, new: TaskState) -> None:
    assert not can_move_task(old, new)
    with pytest.raises(IllegalTransition):
        check_task_transition(old, new)


def test_documented_happy_paths_are_legal() -> None:
    for path in (
        [J.SUBMITTED, J.RUNNING, J.SUCCEEDED],
        [J.SUBMITTED, J.RUNNING, J.WAITING_HUMAN, J.RUNNING, J.WAITING_HUMAN, J.RUNNING, J.FAILED],
        [J.SUBMITTED, J.RUNNING, J.WAITING_HUMAN, J.CANCELLED],
    ):
        for old, new in itertools.pairwise(path):
            check_job_transition(old, new)
    for tpath in (
        [T.PENDING, T.QUEUED, T.RUNNING, T.SUCCEEDED],
        [T.PENDING, T.QUEUED, T.RUNNING, T.RETRYING, T.QUEUED, T.RUNNING, T.FAILED],
    ):
        for told, tnew in itertools.pairwise(tpath):
            check_task_transition(told, tnew)


def test_terminal_states_lead_nowhere() -> None:
    assert {s for s in JobState if s.terminal} == {J.SUCCEEDED, J.FAILED, J.CANCELLED}
    assert {s for s in TaskState if s.terminal} == {T.SUCCEEDED, T.FAILED, T.CANCELLED}
    for js in (s for s in JobState if s.terminal):
        assert not any(can_move_job(js, n) for n in JobState)
    for ts in (s for s in TaskState if s.terminal):
        assert not any(can_move_task(ts, n) for n in TaskState)


def test_a_job_never_returns_to_submitted_and_a_task_returns_to_pending_only_to_be_routed_again() -> None:
    assert sources_of_job(J.SUBMITTED) == ()
    assert set(sources_of_task(T.PENDING)) == {T.QUEUED, T.RUNNING, T.RETRYING}


def test_states_are_their_wire_strings() -> None:
    assert J.WAITING_HUMAN == "waiting_human"
    assert J("cancelled") is J.CANCELLED
    assert T("retrying") is T.RETRYING
    with pytest.raises(ValueError):
        J("done")
