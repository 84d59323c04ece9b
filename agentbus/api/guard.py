"""Circuit breakers around PostgreSQL and Redis: while one is down, fail fast with a 503."""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Callable
from typing import Any

import pybreaker

from agentbus.domain import Unavailable


class Guarded:
    """A proxy that runs every method of ``target`` through a circuit breaker.

    Only ``Unavailable`` (a lost or refused connection, not a busy pool) counts as a failure; after
    ``fail_max`` in a row the breaker opens and calls fail at once with ``Unavailable`` —
    carrying how long until it tries again — instead of waiting on a dead connection. After
    ``reset_s`` one call is let through; if it succeeds the breaker closes.
    """

    def __init__(self, target: Any, name: str, fail_max: int, reset_s: float) -> None:
        self._target = target
        self._name = name
        self.breaker = pybreaker.CircuitBreaker(
            fail_max=fail_max,
            reset_timeout=reset_s,
            # a saturated pool (busy=True) is this process being busy, not the dependency being down
            exclude=[lambda e: not isinstance(e, Unavailable) or e.details.get("busy", False)],
            throw_new_error_on_trip=False,
            name=name,
        )
        self._opened_at = [0.0]  # shared with the proxies ``over`` makes

    def over(self, target: Any) -> Guarded:
        """The same breaker around another object of the same dependency (the repositories of
        one database): failures through any of them open it for all."""
        other = Guarded.__new__(Guarded)
        other._target, other._name, other.breaker, other._opened_at = target, self._name, self.breaker, self._opened_at
        return other

    def retry_after(self) -> float:
        return max(0.1, self.breaker.reset_timeout - (time.monotonic() - self._opened_at[0]))

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return self.breaker.call(fn, *args, **kwargs)
        except pybreaker.CircuitBreakerError:
            raise Unavailable(f"{self._name} is unavailable (circuit open); retry shortly") from None
        except Unavailable:
            if self.breaker.current_state == pybreaker.STATE_OPEN:
                self._opened_at[0] = time.monotonic()
            raise

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if not inspect.isroutine(value):  # attributes pass through, callable ones (a database) too
            return value

        @functools.wraps(value)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return self.call(value, *args, **kwargs)

        return guarded


def breaker_states(guards: list[Any]) -> dict[str, str]:
    """Each dependency's worst breaker state (several proxies share a dependency's name)."""
    order = {"closed": 0, "half-open": 1, "open": 2}
    out: dict[str, str] = {}
    for g in guards:
        state = str(g.breaker.current_state)
        if order.get(state, 2) >= order.get(out.get(g._name, "closed"), 0):
            out[g._name] = state
    return out
