"""Which timers passes have work (store/due.py): the orchestrator skips the others, so a wrong
"nothing due" would leave a sleep, a retry, a deadline or a pending call waiting for good."""

from __future__ import annotations

import time
import uuid

from agentbus.domain import TaskState
from agentbus.domain.states import ApprovalStatus
from agentbus.store import Due, DueWork, Repositories
from agentbus.store.models import Approval, Step

NOTHING = Due(False, False, False, False, False)


def step(kind: str, state: TaskState, not_before: float | None = None) -> None:
    now = time.time()
    Step.create(
        id=uuid.uuid4().hex,
        job_id=uuid.uuid4().hex,
        seq=0,
        kind=kind,
        name="x",
        state=state.value,
        not_before=not_before,
        created_at=now,
        updated_at=now,
    )


def approval(status: ApprovalStatus, deadline: float | None) -> None:
    now = time.time()
    Approval.create(
        id=uuid.uuid4().hex,
        job_id=uuid.uuid4().hex,
        seq=0,
        prompt="ok?",
        status=status.value,
        assignees="[]",
        on_timeout="reject",
        deadline=deadline,
        created_at=now,
        updated_at=now,
    )


def test_each_pass_is_due_exactly_when_it_has_work_now(store: Repositories) -> None:
    due = DueWork(store.db)
    now = time.time()
    later, earlier = now + 60, now - 1
    # what is not due yet, or is not the pass's kind or state
    step("task", TaskState.RETRYING, later)
    step("sleep", TaskState.PENDING, later)
    step("signal", TaskState.PENDING, later)
    step("sleep", TaskState.SUCCEEDED, earlier)
    step("task", TaskState.QUEUED, earlier)
    approval(ApprovalStatus.PENDING, later)
    approval(ApprovalStatus.APPROVED, earlier)
    approval(ApprovalStatus.PENDING, None)  # no deadline
    assert due.due(now) == NOTHING
    step("task", TaskState.RETRYING, earlier)
    assert due.due(now) == Due(True, False, False, False, False)
    step("sleep", TaskState.PENDING, earlier)
    assert due.due(now) == Due(True, True, False, False, False)
    approval(ApprovalStatus.PENDING, earlier)
    assert due.due(now) == Due(True, True, True, False, False)
    step("signal", TaskState.PENDING, earlier)
    assert due.due(now) == Due(True, True, True, True, False)
    step("task", TaskState.PENDING)  # a pending call has no time: it waits for a worker or a slot
    assert due.due(now) == Due(True, True, True, True, True)
    assert due.due(later + 1) == Due(True, True, True, True, True)
