"""Messages carried by Redis: frozen dataclasses, JSON on the wire (never pickle)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

from agentbus.domain.errors import MessageRejected

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
                )
                for c in d["calls"]
            )
            return cls(str(d["dispatch_id"]), calls)
        except (KeyError, TypeError, ValueError) as exc:
            raise MessageRejected(f"malformed dispatch: {exc}") from None
