"""The one retry and backoff rule of task calls, used by the worker (a call that raised) and the
reaper (a call that overran its timeout): tested without PostgreSQL or Redis."""

from __future__ import annotations

from agentbus.domain import TaskState
from agentbus.domain.retry import MAX_BACKOFF_S, after_failure, backoff_delay


def test_a_failed_call_retries_while_attempts_are_left_then_fails() -> None:
    # retries=2: three attempts in all
    assert after_failure(1, 2, 0.5, now=100.0).state is TaskState.RETRYING
    assert after_failure(2, 2, 0.5, now=100.0).state is TaskState.RETRYING
    last = after_failure(3, 2, 0.5, now=100.0)
    assert last.state is TaskState.FAILED and last.not_before is None and not last.retries


def test_a_call_without_retries_fails_on_its_first_failure() -> None:
    assert after_failure(1, 0, 0.5, now=0.0).state is TaskState.FAILED


def test_the_wait_doubles_per_attempt_from_the_backoff_base() -> None:
    assert [after_failure(a, 10, 0.5, now=100.0).not_before for a in (1, 2, 3, 4)] == [100.5, 101.0, 102.0, 104.0]


def test_no_wait_is_longer_than_the_cap() -> None:
    assert backoff_delay(0.5, 40) == MAX_BACKOFF_S
    assert after_failure(30, 100, 1.0, now=0.0).not_before == MAX_BACKOFF_S


def test_no_backoff_means_the_retry_is_due_at_once() -> None:
    assert after_failure(1, 3, 0.0, now=7.0).not_before == 7.0
