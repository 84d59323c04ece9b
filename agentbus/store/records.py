"""What the store returns: plain frozen dataclasses, never peewee rows."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from agentbus.domain.ids import step_id as step_id  # where steps are named; the store re-exports it
from agentbus.domain.jsonsafe import holdable
from agentbus.domain.messages import TaskCall
from agentbus.domain.replay import ErrorInfo
from agentbus.domain.states import JobState, TaskState


@dataclass(frozen=True)
class JobRecord:
    id: str
    type: str
    state: JobState
    input: dict[str, Any]
    result: Any
    error: ErrorInfo | None
    idempotency_key: str | None
    priority: int
    parent_id: str | None
    parent_seq: int | None
    created_at: float
    started_at: float | None
    finished_at: float | None
    updated_at: float
    tenant: str = "default"
    rerun_of: str | None = None
    """The job this one runs again (``POST /jobs/{id}/rerun``)."""
    run_at: float | None = None
    """When a job submitted for later is due (``scheduled`` until then)."""
    schedule_id: str | None = None
    schedule_tick: int | None = None
    """The schedule and tick that made this job."""


@dataclass(frozen=True)
class NewJob:
    type: str
    input: dict[str, Any]
    idempotency_key: str | None = None
    priority: int = 0
    parent_id: str | None = None
    parent_seq: int | None = None
    id: str | None = None
    tenant: str = "default"
    rerun_of: str | None = None
    run_at: float | None = None
    """Not before this time (unix seconds): the job waits as ``scheduled``; a past time runs now."""


@dataclass(frozen=True)
class NewStep:
    """A step the orchestrator records after a replay."""

    job_id: str
    seq: int
    kind: str
    name: str
    state: TaskState
    args: dict[str, Any] | None = None
    result: Any = None
    retries: int = 0
    timeout: float | None = None
    backoff: float = 0.5
    queue: str | None = None
    dispatch_id: str | None = None
    not_before: float | None = None
    priority: int = 0
    concurrency_key: str | None = None
    route_reason: str | None = None

    @property
    def id(self) -> str:
        return step_id(self.job_id, self.seq)


@dataclass(frozen=True)
class StepRow:
    """A task step as the dispatcher and reaper see it."""

    id: str
    job_id: str
    name: str
    state: TaskState
    args: dict[str, Any]
    attempt: int
    retries: int
    timeout: float
    backoff: float
    queue: str | None
    dispatch_id: str | None
    worker: str | None
    started_at: float | None
    priority: int = 0
    concurrency_key: str | None = None
    route_reason: str | None = None

    def call(self, trace: str | None = None) -> TaskCall:
        """The call a worker is sent to run this step's current attempt."""
        return TaskCall(
            self.id, self.job_id, self.name, self.args, self.attempt, self.retries, self.timeout, self.backoff, trace
        )


@dataclass(frozen=True)
class TaskOutcome:
    """What a worker reports for one call: the next state and its payload."""

    task_id: str
    attempt: int
    state: TaskState
    result: Any = None
    error: ErrorInfo | None = None
    not_before: float | None = None


# one encoder for every call: json.dumps with options builds a new one each time, which cost as
# much as encoding a small metadata dict (memory ingest encodes one per item)
_COMPACT = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


def dumps(value: Any) -> str:
    """JSON text for a column. Agent and task code may hand us NaN or a lone surrogate, which
    would make every later read of the row fail: those are encoded the way ``jsonsafe.holdable``
    says (API input holding them was refused with a 422 before it got here)."""
    try:
        text = _COMPACT.encode(value)
    except ValueError:  # NaN or an infinity
        return json.dumps(holdable(value), separators=(",", ":"))
    if "\\ud" in text and _LONE_SURROGATE.search(text):
        return json.dumps(holdable(value), separators=(",", ":"))
    return text


# An escaped high surrogate not followed by a low one, or a low one not preceded by a high one.
_LONE_SURROGATE = re.compile(r"\\ud[89ab][0-9a-f]{2}(?!\\ud[c-f])|(?<!\\ud[89ab][0-9a-f]{2})\\ud[c-f][0-9a-f]{2}")


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@dataclass(frozen=True)
class ApprovalRecord:
    id: str
    job_id: str
    seq: int
    prompt: str
    data: Any
    schema: dict[str, Any] | None
    status: str
    assignees: list[list[str]]
    level: int
    timeout: float | None
    on_timeout: str
    deadline: float | None
    webhook: str | None
    decision: str | None
    input: Any
    comment: str | None
    answered_by: str | None
    answered_at: float | None
    created_at: float
    updated_at: float
    tenant: str = "default"
    answered_key: str | None = None  # the API key that answered (answered_by is free text)

    @property
    def current_assignees(self) -> list[str]:
        return self.assignees[self.level] if self.level < len(self.assignees) else []


@dataclass(frozen=True)
class SignalRecord:
    """A signal sent to a job: pending until a wait takes it (``step``: that wait's place in the journal)."""

    id: int
    job_id: str
    name: str
    payload: Any
    created_at: float
    idempotency_key: str | None = None
    step: int | None = None
    delivered_at: float | None = None
    tenant: str = "default"

    @property
    def status(self) -> str:
        return "pending" if self.step is None else "delivered"


@dataclass(frozen=True)
class WebhookRow:
    id: str
    approval_id: str
    url: str
    event: str
    payload: str
    attempts: int
