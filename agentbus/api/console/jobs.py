"""The jobs list (filters, cursor paging, live over SSE) and a job's page (steps, sub-agents, actions)."""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from agentbus.api import events, routes
from agentbus.api.console._base import (
    SECURITY_HEADERS,
    console,
    context,
    form_of,
    fragment,
    int_param,
    page,
    redirect,
    signed_in,
)
from agentbus.api.state import ApiState
from agentbus.domain import ControlEvent, InvalidInput, JobState, RateLimited, Unavailable
from agentbus.store import JobRecord, NewJob
from agentbus.store.console import cursor_before

log = logging.getLogger("agentbus.api")

PAGE = 50
STEP_PAGE = 100
LIVE_POLL_S = 1.0
LIVE_MAX_S = 1800.0
STATUSES = tuple(s.value for s in JobState)


@dataclass(frozen=True)
class JobFilter:
    status: str
    type: str
    since: str  # datetime-local text (UTC), kept as typed for the form
    until: str
    cursor: str | None

    @staticmethod
    def parse(q: Mapping[str, str]) -> JobFilter:
        status = q.get("status", "")
        if status and status not in STATUSES:
            raise InvalidInput(f"unknown status {status!r}; one of {', '.join(STATUSES)}")
        f = JobFilter(status, q.get("type", "")[:200], q.get("from", ""), q.get("to", ""), q.get("cursor") or None)
        f.bounds()  # a bad date is a 400 before anything is read
        return f

    def bounds(self) -> tuple[float | None, float | None]:
        return _when(self.since, "from"), _when(self.until, "to")

    def query(self, cursor: str | None = None) -> str:
        parts = {"status": self.status, "type": self.type, "from": self.since, "to": self.until}
        if cursor:
            parts["cursor"] = cursor
        return urlencode({k: v for k, v in parts.items() if v})


def _when(text: str, name: str) -> float | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()
    except ValueError:
        raise InvalidInput(f"{name} must be a date and time like 2026-12-01T13:00, got {text!r}") from None


def list_page(jobs: Any, f: JobFilter, tenant: str) -> tuple[list[JobRecord], str | None]:
    """The same ``list_jobs`` call as ``GET /jobs``; the time window is a starting cursor (``to``) and
    a stop (``from``): newest first, so the first row older than ``from`` ends the listing."""
    since, until = f.bounds()
    cursor = f.cursor or (cursor_before(until) if until is not None else None)
    rows, nxt = jobs.list_jobs(
        states=[f.status] if f.status else None, type=f.type or None, limit=PAGE, cursor=cursor, tenant=tenant
    )
    if since is not None:
        kept = [r for r in rows if r.created_at >= since]
        if len(kept) < len(rows):
            nxt = None
        rows = kept
    return rows, nxt


@signed_in("jobs:read")
async def jobs(request: Request) -> Response:
    st = console(request).api
    f = JobFilter.parse(request.query_params)
    rows, nxt = await run_in_threadpool(list_page, st.jobs, f, request.state.tenant)
    return page(
        request,
        "jobs.html",
        **context(
            request, jobs=rows, f=f, next_cursor=nxt, statuses=STATUSES, types=sorted([*st.app.agents, *st.app.tasks])
        ),
    )


@signed_in("jobs:read", stream=True)
async def jobs_live(request: Request) -> Response:
    """The rows of the jobs page as server-sent events: sent again whenever one of them changes."""
    st = console(request).api
    f = JobFilter.parse(request.query_params)
    tenant = request.state.tenant

    async def stream() -> AsyncIterator[str]:
        yield "retry: 2000\n\n"
        last = ""
        waited = 0.0
        while waited < LIVE_MAX_S:
            try:
                rows, _ = await run_in_threadpool(list_page, st.jobs, f, tenant)
            except Unavailable:
                rows = None
            if rows is not None:
                html = fragment("_job_rows.html", jobs=rows)
                digest = hashlib.sha256(html.encode()).hexdigest()
                if digest != last:
                    last = digest
                    yield "event: rows\n" + "".join(f"data: {line}\n" for line in html.splitlines()) + "\n"
                else:
                    yield ": still\n\n"
            if await request.is_disconnected():
                return
            await asyncio.sleep(LIVE_POLL_S)
            waited += LIVE_POLL_S

    headers = {**SECURITY_HEADERS, "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)


def _job_view(st: ApiState, queries: Any, job_id: str, tenant: str, after: int) -> dict[str, Any]:
    rec = st.jobs.get_job(job_id, tenant)  # another tenant's job is a 404, as in the API
    return {
        "job": rec,
        "progress": st.jobs.progress(job_id),
        "steps": queries.step_page(job_id, after, STEP_PAGE),
        "step_total": queries.step_count(job_id),
        "children": queries.sub_agents(job_id),
        "after": after,
        "step_page": STEP_PAGE,
    }


def _job_id(request: Request) -> str:
    job_id = str(request.path_params["job_id"])
    if not 0 < len(job_id) <= 120:
        raise InvalidInput("a job id has 1 to 120 characters")
    return job_id


@signed_in("jobs:read")
async def job(request: Request) -> Response:
    c = console(request)
    after = int_param(request.query_params, "after", -1)
    view = await run_in_threadpool(_job_view, c.api, c.queries, _job_id(request), request.state.tenant, after)
    return page(request, "job.html", **context(request, **view))


@signed_in("jobs:read")
async def job_live(request: Request) -> Response:
    """The live part of a job's page, fetched again by the page's script when the job's events say so."""
    c = console(request)
    after = int_param(request.query_params, "after", -1)
    view = await run_in_threadpool(_job_view, c.api, c.queries, _job_id(request), request.state.tenant, after)
    return page(request, "_job_live.html", **context(request, **view))


@signed_in("jobs:read", stream=True)
async def job_events(request: Request) -> Response:
    """``GET /jobs/{id}/events`` itself, behind the console's session instead of a bearer key."""
    return await events.job_events(request)


@signed_in("jobs:write")
async def cancel(request: Request) -> Response:
    await routes.cancel_job(request)  # the JSON route's own code: store, control stream, notifier
    return redirect(f"/jobs/{_job_id(request)}?notice=cancelled")


def publish(st: ApiState, event: ControlEvent) -> None:
    try:
        st.stream.publish([event])
    except Unavailable as exc:  # the job is in PostgreSQL: the reconciler will emit it
        log.warning("could not publish %s for %s: %s", event.kind, event.job_ids, exc)


def submit(st: ApiState, type_: str, data: Any, tenant: str) -> JobRecord:
    """What ``POST /jobs`` does: validate the input, apply the tenant's cap, insert, announce."""
    if not isinstance(data, dict):
        raise InvalidInput("a job's input is a JSON object")
    data = st.app.validate_input(type_, data)
    running = st.jobs.running_jobs(tenant)
    if running >= st.settings.max_running_jobs:
        raise RateLimited(f"tenant {tenant!r} has {running} open jobs, its cap is {st.settings.max_running_jobs}", 5.0)
    rec, created = st.jobs.create_job(NewJob(type_, data, tenant=tenant))
    if created:
        publish(st, ControlEvent("job.submitted", (rec.id,)))
    return rec


@signed_in("jobs:write")
async def resubmit(request: Request) -> Response:
    """Submit again: a new job of the same type with the same input."""
    st = console(request).api
    await form_of(request)
    tenant = request.state.tenant
    old = await run_in_threadpool(st.jobs.get_job, _job_id(request), tenant)
    rec = await run_in_threadpool(submit, st, old.type, old.input, tenant)
    return redirect(f"/jobs/{rec.id}")
