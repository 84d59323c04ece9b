"""Schedules: an agent run on the ticks of a cron expression in a time zone (``docs/schedules.md``)."""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse

from agentbus.api import render
from agentbus.api.bodies import Body, parse
from agentbus.api.routes import _limit, _state, json_body, tenant_of
from agentbus.domain import InvalidInput, NotFound, ValidationFailed
from agentbus.domain.cron import next_tick, ticks_between, zone
from agentbus.domain.cron import parse as parse_cron
from agentbus.domain.schedules import Schedule
from agentbus.store import NewSchedule, ScheduleRecord

UPCOMING = 3
"""How many of its next ticks a schedule is shown with."""


class CreateSchedule(Body):
    name: str = Field(min_length=1, max_length=200, description="unique in the tenant")
    agent: str = Field(min_length=1, max_length=200, description="the job type each tick runs")
    input: dict[str, Any] = Field(default_factory=dict, description="the input of every run")
    cron: str = Field(min_length=1, max_length=200, description="5 fields, or 6 with seconds first; @hourly, ...")
    timezone: str = Field(default="UTC", min_length=1, max_length=64, description="an IANA time zone")
    catch_up: Literal["latest", "skip", "all"] = Field(
        default="latest", description="what missed ticks become after a downtime (docs/schedules.md)"
    )
    paused: bool = False


def _schedule_id(request: Request) -> str:
    schedule_id = str(request.path_params["schedule_id"])
    if not (0 < len(schedule_id) <= 40):
        raise InvalidInput("a schedule id has 1 to 40 characters")
    return schedule_id


def render_schedule(rec: ScheduleRecord) -> dict[str, Any]:
    upcoming: list[int] = []
    if not rec.paused:
        try:
            cron, tz = parse_cron(rec.cron), zone(rec.timezone)
            upcoming = [rec.next_tick, *ticks_between(cron, tz, rec.next_tick, float("inf"), UPCOMING - 1)]
        except ValidationFailed:
            upcoming = []
    return {
        "id": rec.id,
        "name": rec.name,
        "agent": rec.agent,
        "input": rec.input,
        "cron": rec.cron,
        "timezone": rec.timezone,
        "catch_up": rec.catch_up,
        "paused": rec.paused,
        "origin": rec.origin,
        "next_run_at": None if rec.paused else render.iso(rec.next_tick),
        "upcoming": [render.iso(t) for t in upcoming],
        "last_run_at": render.iso(rec.last_tick),
        "last_job_id": rec.last_job_id,
        "created_at": render.iso(rec.created_at),
        "updated_at": render.iso(rec.updated_at),
    }


async def create_schedule(request: Request) -> JSONResponse:
    st = _state(request)
    body = parse(CreateSchedule, await json_body(request))
    spec = Schedule(body.cron, body.timezone, body.input, body.catch_up, body.name)
    cron, tz = spec.check()
    try:
        data = st.app.validate_input(body.agent, body.input)
    except NotFound as exc:  # a field of the body, not the resource of the path
        raise ValidationFailed(exc.message, [{"loc": ["body", "agent"], "msg": exc.message}]) from None
    new = NewSchedule(
        tenant=tenant_of(request),
        name=body.name,
        agent=body.agent,
        input=data,
        cron=body.cron,
        timezone=body.timezone,
        catch_up=body.catch_up,
        next_tick=next_tick(cron, tz, time.time()),
        paused=body.paused,
    )
    rec = await run_in_threadpool(st.schedules.create, new)
    return JSONResponse(render_schedule(rec), status_code=201)


async def list_schedules(request: Request) -> JSONResponse:
    st = _state(request)
    q = request.query_params
    unknown = set(q) - {"limit", "after"}
    if unknown:
        raise InvalidInput(f"unknown query parameters: {', '.join(sorted(unknown))}")
    limit, tenant, after = _limit(request), tenant_of(request), q.get("after")
    rows = await run_in_threadpool(st.schedules.list_schedules, tenant, limit, after)
    nxt = rows[-1].name if len(rows) == limit else None
    return JSONResponse({"schedules": [render_schedule(r) for r in rows], "next_after": nxt})


async def get_schedule(request: Request) -> JSONResponse:
    st = _state(request)
    rec = await run_in_threadpool(st.schedules.get, _schedule_id(request), tenant_of(request))
    return JSONResponse(render_schedule(rec))


async def _set_paused(request: Request, paused: bool) -> JSONResponse:
    st = _state(request)
    schedule_id, tenant = _schedule_id(request), tenant_of(request)

    def move() -> ScheduleRecord:
        rec = st.schedules.get(schedule_id, tenant)
        # resumed from the next tick after now: ticks in the pause are skipped, not caught up
        first = next_tick(parse_cron(rec.cron), zone(rec.timezone), time.time())
        return st.schedules.set_paused(schedule_id, tenant, paused, first)

    return JSONResponse(render_schedule(await run_in_threadpool(move)))


async def pause_schedule(request: Request) -> JSONResponse:
    return await _set_paused(request, True)


async def resume_schedule(request: Request) -> JSONResponse:
    return await _set_paused(request, False)


async def delete_schedule(request: Request) -> JSONResponse:
    st = _state(request)
    schedule_id = _schedule_id(request)
    await run_in_threadpool(st.schedules.delete, schedule_id, tenant_of(request))
    return JSONResponse({"id": schedule_id, "deleted": True})
