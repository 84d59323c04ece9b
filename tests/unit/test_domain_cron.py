"""The cron rule: fields, steps, ranges, lists, names, and ticks across daylight-saving changes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from agentbus.domain.cron import InvalidCron, next_tick, parse, ticks_between, zone
from agentbus.domain.errors import ValidationFailed

UTC_Z = zone("UTC")
PARIS = zone("Europe/Paris")
NEW_YORK = zone("America/New_York")


def at(*args: int, tz: object = UTC) -> int:
    return int(datetime(*args, tzinfo=tz).timestamp())  # type: ignore[arg-type, misc]


def wall(t: int, tz: object) -> str:
    return datetime.fromtimestamp(t, tz).strftime("%Y-%m-%d %H:%M:%S %Z")  # type: ignore[arg-type]


def test_every_hour_on_the_hour() -> None:
    assert next_tick(parse("0 * * * *"), UTC_Z, at(2026, 1, 1, 10, 0)) == at(2026, 1, 1, 11, 0)
    assert next_tick(parse("0 * * * *"), UTC_Z, at(2026, 1, 1, 10, 0) - 1) == at(2026, 1, 1, 10, 0)


def test_step_range_and_list_fields() -> None:
    cron = parse("*/15 9-17/4 * * mon,wed-fri")
    assert cron.minutes == {0, 15, 30, 45}
    assert cron.hours == {9, 13, 17}
    assert cron.weekdays == {1, 3, 4, 5}
    # 2026-01-03 is a Saturday: the next tick is Monday 09:00
    assert next_tick(cron, UTC_Z, at(2026, 1, 3, 12, 0)) == at(2026, 1, 5, 9, 0)
    assert ticks_between(cron, UTC_Z, at(2026, 1, 5, 9, 0), at(2026, 1, 5, 13, 30), 10) == [
        at(2026, 1, 5, 9, 15),
        at(2026, 1, 5, 9, 30),
        at(2026, 1, 5, 9, 45),
        at(2026, 1, 5, 13, 0),
        at(2026, 1, 5, 13, 15),
        at(2026, 1, 5, 13, 30),
    ]


def test_a_start_with_a_step_runs_to_the_end_of_the_field() -> None:
    assert parse("5/20 * * * *").minutes == {5, 25, 45}


def test_a_sixth_field_counts_seconds() -> None:
    cron = parse("*/10 * * * * *")
    t = at(2026, 1, 1, 0, 0, 5)
    assert next_tick(cron, UTC_Z, t) == at(2026, 1, 1, 0, 0, 10)


def test_names_and_sunday_as_seven() -> None:
    assert parse("0 0 1 jan-mar sun").months == {1, 2, 3}
    assert parse("0 0 * * 7").weekdays == {0}


def test_either_restricted_day_field_matches() -> None:
    # the 13th, or any Friday (Vixie cron): 2026-02-06 is a Friday before the 13th
    cron = parse("0 0 13 * fri")
    assert next_tick(cron, UTC_Z, at(2026, 2, 1)) == at(2026, 2, 6)
    assert next_tick(cron, UTC_Z, at(2026, 2, 12)) == at(2026, 2, 13)


def test_a_day_field_starting_with_a_star_leaves_the_other_to_decide() -> None:
    # every other day of the month AND a Monday: 2026-02-02 is a Monday but an even day
    cron = parse("0 0 */2 * mon")
    assert next_tick(cron, UTC_Z, at(2026, 2, 1)) == at(2026, 2, 9)


def test_shorthands() -> None:
    assert next_tick(parse("@daily"), UTC_Z, at(2026, 5, 5, 13)) == at(2026, 5, 6)
    assert next_tick(parse("@monthly"), UTC_Z, at(2026, 12, 5)) == at(2027, 1, 1)


def test_leap_day_only_schedule_finds_the_next_leap_year() -> None:
    assert next_tick(parse("0 0 29 2 *"), UTC_Z, at(2026, 3, 1)) == at(2028, 2, 29)


@pytest.mark.parametrize(
    "text",
    [
        "",
        "* * * *",
        "61 * * * *",
        "* 24 * * *",
        "*/0 * * * *",
        "*/ * * * *",
        "5-1 * * * *",
        "x * * * *",
        "0 0 L * *",
        "@often",
        "0 0 30 2 *",
        "0 0 31 4,6,9,11 *",
    ],
)
def test_a_bad_expression_is_a_validation_failure(text: str) -> None:
    with pytest.raises(ValidationFailed):
        parse(text)


@pytest.mark.parametrize("name", ["Mars/Olympus", "America", "../../etc/passwd", ""])
def test_an_unknown_time_zone_is_named(name: str) -> None:
    with pytest.raises(InvalidCron, match="time zone"):
        zone(name)


def test_a_daily_tick_keeps_its_wall_time_across_dst() -> None:
    cron = parse("0 9 * * *")
    # Paris went to summer time on 2026-03-29: 09:00 stays 09:00 local, one hour less in UTC
    before = next_tick(cron, PARIS, at(2026, 3, 28, 9, 0, tz=PARIS))
    assert wall(before, PARIS) == "2026-03-29 09:00:00 CEST"
    assert before - at(2026, 3, 28, 9, 0, tz=PARIS) == 23 * 3600


def test_a_tick_in_the_skipped_hour_fires_that_much_later() -> None:
    # New York skipped 02:00-03:00 on 2026-03-08
    cron = parse("30 2 * * *")
    t = next_tick(cron, NEW_YORK, at(2026, 3, 7, 12, 0, tz=NEW_YORK))
    assert wall(t, NEW_YORK) == "2026-03-08 03:30:00 EDT"
    assert wall(next_tick(cron, NEW_YORK, t), NEW_YORK) == "2026-03-09 02:30:00 EDT"


def test_a_wall_time_in_the_repeated_hour_fires_once() -> None:
    # New York repeated 01:00-02:00 on 2026-11-01
    cron = parse("30 1 * * *")
    t = next_tick(cron, NEW_YORK, at(2026, 10, 31, 12, 0, tz=NEW_YORK))
    assert wall(t, NEW_YORK) == "2026-11-01 01:30:00 EDT"
    assert wall(next_tick(cron, NEW_YORK, t), NEW_YORK) == "2026-11-02 01:30:00 EST"


def test_hourly_ticks_across_the_fall_back_are_increasing_and_unique() -> None:
    cron = parse("*/30 * * * *")
    start = at(2026, 11, 1, 0, 0, tz=NEW_YORK)
    ticks = ticks_between(cron, NEW_YORK, start, start + 5 * 3600, 100)
    assert ticks == sorted(set(ticks))
    assert all(t % 1800 == 0 for t in ticks)


BRUTE = ["*/7 * * * * *", "13 */5 * * * *", "0 0 */3 * * *", "30 59 23 * * *", "*/20 4-6 * * 1"]


@pytest.mark.parametrize("text", BRUTE)
def test_the_next_tick_is_the_first_matching_second_found_by_brute_force(text: str) -> None:
    cron = parse(text)
    start = at(2026, 2, 28, 22, 58, 17)
    t = start
    for _ in range(5):
        expected = t + 1
        while not _matches(cron, expected):
            expected += 1
        t = next_tick(cron, UTC_Z, t)
        assert t == expected


def _matches(cron: object, t: int) -> bool:
    d = datetime.fromtimestamp(t, UTC)
    c: Any = cron
    return (
        d.second in c.seconds
        and d.minute in c.minutes
        and d.hour in c.hours
        and d.month in c.months
        and c._day_matches(d.replace(tzinfo=None))
    )
