"""Circuit breakers around PostgreSQL and Redis: while one is down, fail fast with a 503."""

from __future__ import annotations

import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Any

from agentbus.domain import Unavailable

CLOSED, OPEN, HALF_OPEN = "closed", "open", "half-open"


def _counts(exc: BaseException) -> bool:
    """A lost or refused connection counts as a failure; a saturated pool (busy=True) is this
    process being busy, not the dependency being down, and any other error is an answer."""
    return isinstance(exc, Unavailable) and not exc.details.get("busy", False)


class Breaker:
    """closed → (``fail_max`` failures in a row) → open → (``reset_s`` later, one trial call) →
    closed if the trial succeeds, open again if it fails.

    The lock covers the state only, never the call: calls through one breaker run side by side.
    (pybreaker, used before, held its lock for the whole call, so all the API's threads made one
    PostgreSQL call at a time: the accept rate of ``POST /jobs`` was one round trip's.)
    """

    def __init__(self, name: str, fail_max: int, reset_s: float) -> None:
        self.name = name
        self.fail_max = fail_max
        self.reset_s = reset_s
        self._lock = threading.Lock()
        self._failures = 0
        self._opened_at: float | None = None  # monotonic; None while closed
        self._trial = False  # the half-open trial call is in flight

    @property
    def current_state(self) -> str:
        if self._opened_at is None:
            return CLOSED
        return HALF_OPEN if self._trial else OPEN

    def retry_after(self) -> float:
        opened = self._opened_at
        return 0.0 if opened is None else max(0.1, self.reset_s - (time.monotonic() - opened))

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        trial = self._enter()
        try:
            result = fn(*args, **kwargs)
        except BaseException as exc:
            self._after(trial, failed=_counts(exc))
            raise
        self._after(trial, failed=False)
        return result

    async def call_async(self, fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        trial = self._enter()
        try:
            result = await fn(*args, **kwargs)
        except BaseException as exc:
            self._after(trial, failed=_counts(exc))
            raise
        self._after(trial, failed=False)
        return result

    def _enter(self) -> bool:
        """Whether the call may go (True: it is the half-open trial); open: ``Unavailable``."""
        if self._opened_at is None:  # read without the lock: closed is the common case
            return False
        with self._lock:
            if self._opened_at is None:
                return False
            if self._trial or time.monotonic() - self._opened_at < self.reset_s:
                raise Unavailable(f"{self.name} is unavailable (circuit open); retry shortly")
            self._trial = True
            return True

    def _after(self, trial: bool, failed: bool) -> None:
        if not failed:
            if self._failures or trial:
                with self._lock:
                    self._failures = 0
                    if trial:
                        self._opened_at, self._trial = None, False
            return
        with self._lock:
            self._failures += 1
            if trial:
                self._trial = False
            if trial or self._failures >= self.fail_max:
                self._opened_at = time.monotonic()


class Guarded:
    """A proxy that runs every method of ``target`` through a circuit breaker.

    Only ``Unavailable`` (a lost or refused connection, not a busy pool) counts as a failure; after
    ``fail_max`` in a row the breaker opens and calls fail at once with ``Unavailable`` instead of
    waiting on a dead connection. After ``reset_s`` one call is let through; if it succeeds the
    breaker closes.
    """

    def __init__(self, target: Any, name: str, fail_max: int, reset_s: float) -> None:
        self._target = target
        self._name = name
        self.breaker = Breaker(name, fail_max, reset_s)

    def over(self, target: Any) -> Guarded:
        """The same breaker around another object of the same dependency (the repositories of
        one database): failures through any of them open it for all."""
        other = Guarded.__new__(Guarded)
        other._target, other._name, other.breaker = target, self._name, self.breaker
        return other

    def retry_after(self) -> float:
        return self.breaker.retry_after()

    def call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        return self.breaker.call(fn, *args, **kwargs)

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._target, attr)
        if not inspect.isroutine(value):  # attributes pass through, callable ones (a database) too
            return value

        if inspect.iscoroutinefunction(value):

            @functools.wraps(value)
            async def guarded_async(*args: Any, **kwargs: Any) -> Any:
                return await self.breaker.call_async(value, *args, **kwargs)

            setattr(self, attr, guarded_async)
            return guarded_async

        @functools.wraps(value)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            return self.call(value, *args, **kwargs)

        setattr(self, attr, guarded)  # made once: the next lookup finds it without __getattr__
        return guarded


def breaker_states(guards: list[Any]) -> dict[str, str]:
    """Each dependency's worst breaker state (several proxies share a dependency's name)."""
    order = {CLOSED: 0, HALF_OPEN: 1, OPEN: 2}
    out: dict[str, str] = {}
    for g in guards:
        state = str(g.breaker.current_state)
        if order.get(state, 2) >= order.get(out.get(g._name, CLOSED), 0):
            out[g._name] = state
    return out
