"""Recurring jobs: what a schedule is, and which of its ticks fire after a pause in the firing.

A schedule's record keeps ``next_tick``, the first tick not yet decided. The orchestrator looks
at it about once a second; when it is due, ``plan`` says which ticks fire now and what the next
undecided tick is. Ticks are missed when no orchestrator fired them on time (all were down, or
shard 0 was moving between them); what happens to missed ticks is the schedule's catch-up policy:

* ``latest`` (the default): one run, for the most recent due tick; older missed ticks are skipped.
* ``skip``: missed ticks are skipped; a tick fires only if it is at most ``ON_TIME_S`` late.
* ``all``: every missed tick fires, oldest first, but at most ``CATCH_UP_MAX`` of them (the most
  recent ones); older ones are skipped.

A paused schedule fires nothing; resuming it starts at the next tick after the resume (ticks in
the pause are not missed, they are skipped on purpose).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any
from zoneinfo import ZoneInfo

from agentbus.domain.cron import Cron, InvalidCron, next_tick, parse, ticks_between, zone
from agentbus.domain.errors import ValidationFailed


class CatchUp(StrEnum):
    LATEST = "latest"
    SKIP = "skip"
    ALL = "all"


ON_TIME_S = 60
"""A tick fired at most this late is on time (not missed): a failover (~11 s) loses no tick."""

APP_TENANT = "default"
"""The tenant an app's schedules (``@app.agent(schedule=...)``) and their jobs belong to."""

CATCH_UP_MAX = 50
"""``all`` fires at most this many missed ticks after a downtime."""

_WINDOWS = (60, 3600, 86_400, 32 * 86_400, 367 * 86_400)


def catch_up_policy(value: str) -> CatchUp:
    try:
        return CatchUp(value)
    except ValueError:
        raise InvalidCron(
            f"unknown catch-up policy {value!r}; one of {', '.join(c.value for c in CatchUp)}", "catch_up"
        ) from None


@dataclass(frozen=True)
class Schedule:
    """``@app.agent(schedule=Schedule("0 9 * * mon-fri", timezone="Europe/Paris", input={...}))``;
    ``schedule="0 * * * *"`` is ``Schedule("0 * * * *")`` (UTC, no input, catch-up ``latest``)."""

    cron: str
    timezone: str = "UTC"
    input: dict[str, Any] = field(default_factory=dict)
    catch_up: str = CatchUp.LATEST.value
    name: str | None = None
    """The schedule's name (unique in its tenant); by default the agent's name."""

    def check(self) -> tuple[Cron, ZoneInfo]:
        """Parsed and checked: raises ``InvalidCron`` (a ``ValidationFailed``) on a bad field."""
        catch_up_policy(self.catch_up)
        return parse(self.cron), zone(self.timezone)


@dataclass(frozen=True)
class Firing:
    """What one look at a due schedule does: the ticks to fire now (oldest first), how many missed
    ticks it skips, and the next undecided tick."""

    fire: tuple[int, ...]
    skipped: int
    next_tick: int


def recent_ticks(cron: Cron, tz: ZoneInfo, after: int, now: float, n: int) -> list[int]:
    """The last ``n`` ticks in ``(after, now]``, oldest first. Searches back from ``now`` in
    growing windows rather than stepping through every missed tick (a per-second schedule
    after a day down has 86,400)."""
    window = 64
    while True:
        start = max(after, int(now) - window)
        ticks = ticks_between(cron, tz, start, now, 1 << 30)
        if len(ticks) >= n or start == after:
            return ticks[-n:]
        window *= 16


def plan(cron: Cron, tz: ZoneInfo, due: int, now: float, policy: CatchUp) -> Firing:
    """Which ticks fire when the undecided tick ``due`` is looked at, at ``now``.

    ``skipped`` counts the missed ticks not fired; past ``CATCH_UP_MAX`` missed ticks it is a
    lower bound (they are not all counted).
    """
    if due > now:
        return Firing((), 0, due)
    after = next_tick(cron, tz, now)
    missed = ticks_between(cron, tz, due - 1, now, CATCH_UP_MAX + 1)
    counted = len(missed)
    if not missed:  # ``due`` is no tick of this expression (it was changed): start afresh
        return Firing((), 0, after)
    if counted > CATCH_UP_MAX:
        missed = recent_ticks(cron, tz, due - 1, now, CATCH_UP_MAX)
    if policy == CatchUp.ALL:
        fire = missed
    elif policy == CatchUp.SKIP and now - missed[-1] > ON_TIME_S:
        fire = []
    else:
        fire = missed[-1:]
    return Firing(tuple(fire), max(counted - len(fire), 0), after)


MAX_AHEAD_S = 366 * 86_400
"""A job may be submitted for at most this far ahead (``run_at``/``delay``)."""


def _refuse(field_name: str, msg: str) -> ValidationFailed:
    return ValidationFailed(f"{field_name}: {msg}", [{"loc": ["body", field_name], "msg": msg, "type": "value_error"}])


def due_time(run_at: str | float | None, delay: float | None, now: float) -> float | None:
    """When a job submitted with ``run_at`` (ISO 8601 with an offset, or unix seconds) or ``delay``
    (seconds from ``now``) is due; None for a job to run now. One of the two at most; a time in
    the past is due now (the job starts at once); more than ``MAX_AHEAD_S`` ahead is refused."""
    if run_at is not None and delay is not None:
        raise _refuse("delay", "give run_at or delay, not both")
    if delay is not None:
        if not math.isfinite(delay) or delay < 0:
            raise _refuse("delay", "a number of seconds from 0")
        at = now + delay
        field_name = "delay"
    elif run_at is None:
        return None
    elif isinstance(run_at, str):
        try:
            parsed = datetime.fromisoformat(run_at)
        except ValueError:
            example = "2026-01-31T09:00:00+01:00"
            raise _refuse("run_at", f"{run_at[:60]!r} is not an ISO 8601 time (e.g. {example})") from None
        if parsed.tzinfo is None:
            raise _refuse("run_at", "an ISO 8601 time needs its offset (Z or +01:00): a wall time alone is ambiguous")
        at = parsed.timestamp()
        field_name = "run_at"
    else:
        if not math.isfinite(run_at) or run_at < 0:
            raise _refuse("run_at", "unix seconds from 0")
        at = float(run_at)
        field_name = "run_at"
    if at - now > MAX_AHEAD_S:
        raise _refuse(field_name, f"at most {MAX_AHEAD_S // 86_400} days ahead")
    return at
