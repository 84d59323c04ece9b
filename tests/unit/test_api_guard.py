"""One circuit breaker per dependency: the API's repositories of one database share it."""

from __future__ import annotations

import pytest

from agentbus.api.guard import Guarded, breaker_states
from agentbus.domain import Unavailable


class _Down:
    def __init__(self) -> None:
        self.calls = 0

    def read(self) -> None:
        self.calls += 1
        raise Unavailable("database unavailable: connection refused")


def test_failures_through_one_repository_open_the_breaker_for_every_other() -> None:
    pg = Guarded(None, "PostgreSQL", fail_max=3, reset_s=60.0)
    jobs, keys = _Down(), _Down()
    guarded_jobs, guarded_keys = pg.over(jobs), pg.over(keys)
    for _ in range(3):
        with pytest.raises(Unavailable):
            guarded_jobs.read()
    with pytest.raises(Unavailable, match="circuit open"):
        guarded_keys.read()
    assert keys.calls == 0  # failed fast: the dead connection was never tried
    assert breaker_states([pg, guarded_keys]) == {"PostgreSQL": "open"}


def test_a_busy_pool_does_not_open_the_shared_breaker() -> None:
    class Busy:
        def read(self) -> None:
            raise Unavailable("every database connection of this process is busy", busy=True)

    pg = Guarded(None, "PostgreSQL", fail_max=2, reset_s=60.0)
    busy = pg.over(Busy())
    for _ in range(4):
        with pytest.raises(Unavailable, match="busy"):
            busy.read()
    assert breaker_states([pg]) == {"PostgreSQL": "closed"}


def test_calls_through_one_breaker_run_side_by_side() -> None:
    """A slow call holds no lock: another repository's call goes through meanwhile."""
    import threading

    pg = Guarded(None, "PostgreSQL", fail_max=3, reset_s=60.0)
    inside, release = threading.Event(), threading.Event()

    class Slow:
        def read(self) -> str:
            inside.set()
            assert release.wait(10)
            return "slow"

    class Quick:
        def read(self) -> str:
            return "quick"

    out: list[str] = []
    slow = threading.Thread(target=lambda: out.append(pg.over(Slow()).read()))
    slow.start()
    assert inside.wait(10)
    try:
        assert pg.over(Quick()).read() == "quick"  # pybreaker held its lock here until "slow" returned
    finally:
        release.set()
        slow.join(10)
    assert out == ["slow"]


def test_after_the_reset_time_one_trial_call_closes_or_reopens_the_breaker() -> None:
    pg = Guarded(None, "PostgreSQL", fail_max=1, reset_s=0.0)  # a trial is due at once
    down = pg.over(_Down())
    with pytest.raises(Unavailable, match="connection refused"):
        down.read()
    assert breaker_states([pg]) == {"PostgreSQL": "open"}
    with pytest.raises(Unavailable, match="connection refused"):  # the trial was let through, and failed
        down.read()
    assert breaker_states([pg]) == {"PostgreSQL": "open"}

    class Up:
        def read(self) -> str:
            return "ok"

    assert pg.over(Up()).read() == "ok"
    assert breaker_states([pg]) == {"PostgreSQL": "closed"}
