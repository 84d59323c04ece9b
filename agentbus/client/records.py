"""What the client returns: frozen records read from the API's JSON.

Each record has typed attributes and ``from_json``; it also reads like the JSON it came
from (``job["id"]``, ``job.get("progress")``, ``job == {...}``), which is what earlier
versions of the client returned, so code written against those keeps working. ``raw``
is that JSON, with any field this version of the client does not know yet.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NamedTuple

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


def _time(value: Any) -> datetime | None:
    return None if value is None else datetime.fromisoformat(str(value))


class _Record(Mapping[str, Any]):
    """Read access to ``raw`` as a mapping; equality is the JSON's."""

    raw: Mapping[str, Any]

    def __getitem__(self, key: str) -> Any:
        return self.raw[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.raw)

    def __len__(self) -> int:
        return len(self.raw)

    def to_json(self) -> dict[str, Any]:
        """The JSON the API sent, as a plain dict (what ``--output json`` prints)."""
        return dict(self.raw)


@dataclass(frozen=True, eq=False)
class JobError(_Record):
    type: str
    message: str
    raw: Mapping[str, Any] = field(repr=False)
    traceback: str | None = field(default=None, repr=False)
    """Where the task's or agent's own code raised (None for errors agentbus decided, and older servers)."""

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> JobError:
        tb = d.get("traceback")
        return cls(
            type=str(d.get("type", "")),
            message=str(d.get("message", "")),
            raw=d,
            traceback=tb if isinstance(tb, str) else None,
        )


def _error(d: Any) -> JobError | None:
    return JobError.from_json(d) if isinstance(d, Mapping) else None


@dataclass(frozen=True, eq=False)
class Task(_Record):
    """One task of a job: where it went and why."""

    id: str
    seq: int
    name: str
    state: str
    attempt: int
    queue: str | None
    route_reason: str | None
    worker: str | None
    error_type: str | None
    error_message: str | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Task:
        return cls(
            id=d["id"],
            seq=int(d["seq"]),
            name=d["name"],
            state=d["state"],
            attempt=int(d.get("attempt") or 0),
            queue=d.get("queue"),
            route_reason=d.get("route_reason"),
            worker=d.get("worker"),
            error_type=d.get("error_type"),
            error_message=d.get("error_message"),
            raw=d,
        )


@dataclass(frozen=True, eq=False)
class Job(_Record):
    id: str
    type: str
    status: str
    input: Any
    priority: int
    idempotency_key: str | None
    parent_id: str | None
    rerun_of: str | None  # the job this one runs again (``Client.rerun``)
    run_at: datetime | None  # a job for later (``submit(run_at=...)``): when it is due
    schedule_id: str | None  # the schedule whose tick made it
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime | None
    error: JobError | None
    progress: Mapping[str, int] | None  # only from ``Client.job``
    tasks: tuple[Task, ...]  # only from ``Client.job``: the first 100 (``Client.tasks`` pages through all)
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Job:
        return cls(
            id=d["id"],
            type=d["type"],
            status=d["status"],
            input=d.get("input"),
            priority=int(d.get("priority") or 0),
            idempotency_key=d.get("idempotency_key"),
            parent_id=d.get("parent_id"),
            rerun_of=d.get("rerun_of"),
            run_at=_time(d.get("run_at")),
            schedule_id=d.get("schedule_id"),
            created_at=_time(d.get("created_at")),
            started_at=_time(d.get("started_at")),
            finished_at=_time(d.get("finished_at")),
            updated_at=_time(d.get("updated_at")),
            error=_error(d.get("error")),
            progress=d.get("progress"),
            tasks=tuple(Task.from_json(t) for t in d.get("tasks") or ()),
            raw=d,
        )


@dataclass(frozen=True, eq=False)
class JobResult(_Record):
    """``GET /jobs/{id}/results``: the result or the error once the job has finished."""

    id: str
    status: str
    result: Any
    error: JobError | None
    raw: Mapping[str, Any] = field(repr=False)

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> JobResult:
        return cls(id=d["id"], status=d["status"], result=d.get("result"), error=_error(d.get("error")), raw=d)


@dataclass(frozen=True, eq=False)
class JobPage(_Record):
    jobs: tuple[Job, ...]
    next_cursor: str | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> JobPage:
        return cls(jobs=tuple(Job.from_json(j) for j in d["jobs"]), next_cursor=d.get("next_cursor"), raw=d)


@dataclass(frozen=True, eq=False)
class Schedule(_Record):
    """A schedule as the API shows it (``Client.create_schedule``)."""

    id: str
    name: str
    agent: str
    input: Any
    cron: str
    timezone: str
    catch_up: str
    paused: bool
    origin: str  # "api", or "app" (``@app.agent(schedule=...)``)
    next_run_at: datetime | None  # None while paused
    upcoming: tuple[datetime, ...]
    last_run_at: datetime | None
    last_job_id: str | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Schedule:
        return cls(
            id=d["id"],
            name=d["name"],
            agent=d["agent"],
            input=d.get("input"),
            cron=d["cron"],
            timezone=d["timezone"],
            catch_up=d.get("catch_up", "latest"),
            paused=bool(d.get("paused")),
            origin=d.get("origin", "api"),
            next_run_at=_time(d.get("next_run_at")),
            upcoming=tuple(t for t in (_time(u) for u in d.get("upcoming") or ()) if t is not None),
            last_run_at=_time(d.get("last_run_at")),
            last_job_id=d.get("last_job_id"),
            raw=d,
        )


@dataclass(frozen=True, eq=False)
class TaskPage(_Record):
    tasks: tuple[Task, ...]
    next_after: int | None  # pass it as ``after`` for the next page
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> TaskPage:
        return cls(tasks=tuple(Task.from_json(t) for t in d["tasks"]), next_after=d.get("next_after"), raw=d)


@dataclass(frozen=True, eq=False)
class Signal(_Record):
    """A signal sent to a job: ``pending`` until a ``ctx.wait_for`` takes it (``step``: that wait)."""

    id: int
    job_id: str
    name: str
    payload: Any
    status: str
    step: int | None
    idempotency_key: str | None
    created_at: datetime | None
    delivered_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Signal:
        return cls(
            id=int(d["id"]),
            job_id=d["job_id"],
            name=d["name"],
            payload=d.get("payload"),
            status=d["status"],
            step=d.get("step"),
            idempotency_key=d.get("idempotency_key"),
            created_at=_time(d.get("created_at")),
            delivered_at=_time(d.get("delivered_at")),
            raw=d,
        )


@dataclass(frozen=True, eq=False)
class Approval(_Record):
    """A question an agent put to people (``ctx.ask_human``), and its answer once given."""

    id: str
    job_id: str
    status: str
    prompt: str
    data: Any
    schema: Mapping[str, Any] | None  # what ``input`` must look like to approve, if the agent said
    assignees: tuple[str, ...]  # who may answer now (the current escalation level)
    level: int
    deadline: datetime | None
    decision: str | None
    input: Any
    comment: str | None
    answered_by: str | None
    answered_at: datetime | None
    created_at: datetime | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Approval:
        return cls(
            id=d["id"],
            job_id=d["job_id"],
            status=d["status"],
            prompt=d.get("prompt", ""),
            data=d.get("data"),
            schema=d.get("schema"),
            assignees=tuple(d.get("assignees") or ()),
            level=int(d.get("level") or 0),
            deadline=_time(d.get("deadline")),
            decision=d.get("decision"),
            input=d.get("input"),
            comment=d.get("comment"),
            answered_by=d.get("answered_by"),
            answered_at=_time(d.get("answered_at")),
            created_at=_time(d.get("created_at")),
            raw=d,
        )


@dataclass(frozen=True, eq=False)
class ApprovalPage(_Record):
    approvals: tuple[Approval, ...]
    next_cursor: str | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> ApprovalPage:
        items = tuple(Approval.from_json(a) for a in d["approvals"])
        return cls(approvals=items, next_cursor=d.get("next_cursor"), raw=d)


@dataclass(frozen=True, eq=False)
class Worker(_Record):
    """A worker as its heartbeat describes it (``raw`` has every field it sends)."""

    id: str
    status: str  # live, draining or lost
    role: str | None
    device: Mapping[str, Any] | None
    targets: tuple[str, ...]
    current: Mapping[str, Any] | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Worker:
        return cls(
            id=str(d.get("id")),
            status=d["status"],
            role=d.get("role"),
            device=d.get("device"),
            targets=tuple(d.get("targets") or ()),
            current=d.get("current"),
            raw=d,
        )


@dataclass(frozen=True, eq=False)
class JobType(_Record):
    name: str
    kind: str  # agent or task
    input_schema: Mapping[str, Any]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> JobType:
        return cls(name=d["name"], kind=d["kind"], input_schema=d.get("input_schema") or {}, raw=d)


@dataclass(frozen=True, eq=False)
class Stored(_Record):
    namespace: str
    ids: tuple[str, ...]
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Stored:
        return cls(namespace=d["namespace"], ids=tuple(d["ids"]), raw=d)


@dataclass(frozen=True, eq=False)
class MemoryHit(_Record):
    id: str
    text: str | None
    metadata: Mapping[str, Any]
    score: float
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MemoryHit:
        return cls(id=d["id"], text=d.get("text"), metadata=d.get("metadata") or {}, score=float(d["score"]), raw=d)


@dataclass(frozen=True, eq=False)
class MemoryItem(_Record):
    id: str
    text: str | None
    metadata: Mapping[str, Any]
    expires_at: float | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> MemoryItem:
        return cls(
            id=d["id"], text=d.get("text"), metadata=d.get("metadata") or {}, expires_at=d.get("expires_at"), raw=d
        )


@dataclass(frozen=True, eq=False)
class Namespace(_Record):
    name: str
    dim: int | None
    count: int  # the JSON's "items" (``items`` is the mapping method)
    embedder: str | None
    raw: Mapping[str, Any] = field(repr=False)

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Namespace:
        return cls(name=d["name"], dim=d.get("dim"), count=int(d.get("items") or 0), embedder=d.get("embedder"), raw=d)


class Event(NamedTuple):
    """One server-sent event of ``GET /jobs/{id}/events``: ``event`` is job, task, approval or end, or
    ``task.output`` (a ``ctx.emit``: task_id, name, attempt, seq, data) and ``task.output.dropped``
    (``count`` outputs the reader missed, and why)."""

    id: str
    event: str
    data: dict[str, Any]
