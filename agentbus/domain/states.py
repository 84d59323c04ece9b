"""Job and task states and the only legal transitions between them."""

from __future__ import annotations

from enum import StrEnum

from agentbus.domain.errors import IllegalTransition


class JobState(StrEnum):
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


JOB_TERMINAL = frozenset({JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED})
TASK_TERMINAL = frozenset({TaskState.SUCCEEDED, TaskState.FAILED, TaskState.CANCELLED})

JOB_TRANSITIONS: dict[JobState, frozenset[JobState]] = {
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


def can_move_job(old: JobState, new: JobState) -> bool:
    return new in JOB_TRANSITIONS[old]


def can_move_task(old: TaskState, new: TaskState) -> bool:
    return new in TASK_TRANSITIONS[old]


def check_job_transition(old: JobState, new: JobState) -> None:
    if not can_move_job(old, new):
        raise IllegalTransition(f"job cannot go from {old} to {new}")


def check_task_transition(old: TaskState, new: TaskState) -> None:
    if not can_move_task(old, new):
        raise IllegalTransition(f"task cannot go from {old} to {new}")


def sources_of_job(new: JobState) -> tuple[JobState, ...]:
    """The states from which a job may move to ``new`` (the WHERE of a compare-and-set)."""
    return tuple(s for s, targets in JOB_TRANSITIONS.items() if new in targets)


def sources_of_task(new: TaskState) -> tuple[TaskState, ...]:
    return tuple(s for s, targets in TASK_TRANSITIONS.items() if new in targets)
