"""The schedules repository (``ab_schedules``), and the jobs a schedule's ticks make.

Firing a tick is one transaction: the schedule's ``next_tick`` moves by compare-and-set (of two
orchestrators looking at the same due schedule, one moves it, the other changes nothing), and
each tick's job is inserted with ``ON CONFLICT DO NOTHING`` on the unique
``(schedule_id, schedule_tick)`` of ``ab_jobs``: a tick makes one job even if it is fired twice.
The rules (which ticks, the next tick) are ``domain/schedules.py``'s; the caller passes them in.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import peewee

from agentbus.domain.errors import Conflict, NotFound
from agentbus.domain.states import JobState
from agentbus.store._repository import Repository
from agentbus.store.db import translate_errors
from agentbus.store.events import Events
from agentbus.store.models import Schedule
from agentbus.store.records import dumps, loads


@dataclass(frozen=True)
class ScheduleRecord:
    id: str
    tenant: str
    name: str
    agent: str
    input: dict[str, Any]
    cron: str
    timezone: str
    catch_up: str
    paused: bool
    origin: str
    """``api`` (``POST /schedules``) or ``app`` (``@app.agent(schedule=...)``, kept by the orchestrator)."""
    next_tick: int
    last_tick: int | None
    last_job_id: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class NewSchedule:
    tenant: str
    name: str
    agent: str
    input: dict[str, Any]
    cron: str
    timezone: str
    catch_up: str
    next_tick: int
    paused: bool = False
    origin: str = "api"


def _record(r: Schedule) -> ScheduleRecord:
    return ScheduleRecord(
        id=r.id,
        tenant=r.tenant,
        name=r.name,
        agent=r.agent,
        input=loads(r.input),
        cron=r.cron,
        timezone=r.timezone,
        catch_up=r.catch_up,
        paused=bool(r.paused),
        origin=r.origin,
        next_tick=int(r.next_tick),
        last_tick=None if r.last_tick is None else int(r.last_tick),
        last_job_id=r.last_job_id,
        created_at=r.created_at,
        updated_at=r.updated_at,
    )


class Schedules(Repository):
    """Schedules: create, read, pause and resume, delete, keep the app's, and fire their ticks."""

    def __init__(self, db: peewee.Database, events: Events) -> None:
        super().__init__(db)
        self.events = events

    @translate_errors
    def create(self, new: NewSchedule) -> ScheduleRecord:
        """A new schedule; a name its tenant already uses is a Conflict."""
        now = time.time()
        row = {
            "id": uuid.uuid4().hex,
            "tenant": new.tenant,
            "name": new.name,
            "agent": new.agent,
            "input": dumps(new.input),
            "cron": new.cron,
            "timezone": new.timezone,
            "catch_up": new.catch_up,
            "paused": new.paused,
            "origin": new.origin,
            "next_tick": new.next_tick,
            "created_at": now,
            "updated_at": now,
        }
        with self.db.atomic():
            if Schedule.insert(row).on_conflict_ignore().execute() is None or not self._exists(row["id"]):
                raise Conflict(f"tenant {new.tenant!r} already has a schedule named {new.name!r}")
        return self.get(str(row["id"]))

    def _exists(self, schedule_id: str) -> bool:
        return bool(Schedule.select(Schedule.id).where(Schedule.id == schedule_id).exists())

    @translate_errors
    def get(self, schedule_id: str, tenant: str | None = None) -> ScheduleRecord:
        """The schedule; another tenant's is NotFound."""
        row = Schedule.get_or_none(Schedule.id == schedule_id)
        if row is None or (tenant is not None and row.tenant != tenant):
            raise NotFound(f"no schedule {schedule_id!r}")
        return _record(row)

    @translate_errors
    def by_name(self, tenant: str, name: str) -> ScheduleRecord | None:
        row = Schedule.get_or_none((Schedule.tenant == tenant) & (Schedule.name == name))
        return None if row is None else _record(row)

    @translate_errors
    def list_schedules(self, tenant: str, limit: int = 50, after: str | None = None) -> list[ScheduleRecord]:
        """The tenant's schedules by name, ``limit`` at a time after the name ``after``."""
        q = Schedule.select().where(Schedule.tenant == tenant)
        if after:
            q = q.where(Schedule.name > after)
        return [_record(r) for r in q.order_by(Schedule.name).limit(limit)]

    @translate_errors
    def set_paused(self, schedule_id: str, tenant: str, paused: bool, next_tick: int) -> ScheduleRecord:
        """Pause, or resume from ``next_tick`` (the first tick after the resume: ticks in a pause
        are skipped, not caught up). Pausing a paused schedule (or resuming a running one) changes
        nothing."""
        current = self.get(schedule_id, tenant)
        if current.paused != paused:
            values: dict[Any, Any] = {Schedule.paused: paused, Schedule.updated_at: time.time()}
            if not paused:
                values[Schedule.next_tick] = next_tick
            Schedule.update(values).where((Schedule.id == schedule_id) & (Schedule.paused == current.paused)).execute()
        return self.get(schedule_id)

    @translate_errors
    def delete(self, schedule_id: str, tenant: str) -> None:
        """Delete the schedule; the jobs it made are kept (``schedule_id`` still names it)."""
        n = Schedule.delete().where((Schedule.id == schedule_id) & (Schedule.tenant == tenant)).execute()
        if not n:
            raise NotFound(f"no schedule {schedule_id!r}")

    @translate_errors
    def keep(self, new: NewSchedule) -> tuple[ScheduleRecord, bool]:
        """Create or update the schedule of that tenant and name (an app's, at an orchestrator's
        start). Its paused flag and ticks are kept unless the cron or time zone changed (then it
        starts at ``new.next_tick``). Returns it and whether it changed."""
        old = self.by_name(new.tenant, new.name)
        if old is None:
            try:
                return self.create(new), True
            except Conflict:  # another orchestrator starting at the same moment made it
                old = self.by_name(new.tenant, new.name)
                if old is None:  # pragma: no cover - made and deleted in between
                    raise
        same = (old.agent, old.input, old.cron, old.timezone, old.catch_up, old.origin) == (
            new.agent,
            new.input,
            new.cron,
            new.timezone,
            new.catch_up,
            new.origin,
        )
        if same:
            return old, False
        values: dict[Any, Any] = {
            Schedule.agent: new.agent,
            Schedule.input: dumps(new.input),
            Schedule.cron: new.cron,
            Schedule.timezone: new.timezone,
            Schedule.catch_up: new.catch_up,
            Schedule.origin: new.origin,
            Schedule.updated_at: time.time(),
        }
        if (old.cron, old.timezone) != (new.cron, new.timezone):
            values[Schedule.next_tick] = new.next_tick
        Schedule.update(values).where(Schedule.id == old.id).execute()
        return self.get(old.id), True

    @translate_errors
    def due(self, now: float, limit: int = 100) -> list[ScheduleRecord]:
        """Schedules not paused whose next tick has come, the most overdue first."""
        q = (
            Schedule.select()
            .where((Schedule.paused == False) & (Schedule.next_tick <= now))  # noqa: E712 - SQL, not Python
            .order_by(Schedule.next_tick)
            .limit(limit)
        )
        return [_record(r) for r in q]

    @translate_errors
    def fire(self, schedule: ScheduleRecord, ticks: Sequence[int], next_tick: int, now: float) -> list[str] | None:
        """Fire ``ticks`` of ``schedule`` as read (its ``next_tick`` is the compare-and-set's):
        one job per tick, and the schedule moved on to ``next_tick``, in one transaction.
        Returns the jobs made now (a tick whose job exists already makes none), or None when
        another firer moved the schedule first (or it was paused meanwhile): nothing written."""
        made: list[str] = []
        with self.db.atomic():
            values: dict[Any, Any] = {Schedule.next_tick: next_tick, Schedule.updated_at: now}
            if ticks:
                values[Schedule.last_tick] = max(ticks)
            moved = (
                Schedule.update(values)
                .where(
                    (Schedule.id == schedule.id)
                    & (Schedule.next_tick == schedule.next_tick)
                    & (Schedule.paused == False)  # noqa: E712 - SQL, not Python
                )
                .execute()
            )
            if not moved:
                return None
            for tick in sorted(ticks):
                job_id = uuid.uuid4().hex
                if self._insert_tick_job(schedule, tick, job_id, now):
                    made.append(job_id)
                    data = {
                        "status": JobState.SUBMITTED.value,
                        "schedule_id": schedule.id,
                        "schedule": schedule.name,
                        "tick": tick,
                        "late_s": round(now - tick, 3),
                    }
                    self.events.log(job_id, "job", data, now)
            if made:
                Schedule.update(last_job_id=made[-1]).where(Schedule.id == schedule.id).execute()
        return made

    def _insert_tick_job(self, schedule: ScheduleRecord, tick: int, job_id: str, now: float) -> bool:
        row = {
            "id": job_id,
            "type": schedule.agent,
            "state": JobState.SUBMITTED.value,
            "input": dumps(schedule.input),
            "priority": 0,
            "created_at": now,
            "updated_at": now,
            "tenant": schedule.tenant,
            "schedule_id": schedule.id,
            "schedule_tick": tick,
        }
        marks = ", ".join(["?" if not self._pg() else "%s"] * len(row))
        # ON CONFLICT DO NOTHING (both backends): the unique (schedule_id, schedule_tick) decides
        cur = self.db.execute_sql(
            f"INSERT INTO ab_jobs ({', '.join(row)}) VALUES ({marks}) ON CONFLICT DO NOTHING", tuple(row.values())
        )
        return bool(cur.rowcount)
