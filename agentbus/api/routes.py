"""The HTTP routes. Store and Redis calls run in the thread pool; errors go to errors.py."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import anyio.to_thread
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from agentbus.api import render
from agentbus.api.bodies import SubmitJob, parse, read_json
from agentbus.api.state import ApiState
from agentbus.api.submits import announce
from agentbus.api.waiting import job_notices
from agentbus.domain import ControlEvent, InvalidInput, JobState, RateLimited, Unavailable
from agentbus.domain.schedules import due_time
from agentbus.observability import metrics
from agentbus.store import JobRecord, NewJob

log = logging.getLogger("agentbus.api")


def _state(request: Request) -> ApiState:
    st: ApiState = request.app.state.agentbus
    return st


def tenant_of(request: Request) -> str:
    """The caller's tenant, set by the auth middleware; every query is scoped by it."""
    tenant: str = request.state.tenant
    return tenant


async def json_body(request: Request) -> Any:
    """The request's JSON, within the size, depth and array-length limits."""
    cfg = _state(request).settings
    return await read_json(request, cfg.max_body_bytes, cfg.max_json_depth, cfg.max_array_length)


def _job_id(request: Request) -> str:
    job_id = str(request.path_params["job_id"])
    if not (0 < len(job_id) <= 120):
        raise InvalidInput("a job id has 1 to 120 characters")
    return job_id


def _publish(st: ApiState, event: ControlEvent) -> None:
    try:
        st.stream.publish([event])
    except Unavailable as exc:  # the job is in PostgreSQL: the reconciler will emit it
        log.warning("could not publish %s for %s: %s", event.kind, event.job_ids, exc)


async def submit_job(request: Request) -> JSONResponse:
    started = time.time()
    st = _state(request)
    body = parse(SubmitJob, await json_body(request))
    data = st.app.validate_input(body.type, body.input)
    tenant = tenant_of(request)
    run_at = None if body.run_at is None and body.delay is None else due_time(body.run_at, body.delay, started)
    new = NewJob(
        body.type, data, idempotency_key=body.idempotency_key, priority=body.priority, tenant=tenant, run_at=run_at
    )
    rec, created = await st.submits.submit(new, started)  # written with the submits that come with it
    return JSONResponse(render.job(rec), status_code=201 if created else 200)


def _admit(st: ApiState, tenant: str) -> None:
    """A rerun only under the tenant's cap of open jobs (a submit's cap is checked by its insert: api/submits.py)."""
    running = st.jobs.running_jobs(tenant)
    if running >= st.settings.max_running_jobs:
        metrics.rate_limited("open_jobs")
        cap = st.settings.max_running_jobs
        raise RateLimited(f"tenant {tenant!r} has {running} open jobs, its cap is {cap}", 5.0)


TASKS_SHOWN = 100


async def get_job(request: Request) -> JSONResponse:
    """The job, its progress, and its first tasks with where each was routed and why."""
    st = _state(request)
    job_id = _job_id(request)
    rec = await run_in_threadpool(st.jobs.get_job, job_id, tenant_of(request))
    progress = await run_in_threadpool(st.jobs.progress, job_id)
    tasks = await run_in_threadpool(st.steps.task_rows, job_id, TASKS_SHOWN + 1)
    body = render.job(rec, progress)
    body["tasks"] = tasks[:TASKS_SHOWN]
    body["more_tasks"] = len(tasks) > TASKS_SHOWN
    return JSONResponse(body)


async def job_tasks(request: Request) -> JSONResponse:
    """All of a job's tasks, a page at a time (``after`` = the last seq seen)."""
    st = _state(request)
    job_id = _job_id(request)
    raw = request.query_params.get("after", "-1")
    try:
        after = int(raw)
    except ValueError:
        raise InvalidInput(f"after must be a whole number (a task's seq), got {raw!r}") from None
    limit = _limit(request)
    await run_in_threadpool(st.jobs.get_job, job_id, tenant_of(request))
    rows = await run_in_threadpool(st.steps.task_rows, job_id, limit, after)
    return JSONResponse({"tasks": rows, "next_after": rows[-1]["seq"] if len(rows) == limit else None})


MAX_WAIT_S = 60.0


def _wait_param(request: Request) -> float:
    raw = request.query_params.get("wait", "0")
    try:
        wait = float(raw)
    except ValueError:
        wait = -1.0
    if not 0 <= wait <= MAX_WAIT_S:
        raise InvalidInput(f"wait must be a number of seconds from 0 to {MAX_WAIT_S:g}, got {raw!r}")
    return wait


async def get_results(request: Request) -> JSONResponse:
    """The result; with ``?wait=S`` the request waits up to S seconds for the job to finish.

    The wait holds no thread: it sleeps on the job's notices (api/waiting.py) and re-reads
    the record when woken; without Redis it reads the record every POLL_S. A job this process
    has just submitted, whose end it has not heard of, is known to be open: the first read is
    skipped (``JobWatch.still_open``). A finished notice that carried the job's end answers
    without a read when it answers as the record would (``EndNotices.answer``).
    """
    st = _state(request)
    job_id = _job_id(request)
    wait = _wait_param(request)
    tenant = tenant_of(request)
    if wait == 0:
        now = await run_in_threadpool(st.jobs.get_job, job_id, tenant)
        return JSONResponse(render.results(now), status_code=200 if now.state.terminal else 202)
    deadline = time.monotonic() + wait
    async with job_notices(request, st.watch, job_id) as notices:
        known_open = st.watch.still_open(job_id, tenant)
        rec: JobRecord | None = None if known_open else await run_in_threadpool(st.jobs.get_job, job_id, tenant)
        while (rec is None or not rec.state.terminal) and (left := deadline - time.monotonic()) > 0:
            if not await notices.wait(left):
                break  # the client went away: nobody to answer
            if (end := notices.answer(tenant)) is not None:
                return JSONResponse(render.ending(end))  # ended for good: 200
            rec = await run_in_threadpool(st.jobs.get_job, job_id, tenant)
    if rec is None:
        rec = await run_in_threadpool(st.jobs.get_job, job_id, tenant)
    return JSONResponse(render.results(rec), status_code=200 if rec.state.terminal else 202)


def _limit(request: Request) -> int:
    raw = request.query_params.get("limit", "50")
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= 200:  # "²" is a digit to isdigit
        raise InvalidInput(f"limit must be a whole number from 1 to 200, got {raw!r}")
    return int(raw)


async def list_jobs(request: Request) -> JSONResponse:
    st = _state(request)
    q = request.query_params
    unknown = set(q) - {"status", "type", "limit", "cursor"}
    if unknown:
        raise InvalidInput(f"unknown query parameters: {', '.join(sorted(unknown))}")
    states = [s for s in q.get("status", "").split(",") if s]
    valid = {s.value for s in JobState}
    bad = [s for s in states if s not in valid]
    if bad:
        raise InvalidInput(f"unknown status {bad[0]!r}; one of {', '.join(sorted(valid))}")
    limit, tenant = _limit(request), tenant_of(request)
    rows, cursor = await run_in_threadpool(
        lambda: st.jobs.list_jobs(states=states, type=q.get("type"), limit=limit, cursor=q.get("cursor"), tenant=tenant)
    )
    return JSONResponse({"jobs": [render.job(r) for r in rows], "next_cursor": cursor})


async def cancel_job(request: Request) -> JSONResponse:
    st = _state(request)
    rec = await run_in_threadpool(st.jobs.cancel_job, _job_id(request), tenant_of(request))
    metrics.job_finished(rec.type, JobState.CANCELLED.value)
    await run_in_threadpool(_publish, st, ControlEvent("job.cancel", (rec.id,)))
    try:
        await run_in_threadpool(st.notifier.finished, [rec.id])
    except Unavailable:
        pass
    return JSONResponse(render.job(rec))


async def rerun_job(request: Request) -> JSONResponse:
    """A new job with a finished job's type, input and priority, linked to it (``rerun_of``)."""
    st = _state(request)
    job_id, tenant = _job_id(request), tenant_of(request)
    rec = await run_in_threadpool(_rerun, st, job_id, tenant, time.time())
    return JSONResponse(render.job(rec), status_code=201)


def _rerun(st: ApiState, job_id: str, tenant: str, started: float) -> JobRecord:
    st.jobs.get_job(job_id, tenant)  # another tenant's job is a 404 before the cap says anything
    _admit(st, tenant)  # a rerun is a submit: the same per-tenant cap
    rec = st.jobs.rerun_job(job_id, tenant)
    announce(st.stream, [(rec, started)])
    return rec


async def resume_job(request: Request) -> JSONResponse:
    """A failed job runs on: its failed steps get a new attempt, its journal is kept (the steps
    that succeeded are not run again). The orchestrator dispatches the reopened steps as it does
    any pending call, and replays the job once they have finished."""
    st = _state(request)
    rec, _ = await run_in_threadpool(st.jobs.resume_failed, _job_id(request), tenant_of(request))
    await run_in_threadpool(_publish, st, ControlEvent("job.advance", (rec.id,)))
    try:
        await run_in_threadpool(st.notifier.changed, [rec.id])  # wakes the job's event streams
    except Unavailable:
        pass
    return JSONResponse(render.job(rec))


async def job_types(request: Request) -> JSONResponse:
    app = _state(request).app
    types: list[dict[str, Any]] = []
    schemas = app.input_schemas()
    for name, td in sorted(app.tasks.items()):
        types.append({"name": name, "kind": "task", "device": td.options.device, "input_schema": schemas[name]})
    for name in sorted(app.agents):
        types.append({"name": name, "kind": "agent", "input_schema": schemas[name]})
    return JSONResponse({"job_types": types})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


async def openapi(request: Request) -> JSONResponse:
    """The OpenAPI document, built once by create_app (api/openapi.py)."""
    return JSONResponse(request.app.state.openapi)


READY_TIMEOUT_S = 3.0


async def readyz(request: Request) -> JSONResponse:
    """Ready when a PostgreSQL connection can be taken from this process's pool (and used) and
    Redis answers, each within READY_TIMEOUT_S: a saturated pool or thread pool is not ready."""
    st = _state(request)
    checks: dict[str, str] = {}
    for name, probe in (
        ("postgresql" if st.jobs.backend == "postgresql" else "sqlite", st.jobs.ping),
        ("redis", st.ping_redis),
    ):
        try:
            async with asyncio.timeout(READY_TIMEOUT_S):  # abandon a probe stuck on a full pool
                await anyio.to_thread.run_sync(probe, abandon_on_cancel=True)
            checks[name] = "ok"
        except Unavailable as exc:
            checks[name] = exc.message
        except TimeoutError:
            checks[name] = f"no answer within {READY_TIMEOUT_S:g}s"
    ok = all(v == "ok" for v in checks.values())
    return JSONResponse(
        {"status": "ok" if ok else "unavailable", "checks": checks},
        status_code=200 if ok else 503,
        headers=None if ok else {"Retry-After": "1"},
    )
