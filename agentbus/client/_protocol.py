"""The client without I/O: each API call as a request to send and a parser of its answer.

``Client`` and ``AsyncClient`` differ only in how they send (``httpx.Client`` or
``httpx.AsyncClient``) and wait; what to send, how to read the answer, which error an
error response stands for, when to retry and how to read server-sent events live here, once.
"""

from __future__ import annotations

import email.utils
import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from agentbus.client import records as r
from agentbus.domain.errors import AgentbusError, RateLimited, Unavailable, ValidationFailed, error_class

T = TypeVar("T")

RETRY_STATUSES = frozenset({429, 503})


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer (``accept``: the statuses that are not errors)."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    timeout: float | None = None  # None: the client's own
    accept: tuple[int, ...] = (200, 201)
    content: bytes | None = None  # a JSON body sent as is (``json`` cannot send a JSON null)
    headers: Mapping[str, str] | None = None


def _seg(value: str) -> str:
    """An id as one path segment (an id with a ``/`` must not reach another route)."""
    return quote(value, safe="")


def _body(resp: httpx.Response) -> Any:
    return resp.json()


def _params(**values: Any) -> dict[str, Any]:
    return {k: v for k, v in values.items() if v is not None}


# -- jobs --------------------------------------------------------------------------------------


def submit(
    type: str,
    input: Any,
    idempotency_key: str | None,
    priority: int,
    run_at: datetime | float | str | None = None,
    delay: float | None = None,
) -> Call[r.Job]:
    body: dict[str, Any] = {"type": type, "input": {} if input is None else input, "priority": priority}
    if idempotency_key:
        body["idempotency_key"] = idempotency_key
    if run_at is not None:  # a naive datetime goes without an offset: the API refuses it (422)
        body["run_at"] = run_at.isoformat() if isinstance(run_at, datetime) else run_at
    if delay is not None:
        body["delay"] = delay
    return Call("POST", "/jobs", lambda resp: r.Job.from_json(resp.json()), json=body)


def job(job_id: str) -> Call[r.Job]:
    return Call("GET", f"/jobs/{_seg(job_id)}", lambda resp: r.Job.from_json(resp.json()))


def jobs(status: str | None, type: str | None, limit: int, cursor: str | None) -> Call[r.JobPage]:
    params = _params(status=status or None, type=type, limit=limit, cursor=cursor)
    return Call("GET", "/jobs", lambda resp: r.JobPage.from_json(resp.json()), params=params)


def tasks(job_id: str, after: int, limit: int) -> Call[r.TaskPage]:
    params = {"after": after, "limit": limit}
    return Call("GET", f"/jobs/{_seg(job_id)}/tasks", lambda resp: r.TaskPage.from_json(resp.json()), params=params)


def results(job_id: str, wait: float) -> Call[tuple[bool, r.JobResult]]:
    """202 while the job runs; ``wait`` long-polls that many seconds (the request outlives it)."""

    def parse(resp: httpx.Response) -> tuple[bool, r.JobResult]:
        return resp.status_code == 200, r.JobResult.from_json(resp.json())

    return Call(
        "GET",
        f"/jobs/{_seg(job_id)}/results",
        parse,
        params={"wait": wait} if wait else None,
        timeout=wait + 10 if wait else None,
        accept=(200, 202),
    )


def cancel(job_id: str) -> Call[r.Job]:
    return Call("POST", f"/jobs/{_seg(job_id)}/cancel", lambda resp: r.Job.from_json(resp.json()))


def rerun(job_id: str) -> Call[r.Job]:
    """A new job with a finished job's type, input and priority (``rerun_of`` names the first)."""
    return Call("POST", f"/jobs/{_seg(job_id)}/rerun", lambda resp: r.Job.from_json(resp.json()))


def resume(job_id: str) -> Call[r.Job]:
    """A failed job runs on: its failed steps get a new attempt, the ones that succeeded are kept."""
    return Call("POST", f"/jobs/{_seg(job_id)}/resume", lambda resp: r.Job.from_json(resp.json()))


def signal(job_id: str, name: str, data: Any, idempotency_key: str | None) -> Call[r.Signal]:
    """A signal for the job's ``ctx.wait_for(name)``: 202 sent, 200 the one sent before with this key."""
    headers = {"Content-Type": "application/json"}
    if idempotency_key:
        headers["Idempotency-Key"] = idempotency_key
    return Call(
        "POST",
        f"/jobs/{_seg(job_id)}/signals/{_seg(name)}",
        lambda resp: r.Signal.from_json(resp.json()),
        accept=(200, 202),
        content=json.dumps(data).encode(),
        headers=headers,
    )


def signals(job_id: str) -> Call[list[r.Signal]]:
    return Call(
        "GET", f"/jobs/{_seg(job_id)}/signals", lambda resp: [r.Signal.from_json(x) for x in resp.json()["signals"]]
    )


def job_types() -> Call[list[r.JobType]]:
    return Call("GET", "/job-types", lambda resp: [r.JobType.from_json(t) for t in resp.json()["job_types"]])


def workers() -> Call[list[r.Worker]]:
    return Call("GET", "/workers", lambda resp: [r.Worker.from_json(w) for w in resp.json()["workers"]])


def status() -> Call[dict[str, Any]]:
    return Call("GET", "/status", lambda resp: dict(resp.json()))


def events_path(job_id: str) -> str:
    return f"/jobs/{_seg(job_id)}/events"


def events_headers(last_event_id: str | None) -> dict[str, str]:
    return {"Last-Event-ID": last_event_id} if last_event_id else {}


# -- schedules ---------------------------------------------------------------------------------


def _schedule(resp: httpx.Response) -> r.Schedule:
    return r.Schedule.from_json(resp.json())


def create_schedule(
    name: str, agent: str, cron: str, input: Any, timezone: str, catch_up: str, paused: bool
) -> Call[r.Schedule]:
    body = {
        "name": name,
        "agent": agent,
        "cron": cron,
        "input": {} if input is None else input,
        "timezone": timezone,
        "catch_up": catch_up,
        "paused": paused,
    }
    return Call("POST", "/schedules", _schedule, json=body)


def schedules(limit: int, after: str | None) -> Call[list[r.Schedule]]:
    params = _params(limit=limit, after=after)
    return Call(
        "GET", "/schedules", lambda resp: [r.Schedule.from_json(s) for s in resp.json()["schedules"]], params=params
    )


def schedule(schedule_id: str) -> Call[r.Schedule]:
    return Call("GET", f"/schedules/{_seg(schedule_id)}", _schedule)


def pause_schedule(schedule_id: str) -> Call[r.Schedule]:
    return Call("POST", f"/schedules/{_seg(schedule_id)}/pause", _schedule)


def resume_schedule(schedule_id: str) -> Call[r.Schedule]:
    return Call("POST", f"/schedules/{_seg(schedule_id)}/resume", _schedule)


def delete_schedule(schedule_id: str) -> Call[None]:
    return Call("DELETE", f"/schedules/{_seg(schedule_id)}", lambda resp: None)


# -- approvals ---------------------------------------------------------------------------------


def approvals(
    status: str | None, job: str | None, assignee: str | None, limit: int, cursor: str | None
) -> Call[r.ApprovalPage]:
    params = _params(status=status, job=job, assignee=assignee, limit=limit, cursor=cursor)
    return Call("GET", "/approvals", lambda resp: r.ApprovalPage.from_json(resp.json()), params=params)


def approval(approval_id: str) -> Call[r.Approval]:
    return Call("GET", f"/approvals/{_seg(approval_id)}", lambda resp: r.Approval.from_json(resp.json()))


def answer(approval_id: str, decision: str, input: Any, comment: str | None, by: str | None) -> Call[r.Approval]:
    body = {"decision": decision, **_params(input=input, comment=comment, by=by)}
    return Call("POST", f"/approvals/{_seg(approval_id)}", lambda resp: r.Approval.from_json(resp.json()), json=body)


# -- memory ------------------------------------------------------------------------------------


def memory_store(namespace: str, items: list[Mapping[str, Any]]) -> Call[r.Stored]:
    body = {"namespace": namespace, "items": [dict(it) for it in items]}
    return Call("POST", "/memory/store", lambda resp: r.Stored.from_json(resp.json()), json=body)


def memory_search(
    namespace: str,
    q: str | None,
    vector: list[float] | None,
    k: int,
    filter: Mapping[str, Any] | None,
    mode: str = "vector",
) -> Call[list[r.MemoryHit]]:
    body = {"namespace": namespace, "k": k, "mode": mode, **_params(q=q, vector=vector, filter=filter)}
    return Call(
        "POST", "/memory/search", lambda resp: [r.MemoryHit.from_json(h) for h in resp.json()["hits"]], json=body
    )


def memory_get(namespace: str, item_id: str) -> Call[r.MemoryItem]:
    path = f"/memory/{_seg(namespace)}/{_seg(item_id)}"
    return Call("GET", path, lambda resp: r.MemoryItem.from_json(resp.json()))


def memory_delete(namespace: str, item_id: str) -> Call[None]:
    return Call("DELETE", f"/memory/{_seg(namespace)}/{_seg(item_id)}", lambda resp: None)


def memory_delete_namespace(namespace: str) -> Call[int]:
    return Call("DELETE", f"/memory/{_seg(namespace)}", lambda resp: int(resp.json()["items"]))


def memory_namespaces() -> Call[list[r.Namespace]]:
    return Call("GET", "/memory/namespaces", lambda resp: [r.Namespace.from_json(n) for n in resp.json()["namespaces"]])


# -- answers -----------------------------------------------------------------------------------


def read(call: Call[T], resp: httpx.Response) -> T:
    """The call's value, or the error the response stands for, raised."""
    if resp.status_code not in call.accept:
        raise error_from(resp)
    return call.parse(resp)


def error_from(resp: httpx.Response) -> AgentbusError:
    """An error response as the exception the server raised (the table in domain/errors.py)."""
    try:
        err = resp.json()["error"]
        message, name = str(err["message"]), err.get("type")
    except (ValueError, KeyError, TypeError):
        err, message, name = {}, resp.text or resp.reason_phrase, None
    status = resp.status_code
    cls = error_class(status, name)
    if issubclass(cls, ValidationFailed):
        return cls(message, err.get("errors", []))
    if issubclass(cls, RateLimited):
        return cls(message, retry_after(resp) or 1.0, dict(resp.headers))
    return cls(message, status=status)


def unreachable(base_url: object, exc: Exception) -> Unavailable:
    return Unavailable(f"cannot reach the agentbus API at {base_url}: {exc}")


def retry_after(resp: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (it may be a number or an HTTP date)."""
    raw = resp.headers.get("Retry-After")
    if raw is None:
        return None
    try:
        return max(0.0, float(raw))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(raw)
    except (TypeError, ValueError):
        return None  # neither seconds nor a date: as if the server had not said
    return max(0.0, when.timestamp() - time.time())


@dataclass(frozen=True)
class Retry:
    """Retry 429 and 503 answers (the server did not act on them), at most ``attempts`` times,
    waiting what ``Retry-After`` says but never more than ``max_wait`` seconds at once."""

    attempts: int = 3
    max_wait: float = 30.0
    default_wait: float = 1.0

    def delay(self, resp: httpx.Response, attempt: int) -> float | None:
        """How long to wait before trying again, or None to give the answer to the caller."""
        if resp.status_code not in RETRY_STATUSES or attempt >= self.attempts:
            return None
        wait = retry_after(resp)
        return min(self.max_wait, self.default_wait * 2**attempt if wait is None else wait)


class EventDecoder:
    """Server-sent events line by line (https://html.spec.whatwg.org/#event-stream-interpretation)."""

    def __init__(self) -> None:
        self.last_id = ""
        self._event = ""
        self._data: list[str] = []

    def feed(self, line: str) -> r.Event | None:
        """One line without its newline; an event once a blank line ends it."""
        if line == "":
            if not self._data:
                self._event = ""
                return None
            event = r.Event(self.last_id, self._event or "message", json.loads("\n".join(self._data)))
            self._event, self._data = "", []
            return event
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value[1:] if value.startswith(" ") else value
        if name == "id":
            self.last_id = value
        elif name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        return None
