"""The retention rule: what is old enough to delete, without a database."""

from __future__ import annotations

import pytest

from agentbus.domain import InvalidInput, JobState
from agentbus.domain.retention import (
    DEFAULT_RETENTION_S,
    cutoff,
    job_is_purgeable,
    memory_item_is_purgeable,
    parse_age,
)

DAY = 86_400.0
NOW = 1_000 * DAY
BEFORE = cutoff(NOW, 30 * DAY)


def test_the_default_keeps_thirty_days() -> None:
    assert DEFAULT_RETENTION_S == 30 * DAY
    assert BEFORE == NOW - 30 * DAY


@pytest.mark.parametrize("state", [JobState.SUCCEEDED, JobState.FAILED, JobState.CANCELLED])
def test_a_job_finished_before_the_cutoff_goes(state: JobState) -> None:
    assert job_is_purgeable(state, NOW - 31 * DAY, BEFORE)


@pytest.mark.parametrize("state", [JobState.SUBMITTED, JobState.RUNNING, JobState.WAITING_HUMAN])
def test_an_open_job_stays_however_old(state: JobState) -> None:
    assert not job_is_purgeable(state, None, BEFORE)
    # even a (corrupt) finish time on an open job does not make it deletable
    assert not job_is_purgeable(state, NOW - 365 * DAY, BEFORE)


def test_a_job_finished_within_the_retention_stays() -> None:
    assert not job_is_purgeable(JobState.SUCCEEDED, NOW - 29 * DAY, BEFORE)
    assert not job_is_purgeable(JobState.SUCCEEDED, BEFORE, BEFORE)  # exactly at the cutoff: kept


def test_a_child_stays_while_its_parent_is_kept() -> None:
    assert not job_is_purgeable(JobState.SUCCEEDED, NOW - 40 * DAY, BEFORE, parent_kept=True)
    assert job_is_purgeable(JobState.SUCCEEDED, NOW - 40 * DAY, BEFORE, parent_kept=False)


def test_a_memory_item_goes_once_expired_and_never_without_an_expiry() -> None:
    assert memory_item_is_purgeable(NOW - 1, NOW)
    assert memory_item_is_purgeable(NOW, NOW)
    assert not memory_item_is_purgeable(NOW + 1, NOW)
    assert not memory_item_is_purgeable(None, NOW)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("30d", 30 * DAY),
        ("12h", 12 * 3600.0),
        ("15m", 900.0),
        ("90s", 90.0),
        ("2w", 14 * DAY),
        ("45", 45.0),
        (" 1.5d ", 1.5 * DAY),
    ],
)
def test_ages_read_as_people_write_them(text: str, seconds: float) -> None:
    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["", "d", "30x", "-1d", "0d", "0", "thirty days", "1e3d"])
def test_an_unreadable_or_empty_age_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_age(text)
