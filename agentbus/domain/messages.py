"""Messages carried by Redis: frozen dataclasses, JSON on the wire (never pickle)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

from agentbus.domain.errors import MessageRejected
from agentbus.domain.ids import job_of
from agentbus.domain.jsonsafe import holdable
from agentbus.domain.replay import ErrorInfo
from agentbus.domain.states import JOB_REOPENINGS, JobState

EventKind = Literal["job.submitted", "job.advance", "job.cancel"]
EVENT_KINDS: tuple[str, ...] = ("job.submitted", "job.advance", "job.cancel")


@dataclass(frozen=True)
class ControlEvent:
    """An event on the control stream: something happened to these jobs, look at them."""

    kind: EventKind
    job_ids: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "job_ids": list(self.job_ids)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ControlEvent:
        kind, ids = d.get("kind"), d.get("job_ids")
        if kind not in EVENT_KINDS or not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
            raise MessageRejected(f"malformed control event: {d!r:.200}")
        return cls(kind, tuple(ids))


@dataclass(frozen=True)
class JobEnd:
    """A job reached its final state: the notice a long-poll for its result may answer from.

    It holds what the job's record held once that state was committed (the result as the store
    keeps it: ``holdable``), and the job's tenant (a waiter of another tenant reads the record
    instead, and gets its 404). A notice is a hint, the record decides: see ``for_good``.
    """

    job_id: str
    tenant: str
    state: JobState
    result: Any = None
    error: ErrorInfo | None = None

    @property
    def for_good(self) -> bool:
        """Whether no later change can undo this end, so that it answers as a read of the record
        would. A failed job may be resumed (``JOB_REOPENINGS``): its notice may arrive after a read
        that already saw it running again, so it only wakes the waiter, which reads the record."""
        return self.state.terminal and self.state not in JOB_REOPENINGS

    def to_json(self) -> str:
        """Raises ValueError (or TypeError) for a result that JSON cannot hold."""
        d = {
            "job_id": self.job_id,
            "tenant": self.tenant,
            "state": self.state.value,
            "result": holdable(self.result),
            "error": None if self.error is None else self.error.to_dict(),
        }
        return json.dumps(d, separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_json(cls, raw: str | bytes) -> JobEnd:
        try:
            d = json.loads(raw)
        except ValueError as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
            raise MessageRejected(f"malformed job end: {exc!r:.200}") from None
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: Any) -> JobEnd:
        try:
            e = d["error"]
            return cls(
                job_id=_text(d["job_id"]),
                tenant=_text(d["tenant"]),
                state=JobState(d["state"]),
                result=d["result"],
                error=None if e is None else ErrorInfo(_text(e["type"]), _text(e["message"]), _traceback(e)),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageRejected(f"malformed job end: {exc!r:.200}") from None


@dataclass(frozen=True)
class JobNotices:
    """The job notices of one orchestrator batch, in one pub/sub message (``bus/notify.py``).

    ``finished``: jobs that reached a final state, each with its end as committed (``JobEnd``) or
    its id alone (a bare notice: its waiters read the record). ``changed``: jobs that moved on
    without finishing. Every notice is a hint; the record decides.
    """

    finished: tuple[JobEnd | str, ...] = ()
    changed: tuple[str, ...] = ()

    @staticmethod
    def join(finished: Iterable[str], changed: Iterable[str]) -> str:
        """The message from its parts already in JSON (each end's ``to_json``, or an id as a JSON
        string): an end is encoded once, when the sender sizes it, not again here."""
        return '{"finished":[' + ",".join(finished) + '],"changed":[' + ",".join(changed) + "]}"

    @classmethod
    def from_json(cls, raw: str | bytes) -> JobNotices:
        """A malformed end is read as a bare notice of its job, when it names one: its waiters
        still wake, and read the record."""
        try:
            d = json.loads(raw)
            finished, changed = d["finished"], d["changed"]
            if not isinstance(finished, list) or not isinstance(changed, list):
                raise TypeError("finished and changed must be lists")
            ids = tuple(_text(j) for j in changed)
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageRejected(f"malformed job notices: {exc!r:.200}") from None
        ends: list[JobEnd | str] = []
        for f in finished:
            if isinstance(f, str):
                ends.append(f)
                continue
            try:
                ends.append(JobEnd.from_dict(f))
            except MessageRejected:
                job_id = f.get("job_id") if isinstance(f, dict) else None
                if isinstance(job_id, str):
                    ends.append(job_id)
        return cls(tuple(ends), ids)


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"{value!r:.50} is not a string")
    return value


def _traceback(error: dict[str, Any]) -> str | None:
    tb = error.get("traceback")
    return None if tb is None else _text(tb)


@dataclass(frozen=True)
class TaskCall:
    """One task execution that a worker is asked to perform."""

    task_id: str
    job_id: str
    name: str
    args: dict[str, Any]
    attempt: int
    retries: int
    timeout: float
    backoff: float
    trace: str | None = None
    """The dispatching replay's W3C traceparent when tracing is on (observability/tracing.py)."""


@dataclass(frozen=True)
class Dispatch:
    """One queue message: a batch of task calls for the same queue."""

    dispatch_id: str
    calls: tuple[TaskCall, ...]

    def to_dict(self) -> dict[str, Any]:
        return {"dispatch_id": self.dispatch_id, "calls": [asdict(c) for c in self.calls]}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Dispatch:
        try:
            calls = tuple(
                TaskCall(
                    task_id=str(c["task_id"]),
                    job_id=str(c["job_id"]),
                    name=str(c["name"]),
                    args=dict(c["args"]),
                    attempt=int(c["attempt"]),
                    retries=int(c["retries"]),
                    timeout=float(c["timeout"]),
                    backoff=float(c["backoff"]),
                    trace=_traceparent(c.get("trace")),
                )
                for c in d["calls"]
            )
            return cls(str(d["dispatch_id"]), calls)
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageRejected(f"malformed dispatch: {exc}") from None


def _traceparent(value: Any) -> str | None:
    """A short string or nothing: a malformed trace field is dropped, never a reason to refuse a call."""
    return value if isinstance(value, str) and 0 < len(value) <= 64 else None


@dataclass(frozen=True)
class CallInfo:
    """One call a worker holds: running (``started`` set) or waiting there for a free slot."""

    task_id: str
    name: str
    attempt: int
    retries: int
    timeout: float
    started: float | None = None
    backoff: float = 0.0
    """The task's backoff base: the reaper retries a call that overran its timeout after it too."""

    @property
    def job_id(self) -> str:
        return job_of(self.task_id)


def _calls(raw: Any) -> tuple[CallInfo, ...]:
    if not isinstance(raw, list):
        return ()
    out = []
    for c in raw:
        try:
            started = c.get("started")
            out.append(
                CallInfo(
                    str(c["task_id"]),
                    str(c["name"]),
                    int(c["attempt"]),
                    int(c["retries"]),
                    float(c["timeout"]),
                    None if started is None else float(started),
                    float(c.get("backoff", 0.0)),  # a heartbeat of an older worker has none
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError):
            continue
    return tuple(out)


def build_of(task_names: Iterable[str]) -> str:
    """A short name for a set of task names: workers with the same tasks share it (and a queue)."""
    return hashlib.sha256("\n".join(sorted(set(task_names))).encode()).hexdigest()[:12]


def _names(raw: Any) -> tuple[str, ...] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise TypeError("tasks is not a list")
    return tuple(str(n) for n in raw)


@dataclass(frozen=True)
class Heartbeat:
    """What a worker says about itself every ``heartbeat_interval_s`` (the fleet's only source).

    ``calls`` lists every call the worker holds, so the orchestrator can tell a call that is
    being run from one a live worker lost (issue 17.4), and enforce each call's timeout."""

    id: str
    role: str = "worker-cpu"
    queues: tuple[str, ...] = ()
    targets: tuple[str, ...] = ()
    device: dict[str, Any] = field(default_factory=lambda: {"kind": "cpu"})
    host: str = ""
    pid: int = 0
    concurrency: int = 1
    calls: tuple[CallInfo, ...] = ()
    done: int = 0
    failed: int = 0
    draining: bool = False
    rejected: int = 0
    abandoned: int = 0
    """Threads still running calls that timed out or were cancelled (see docs/workers.md)."""
    seen: float = 0.0
    tasks: tuple[str, ...] | None = None
    """The task names this worker's App has; None (a heartbeat from before they were sent): every task."""
    build: str = ""
    """``build_of(tasks)``: the worker also listens on its targets' queues of this build (docs/workers.md)."""

    def has(self, task: str) -> bool:
        return self.tasks is None or task in self.tasks

    @property
    def busy(self) -> int:
        return len(self.calls)

    @property
    def free(self) -> int:
        return max(0, self.concurrency - len(self.calls))

    @property
    def gpu(self) -> bool:
        return self.device.get("kind") == "gpu"

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["queues"], d["targets"] = list(self.queues), list(self.targets)
        d["calls"] = [asdict(c) for c in self.calls]
        d["tasks"] = None if self.tasks is None else list(self.tasks)
        d["busy"], d["free"] = self.busy, self.free  # for readers of GET /workers; ignored on the way in
        return d

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Heartbeat:
        try:
            return cls(
                id=str(d["id"]),
                role=str(d.get("role", "worker-cpu")),
                queues=tuple(str(q) for q in d.get("queues") or ()),
                targets=tuple(str(t) for t in d.get("targets") or ()),
                device=dict(d.get("device") or {"kind": "cpu"}),
                host=str(d.get("host", "")),
                pid=int(d.get("pid", 0)),
                concurrency=int(d.get("concurrency", 1)),
                calls=_calls(d.get("calls")),
                done=int(d.get("done", 0)),
                failed=int(d.get("failed", 0)),
                draining=bool(d.get("draining", False)),
                rejected=int(d.get("rejected", 0)),
                abandoned=int(d.get("abandoned", 0)),
                seen=float(d.get("seen", 0.0)),
                tasks=_names(d.get("tasks")),
                build=str(d.get("build") or ""),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageRejected(f"malformed heartbeat: {exc}") from None

    @classmethod
    def from_json(cls, raw: str | bytes) -> Heartbeat:
        try:
            d = json.loads(raw)
        except ValueError as exc:
            raise MessageRejected(f"malformed heartbeat: {exc}") from None
        if not isinstance(d, dict):
            raise MessageRejected("malformed heartbeat: not an object")
        return cls.from_dict(d)
