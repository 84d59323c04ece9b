"""Job and task states, the only legal transitions between them, and the named sets of
states that the store's compare-and-set statements move from (``WHERE state IN (...)``).

Every state list the store writes into SQL is defined here, once; the store never types a
state name by hand.
"""

from __future__ import annotations

from collections.abc import Iterable
from enum import StrEnum


class JobState(StrEnum):
    SCHEDULED = "scheduled"
    SUBMITTED = "submitted"
    RUNNING = "running"
    WAITING_HUMAN = "waiting_human"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in JOB_TERMINAL


class TaskState(StrEnum):
    PENDING = "pending"
    QUEUED = "queued"
    RUNNING = "running"
    RETRYING = "retrying"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def terminal(self) -> bool:
        return self in TASK_TERMINAL


class ApprovalStatus(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


JOB_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
TASK_TERMINAL = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})

# A job submitted with ``run_at``/``delay`` waits as scheduled until it is due, then is submitted.
JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.SCHEDULED: frozenset({JobState.SUBMITTED, JobState.CANCELLED}),
    JobState.SUBMITTED: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    JobState.RUNNING: frozenset({JobState.WAITING_HUMAN, JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED}),
    JobState.WAITING_HUMAN: frozenset({JobState.RUNNING, JobState.FAILED, JobState.CANCELLED}),
    JobState.SUCCEEDED: frozenset(),
    JobState.FAILED: frozenset(),
    JobState.CANCELLED: frozenset(),
}

# A task that lost its worker (or its Redis message) goes back to queued with a new attempt.
TASK_TRANSITIONS: dict[TaskState, frozenset[TaskState]] = {
    TaskState.PENDING: frozenset({TaskState.QUEUED, TaskState.SUCCEEDED, TaskState.CANCELLED}),
    # queued → pending: a lost queue message re-routed when no worker can take it now
    TaskState.QUEUED: frozenset({TaskState.RUNNING, TaskState.QUEUED, TaskState.PENDING, TaskState.CANCELLED}),
    # running → pending: the call of a lost worker, routed again (its GPU may be gone too)
    TaskState.RUNNING: frozenset(
        {
            TaskState.SUCCEEDED,
            TaskState.FAILED,
            TaskState.CANCELLED,
            TaskState.RETRYING,
            TaskState.QUEUED,
            TaskState.PENDING,
        }
    ),
    # retrying → pending: a retry that must wait for a concurrency slot or a GPU worker
    TaskState.RETRYING: frozenset({TaskState.QUEUED, TaskState.PENDING, TaskState.CANCELLED}),
    TaskState.SUCCEEDED: frozenset(),
    TaskState.FAILED: frozenset(),
    TaskState.CANCELLED: frozenset(),
}


# A person's resume (``POST /jobs/{id}/resume``) reopens a failed job: the one way out of a terminal
# state. Kept apart from the maps above so that no compare-and-set of the orchestrator (``move_job``,
# a replay) can ever bring a finished job or step back: only ``Jobs.resume_failed`` uses these.
JOB_REOPENINGS: dict[JobState, JobState] = {JobState.FAILED: JobState.RUNNING}
"""The job state a resume moves from, and where to."""

TASK_REOPENINGS: dict[TaskState, TaskState] = {
    TaskState.FAILED: TaskState.PENDING,
    TaskState.CANCELLED: TaskState.PENDING,
}
"""A resumed job's task steps that failed for good (or were cancelled when the job failed) go back to
pending with a new attempt; its succeeded steps stay, so the replay does not run them again."""


def can_move_job(old: JobState, new: JobState) -> bool:
    return new in JOB_TRANSITIONS[old]


def can_move_task(old: TaskState, new: TaskState) -> bool:
    return new in TASK_TRANSITIONS[old]


def sources_of_job(new: JobState) -> tuple[JobState, ...]:
    """The states from which a job may move to ``new`` (the WHERE of a compare-and-set)."""
    return tuple(s for s, targets in JOB_TRANSITIONS.items() if new in targets)


def sources_of_task(new: TaskState) -> tuple[TaskState, ...]:
    return tuple(s for s, targets in TASK_TRANSITIONS.items() if new in targets)


# -- the state sets the store's statements select and move from ------------------------------

JOB_OPEN: tuple[JobState, ...] = tuple(s for s in JobState if not s.terminal)
"""A job that may still change: a replay records into it, the per-tenant cap counts it."""

JOB_NOT_DUE: tuple[JobState, ...] = (JobState.SCHEDULED,)
"""A job waiting for its time (``run_at``): never replayed; the due-job sweep submits it by
compare-and-set from these."""

JOB_REPLAYABLE: tuple[JobState, ...] = tuple(s for s in JOB_OPEN if s not in JOB_NOT_DUE)
"""The job a replay records into (compare-and-set from these): open, and due."""

JOB_RESUMABLE: tuple[JobState, ...] = (JobState.WAITING_HUMAN,)
"""The job that goes back to running once its last pending approval is answered or expires."""

JOB_RETRYABLE: tuple[JobState, ...] = tuple(JOB_REOPENINGS)
"""The job a person may resume (compare-and-set from these): its failed steps are tried again."""

JOB_RERUNNABLE: tuple[JobState, ...] = tuple(sorted(JOB_TERMINAL))
"""The job a person may run again as a new, linked job with the same input: one that has finished."""

TASK_RETRIED_ON_RESUME: tuple[TaskState, ...] = tuple(TASK_REOPENINGS)
"""The task steps of a resumed job that go back to pending with a new attempt."""

TASK_OPEN: tuple[TaskState, ...] = tuple(s for s in TaskState if not s.terminal)
"""A step that has not settled: a job with one is not finished."""

TASK_NOT_STARTED: tuple[TaskState, ...] = (TaskState.PENDING, TaskState.QUEUED, TaskState.RETRYING)
"""An open step no worker holds: cancelling it needs no message to a worker."""

TASK_STARTABLE: tuple[TaskState, ...] = sources_of_task(TaskState.RUNNING)
"""The state a worker takes a call from (``mark_running``)."""

TASK_REPORTABLE: tuple[TaskState, ...] = sources_of_task(TaskState.RETRYING)
"""The state a worker's report (or the reaper's timeout) moves a call from (``record_outcomes``)."""

TASK_HOLDING_SLOT: tuple[TaskState, ...] = (TaskState.QUEUED, TaskState.RUNNING)
"""A call that counts against its concurrency key's limit."""


def state_after_replay(outcome: JobState | None, asked: bool) -> JobState:
    """The state a replay leaves its job in: its outcome if it finished, else waiting for
    people when it asked them something, else running."""
    if outcome is not None:
        return outcome
    return JobState.WAITING_HUMAN if asked else JobState.RUNNING


def initial_state(run_at: float | None, now: float) -> JobState:
    """The state a new job starts in: scheduled until a future ``run_at``; submitted (to run now)
    without one or with one already past."""
    return JobState.SCHEDULED if run_at is not None and run_at > now else JobState.SUBMITTED


def resumes(state: JobState, pending_approvals: int) -> bool:
    """Whether a job goes back to running: it waits for people and none of its questions is open
    (the store then moves it by compare-and-set from ``JOB_RESUMABLE``)."""
    return state in JOB_RESUMABLE and pending_approvals == 0


def sql_values(states: Iterable[StrEnum]) -> str:
    """``'a', 'b'``: the states as SQL literals, for an ``IN (...)`` (the values are enum members,
    never input)."""
    return ", ".join(f"'{s.value}'" for s in sorted(states, key=lambda s: s.value))
