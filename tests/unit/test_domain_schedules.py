"""The catch-up rule: which ticks of a schedule fire after the firing stopped for a while."""

from __future__ import annotations

from datetime import UTC as UTC_DT
from datetime import datetime

import pytest

from agentbus.domain.cron import parse, zone
from agentbus.domain.errors import ValidationFailed
from agentbus.domain.schedules import CATCH_UP_MAX, ON_TIME_S, CatchUp, Schedule, catch_up_policy, plan

UTC = zone("UTC")
HOURLY = parse("0 * * * *")
EVERY_SECOND = parse("* * * * * *")
H = 3600
T0 = 1_800_000_000 - 1_800_000_000 % H  # a whole hour


def test_nothing_fires_before_the_tick() -> None:
    assert plan(HOURLY, UTC, T0, T0 - 1, CatchUp.LATEST).fire == ()


@pytest.mark.parametrize("policy", list(CatchUp))
def test_a_tick_looked_at_on_time_fires_once_whatever_the_policy(policy: CatchUp) -> None:
    f = plan(HOURLY, UTC, T0, T0 + 2, policy)
    assert f.fire == (T0,)
    assert f.skipped == 0
    assert f.next_tick == T0 + H


def test_latest_fires_only_the_most_recent_missed_tick() -> None:
    f = plan(HOURLY, UTC, T0, T0 + 5 * H + 10, CatchUp.LATEST)
    assert f.fire == (T0 + 5 * H,)
    assert f.skipped == 5
    assert f.next_tick == T0 + 6 * H


def test_skip_fires_nothing_missed_past_the_grace() -> None:
    f = plan(HOURLY, UTC, T0, T0 + 5 * H + ON_TIME_S + 1, CatchUp.SKIP)
    assert f.fire == ()
    assert f.skipped == 6
    assert f.next_tick == T0 + 6 * H


def test_skip_still_fires_a_tick_a_failover_delayed() -> None:
    assert plan(HOURLY, UTC, T0, T0 + 11, CatchUp.SKIP).fire == (T0,)


def test_all_fires_every_missed_tick_oldest_first() -> None:
    f = plan(HOURLY, UTC, T0, T0 + 3 * H, CatchUp.ALL)
    assert f.fire == (T0, T0 + H, T0 + 2 * H, T0 + 3 * H)
    assert f.next_tick == T0 + 4 * H


def test_all_is_capped_at_the_most_recent_ticks() -> None:
    now = T0 + 86_400  # a day down, a tick a second
    f = plan(EVERY_SECOND, UTC, T0, now, CatchUp.ALL)
    assert len(f.fire) == CATCH_UP_MAX
    assert f.fire[-1] == now
    assert list(f.fire) == list(range(now - CATCH_UP_MAX + 1, now + 1))
    assert f.skipped >= 1
    assert f.next_tick == now + 1


def test_latest_after_a_long_downtime_of_a_dense_schedule() -> None:
    now = T0 + 86_400 + 0.5
    f = plan(EVERY_SECOND, UTC, T0, now, CatchUp.LATEST)
    assert f.fire == (T0 + 86_400,)
    assert f.next_tick == T0 + 86_401


def test_a_due_tick_that_is_no_tick_of_the_expression_starts_afresh() -> None:
    f = plan(HOURLY, UTC, T0 + 17, T0 + 30, CatchUp.ALL)
    assert f.fire == ()
    assert f.next_tick == T0 + H


def test_a_schedule_is_checked_field_by_field() -> None:
    Schedule("0 9 * * mon-fri", timezone="Europe/Paris").check()
    with pytest.raises(ValidationFailed, match="catch-up"):
        Schedule("0 * * * *", catch_up="never").check()
    with pytest.raises(ValidationFailed, match="time zone"):
        Schedule("0 * * * *", timezone="Nowhere/Else").check()
    assert catch_up_policy("all") == CatchUp.ALL


def test_due_time_reads_an_offset_time_epoch_seconds_or_a_delay() -> None:
    from agentbus.domain.schedules import due_time

    now = 1_800_000_000.0
    assert due_time(None, None, now) is None
    assert due_time(None, 30, now) == now + 30
    assert due_time(now + 5, None, now) == now + 5
    assert due_time("2027-01-15T08:00:00+00:00", None, now) == datetime(2027, 1, 15, 8, tzinfo=UTC_DT).timestamp()
    assert due_time("2027-01-15T09:00:00+01:00", None, now) == due_time("2027-01-15T08:00:00Z", None, now)
    assert due_time(now - 100, None, now) == now - 100  # past: due at once


@pytest.mark.parametrize(
    ("run_at", "delay", "where"),
    [
        (1.0, 1.0, "delay"),
        (None, -1.0, "delay"),
        ("tomorrow", None, "run_at"),
        ("2027-01-15T08:00:00", None, "run_at"),  # no offset
        (-5.0, None, "run_at"),
        (None, 400 * 86_400.0, "delay"),
    ],
)
def test_due_time_refuses_what_it_cannot_place(run_at: str | float | None, delay: float | None, where: str) -> None:
    from agentbus.domain.schedules import due_time

    with pytest.raises(ValidationFailed) as err:
        due_time(run_at, delay, 1_800_000_000.0)
    assert err.value.errors[0]["loc"] == ["body", where]


def test_the_apis_catch_up_choices_are_the_policies() -> None:
    from typing import get_args

    from agentbus.api.schedules import CreateSchedule

    assert set(get_args(CreateSchedule.model_fields["catch_up"].annotation)) == {c.value for c in CatchUp}
