"""Cron expressions and their ticks in a time zone: pure, no clock of its own.

Five fields (``minute hour day-of-month month day-of-week``) or six with a leading seconds
field; each field is ``*``, a value, a range ``a-b``, a step ``*/n``, ``a-b/n`` or ``a/n``, or a
comma-separated list of those. Months and weekdays may be named (``jan``, ``mon``); Sunday is 0
or 7. As in Vixie cron, when both day fields are restricted (neither starts with ``*``) a day
matches if *either* does.
``@yearly``, ``@monthly``, ``@weekly``, ``@daily`` (``@midnight``) and ``@hourly`` are shorthands.

Ticks are wall-clock times of the schedule's IANA time zone (``zoneinfo``), each fired once:
a wall time that happens twice (the hour repeated when clocks go back) fires at its first
occurrence; a wall time that does not exist (the hour skipped when clocks go forward) fires
as if the clock had not jumped, i.e. that much later (02:30 on a spring-forward night → 03:30).
Ticks are whole unix seconds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from agentbus.domain.errors import ValidationFailed

MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
WEEKDAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
SEARCH_YEARS = 8
"""A search for the next tick gives up past this many years: the expression never matches
(``0 0 30 2 *``), which ``parse`` reports at once."""


class InvalidCron(ValidationFailed):
    """A cron expression or time zone that cannot be used (422)."""

    def __init__(self, message: str, field: str = "cron") -> None:
        super().__init__(message, [{"loc": ["body", field], "msg": message, "type": "value_error"}])


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    name_base: int = 0


_SECOND = _Field("second", 0, 59)
_MINUTE = _Field("minute", 0, 59)
_HOUR = _Field("hour", 0, 23)
_DAY = _Field("day of month", 1, 31)
_MONTH = _Field("month", 1, 12, MONTHS, 1)
_WEEKDAY = _Field("day of week", 0, 7, WEEKDAYS, 0)


def _value(text: str, f: _Field) -> int:
    low = text.lower()
    if low in f.names:
        return f.names.index(low) + f.name_base
    if not (text.isascii() and text.isdigit()):
        raise InvalidCron(f"{f.name}: {text!r} is not a number")
    n = int(text)
    if not f.low <= n <= f.high:
        raise InvalidCron(f"{f.name}: {n} is out of {f.low}-{f.high}")
    return n


def _parse_field(text: str, f: _Field) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, slash, step_text = part.partition("/")
        step = 1
        if slash:
            if not (step_text.isascii() and step_text.isdigit()) or int(step_text) == 0:
                raise InvalidCron(f"{f.name}: the step in {part!r} must be a whole number from 1")
            step = int(step_text)
        if base == "*":
            start, end = f.low, f.high
        elif "-" in base:
            a, _, b = base.partition("-")
            start, end = _value(a, f), _value(b, f)
            if start > end:
                raise InvalidCron(f"{f.name}: the range {base!r} runs backwards")
        else:
            start = _value(base, f)
            end = f.high if step_text else start
        values.update(range(start, end + 1, step))
    if f is _WEEKDAY and 7 in values:
        values = (values - {7}) | {0}
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """A parsed expression: the set of values each field matches."""

    text: str
    seconds: frozenset[int]
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    any_day: bool
    any_weekday: bool

    def _day_matches(self, d: datetime) -> bool:
        in_month = d.day in self.days
        in_week = (d.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_month and in_week  # the unrestricted one matches every day
        return in_month or in_week

    def next_wall(self, w: datetime) -> datetime | None:
        """The first naive wall time at or after ``w`` that the expression matches (None: none
        within ``SEARCH_YEARS``)."""
        w = w.replace(microsecond=0)
        limit = w.year + SEARCH_YEARS
        while w.year <= limit:
            if w.month not in self.months:
                w = (w.replace(day=1) + timedelta(days=32)).replace(day=1, hour=0, minute=0, second=0)
            elif not self._day_matches(w):
                w = _next_day(w)
            elif w.hour not in self.hours:
                h = _after(self.hours, w.hour)
                w = w.replace(hour=h, minute=0, second=0) if h is not None else _next_day(w)
            elif w.minute not in self.minutes:
                m = _after(self.minutes, w.minute)
                next_hour = (w + timedelta(hours=1)).replace(minute=0, second=0)
                w = w.replace(minute=m, second=0) if m is not None else next_hour
            elif w.second not in self.seconds:
                sec = _after(self.seconds, w.second)
                w = w.replace(second=sec) if sec is not None else (w + timedelta(minutes=1)).replace(second=0)
            else:
                return w
        return None


def _after(values: frozenset[int], v: int) -> int | None:
    """The smallest of ``values`` above ``v`` (None: none)."""
    return min((x for x in values if x > v), default=None)


def _next_day(w: datetime) -> datetime:
    return (w + timedelta(days=1)).replace(hour=0, minute=0, second=0)


def parse(text: str) -> Cron:
    """A cron expression, checked: raises ``InvalidCron`` naming the field at fault."""
    if not isinstance(text, str) or not text.strip():
        raise InvalidCron("a cron expression is needed, e.g. '0 * * * *'")
    expanded = MACROS.get(text.strip().lower(), text)
    if expanded.startswith("@"):
        raise InvalidCron(f"unknown shorthand {text!r}; one of {', '.join(MACROS)}")
    parts = expanded.split()
    if len(parts) == 5:
        parts = ["0", *parts]
    if len(parts) != 6:
        raise InvalidCron(f"{text!r} has {len(parts)} fields; a cron expression has 5 (or 6, seconds first)")
    fields = (_SECOND, _MINUTE, _HOUR, _DAY, _MONTH, _WEEKDAY)
    sec, minute, hour, day, month, weekday = (_parse_field(p, f) for p, f in zip(parts, fields, strict=True))
    # as Vixie cron: a day field starting with * ("*", "*/2") leaves the other one to decide alone
    any_day, any_weekday = parts[3].startswith("*"), parts[5].startswith("*")
    cron = Cron(text.strip(), sec, minute, hour, day, month, weekday, any_day, any_weekday)
    if cron.next_wall(datetime(2000, 1, 1)) is None:  # a leap-year start: 29 February can match
        raise InvalidCron(f"{text!r} never matches a date")
    return cron


def zone(name: str) -> ZoneInfo:
    """An IANA time zone (``Europe/Paris``, ``UTC``); raises ``InvalidCron`` on ``timezone``."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):  # OSError: a directory, 'America'
        hint = "use an IANA name such as 'Europe/Paris' or 'UTC'"
        raise InvalidCron(f"unknown time zone {name!r}: {hint}", "timezone") from None


def next_tick(cron: Cron, tz: ZoneInfo, after: float) -> int:
    """The first tick strictly after the instant ``after`` (unix seconds)."""
    start = int(after) + 1 if after >= 0 else int(after)
    wall = datetime.fromtimestamp(start, tz).replace(tzinfo=None)
    # A wall time matched in the first pass of a repeated hour maps to an instant before ``after``
    # in the second pass: keep searching (at most an hour of candidates).
    while True:
        found = cron.next_wall(wall)
        if found is None:
            raise InvalidCron(f"{cron.text!r} has no tick after {after}")
        at = int(found.replace(tzinfo=tz, fold=0).timestamp())
        if at > after:
            return at
        wall = found + timedelta(seconds=1)


def ticks_between(cron: Cron, tz: ZoneInfo, after: float, until: float, limit: int) -> list[int]:
    """The ticks in ``(after, until]``, oldest first, at most ``limit`` of them."""
    out: list[int] = []
    t = after
    while len(out) < limit:
        t = next_tick(cron, tz, t)
        if t > until:
            break
        out.append(t)
    return out
