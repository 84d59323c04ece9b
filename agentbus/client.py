"""A Python client of the HTTP API (what the CLI uses, and what users call)."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx

from agentbus.domain.errors import (
    AgentbusError,
    Conflict,
    Forbidden,
    InvalidInput,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)

_BY_STATUS: dict[int, type[AgentbusError]] = {
    400: InvalidInput, 401: Unauthorized, 403: Forbidden, 404: NotFound, 409: Conflict, 413: PayloadTooLarge,
    503: Unavailable,
}  # fmt: skip


class Client:
    def __init__(self, base_url: str = "http://127.0.0.1:8000", timeout: float = 30.0,
                 api_key: str | None = None) -> None:  # fmt: skip
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        if kwargs.get("timeout", 0) is None:
            del kwargs["timeout"]
        try:
            resp = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach the agentbus API at {self.http.base_url}: {exc}") from None
        self._raise_for(resp)
        return resp

    def _raise_for(self, resp: httpx.Response) -> None:
        if resp.status_code >= 400:
            try:
                err = resp.json()["error"]
                message = err["message"]
            except (ValueError, KeyError, TypeError):
                err, message = {}, resp.text or resp.reason_phrase
            if resp.status_code == 422:
                raise ValidationFailed(message, err.get("errors", []))
            if resp.status_code == 429:
                raise RateLimited(message, float(resp.headers.get("Retry-After", "1")))
            raise _BY_STATUS.get(resp.status_code, AgentbusError)(message, status=resp.status_code)

    def submit(self, type: str, input: dict[str, Any] | None = None, *, idempotency_key: str | None = None,
               priority: int = 0) -> dict[str, Any]:  # fmt: skip
        body: dict[str, Any] = {"type": type, "input": input or {}, "priority": priority}
        if idempotency_key:
            body["idempotency_key"] = idempotency_key
        job: dict[str, Any] = self._call("POST", "/jobs", json=body).json()
        return job

    def job(self, job_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("GET", f"/jobs/{job_id}").json()
        return out

    def results(self, job_id: str, wait: float = 0) -> tuple[bool, dict[str, Any]]:
        """(finished, body): the result or error once finished; ``wait`` long-polls up to that many seconds."""
        params = {"wait": wait} if wait else None
        resp = self._call("GET", f"/jobs/{job_id}/results", params=params, timeout=wait + 10 if wait else None)
        return resp.status_code == 200, resp.json()

    def jobs(self, *, status: str | None = None, type: str | None = None, limit: int = 50,
             cursor: str | None = None) -> dict[str, Any]:  # fmt: skip
        params = {k: v for k, v in {"status": status, "type": type, "limit": limit, "cursor": cursor}.items() if v}
        out: dict[str, Any] = self._call("GET", "/jobs", params=params).json()
        return out

    def cancel(self, job_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("POST", f"/jobs/{job_id}/cancel").json()
        return out

    def workers(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._call("GET", "/workers").json()["workers"]
        return out

    def job_types(self) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = self._call("GET", "/job-types").json()["job_types"]
        return out

    def wait(
        self,
        job_id: str,
        timeout: float = 300.0,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        progress_every: float = 0.5,
    ) -> dict[str, Any]:
        """Long-poll until the job finishes; returns its results body."""
        deadline = time.monotonic() + timeout
        while True:
            if on_progress is not None:
                on_progress(self.job(job_id))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"job {job_id} did not finish within {timeout}s")
            step = min(remaining, progress_every if on_progress is not None else 30.0)
            done, body = self.results(job_id, wait=max(0.01, step))
            if done:
                return body

    # -- human in the loop ---------------------------------------------------------------------
    def approvals(self, *, status: str | None = None, job: str | None = None, assignee: str | None = None,
                  limit: int = 50, cursor: str | None = None) -> dict[str, Any]:  # fmt: skip
        params = {"status": status, "job": job, "assignee": assignee, "limit": limit, "cursor": cursor}
        out: dict[str, Any] = self._call("GET", "/approvals", params={k: v for k, v in params.items() if v}).json()
        return out

    def approval(self, approval_id: str) -> dict[str, Any]:
        out: dict[str, Any] = self._call("GET", f"/approvals/{approval_id}").json()
        return out

    def answer(self, approval_id: str, decision: str, *, input: Any = None, comment: str | None = None,
               by: str | None = None) -> dict[str, Any]:  # fmt: skip
        body: dict[str, Any] = {"decision": decision}
        for k, v in (("input", input), ("comment", comment), ("by", by)):
            if v is not None:
                body[k] = v
        out: dict[str, Any] = self._call("POST", f"/approvals/{approval_id}", json=body).json()
        return out

    def events(self, job_id: str, last_event_id: str | None = None) -> Iterator[tuple[str, str, dict[str, Any]]]:
        """The job's server-sent events as (id, event, data), until the job has finished."""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        try:
            with self.http.stream("GET", f"/jobs/{job_id}/events", headers=headers, timeout=None) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    self._raise_for(resp)
                event_id, event, data = "", "message", ""
                for line in resp.iter_lines():
                    if line == "":
                        if data:
                            yield event_id, event, json.loads(data)
                            if event == "end":
                                return
                        event_id, event, data = event_id, "message", ""
                    elif line.startswith("id: "):
                        event_id = line[4:]
                    elif line.startswith("event: "):
                        event = line[7:]
                    elif line.startswith("data: "):
                        data += line[6:]
        except httpx.TransportError as exc:
            raise Unavailable(f"cannot reach the agentbus API at {self.http.base_url}: {exc}") from None
