"""Streamed output (``ctx.emit``): the records, their checks and the worker's per-call buffer rules.

Outputs are partial results (model tokens, progress) sent to readers of ``GET /jobs/{id}/events``
while a call runs. They are best-effort and bounded; the call's result stays the durable record
(outputs are never written to PostgreSQL). Each call numbers its outputs 0, 1, 2, ... (``seq``);
a reader that sees a gap in a call's numbers lost that many, and is told so.

Lost outputs are counted, never silent: a call that emits faster than its buffer is sent keeps
the newest ``limit`` outputs and counts the ones it dropped (:class:`OutputBuffer`); the count
travels as an :class:`OutputsDropped` record in the same stream.
"""

from __future__ import annotations

import json
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from agentbus.domain.errors import InvalidInput, PayloadTooLarge
from agentbus.domain.jsonsafe import first_problem

MAX_OUTPUT_BYTES = 65_536
"""Default size cap of one ``ctx.emit`` (its JSON text)."""
OUTPUT_BUFFER = 1000
"""Default outputs kept per call in a worker before sending, and per job in Redis for readers."""
OUTPUT_TTL_S = 3600.0
"""Default life of a job's output stream after its last output."""


def check_output(data: Any, max_bytes: int = MAX_OUTPUT_BYTES) -> str:
    """``data`` as JSON text, or ``InvalidInput``/``PayloadTooLarge`` saying why it cannot be emitted."""
    problem = first_problem(data)
    if problem is not None:
        path, why = problem
        where = "/".join(path) or "the value"
        raise InvalidInput(f"ctx.emit: {where} {why}")
    try:
        text = json.dumps(data, separators=(",", ":"), allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"ctx.emit takes JSON data (dict, list, str, number, bool, None): {exc}") from None
    size = len(text.encode())
    if size > max_bytes:
        raise PayloadTooLarge(f"ctx.emit: the data is {size} bytes, over the limit of {max_bytes} per emit")
    return text


@dataclass(frozen=True)
class Output:
    """One ``ctx.emit`` of a call (``task_id``: the task, or the job's own id for an agent)."""

    job_id: str
    task_id: str
    name: str
    attempt: int
    seq: int
    data_json: str
    """The emitted value as JSON text: taken when emitted, so a later change to it is not sent."""
    at: float

    @property
    def data(self) -> Any:
        return json.loads(self.data_json)

    def to_dict(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "name": self.name,
            "attempt": self.attempt,
            "seq": self.seq,
            "data": self.data,
            "at": self.at,
        }


@dataclass(frozen=True)
class OutputsDropped:
    """``count`` outputs of a call that never reached Redis (its buffer was full, or Redis was away)."""

    job_id: str
    task_id: str
    attempt: int
    count: int
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {"task_id": self.task_id, "attempt": self.attempt, "count": self.count, "reason": self.reason}


OutputRecord = Output | OutputsDropped


def record_to_json(rec: OutputRecord) -> str:
    if isinstance(rec, OutputsDropped):
        return json.dumps({"kind": "dropped", **rec.to_dict()}, separators=(",", ":"))
    head = {"kind": "output", "task_id": rec.task_id, "name": rec.name, "attempt": rec.attempt}
    head.update(seq=rec.seq, at=rec.at)
    return json.dumps(head, separators=(",", ":"))[:-1] + ',"data":' + rec.data_json + "}"


def record_from_json(job_id: str, text: str | bytes) -> OutputRecord:
    d = json.loads(text)
    if d.get("kind") == "dropped":
        return OutputsDropped(job_id, str(d["task_id"]), int(d["attempt"]), int(d["count"]), str(d["reason"]))
    name, at, data = str(d.get("name", "")), float(d.get("at", 0.0)), json.dumps(d.get("data"))
    return Output(job_id, str(d["task_id"]), name, int(d["attempt"]), int(d["seq"]), data, at)


CallKey = tuple[str, str, int]
"""(job id, task id, attempt): one call."""


@dataclass
class _Pending:
    outputs: deque[Output] = field(default_factory=deque)
    dropped: int = 0
    reason: str = ""


class OutputBuffer:
    """Outputs waiting to be sent, per call, at most ``limit`` each (not thread-safe: the caller locks).

    A full call drops its oldest output (a reader cares most about the latest tokens) and counts
    it; a send that failed gives its outputs back as dropped. ``take`` hands out everything that
    waits, each call's count of drops first (so a reader hears of a gap before what follows it).
    """

    def __init__(self, limit: int = OUTPUT_BUFFER) -> None:
        self.limit = max(1, limit)
        self._calls: dict[CallKey, _Pending] = {}
        self.dropped_total = 0

    def __len__(self) -> int:
        return sum(len(p.outputs) + (1 if p.dropped else 0) for p in self._calls.values())

    def put(self, out: Output) -> None:
        p = self._calls.setdefault((out.job_id, out.task_id, out.attempt), _Pending())
        if len(p.outputs) >= self.limit:
            p.outputs.popleft()
            self._drop(p, 1, "buffer full: the call emitted faster than its outputs could be sent")
        p.outputs.append(out)

    def lost(self, records: list[OutputRecord], reason: str) -> None:
        """A send of ``records`` failed: count its outputs (and the drops it carried) as dropped."""
        for rec in records:
            p = self._calls.setdefault((rec.job_id, rec.task_id, rec.attempt), _Pending())
            self._drop(p, 1 if isinstance(rec, Output) else rec.count, reason, count_total=isinstance(rec, Output))

    def _drop(self, p: _Pending, n: int, reason: str, count_total: bool = True) -> None:
        p.dropped += n
        p.reason = p.reason or reason
        if count_total:
            self.dropped_total += n

    def take(self) -> list[OutputRecord]:
        out: list[OutputRecord] = []
        for (job_id, task_id, attempt), p in self._calls.items():
            if p.dropped:
                out.append(OutputsDropped(job_id, task_id, attempt, p.dropped, p.reason))
            out.extend(p.outputs)
        self._calls.clear()
        return out
