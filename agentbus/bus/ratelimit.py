"""Rate limits in Redis: GCRA (the generic cell rate algorithm), several buckets in one atomic script.

A request passes only if every bucket it is charged to (its API key, its tenant) has room;
a refused request is charged to none. Holding the state in Redis makes a limit hold across
every API replica.

The script charges ``n`` requests at once and admits the first ``k`` that fit, exactly as ``n``
calls in a row at the same instant would. The API charges from its event loop in batches:
while one charge for a set of buckets is in flight, the requests that arrive for the same set
wait and go together in the next script call. Every admitted request is still counted in
Redis before it is admitted, so a limit stays exact across replicas; under a burst of
clients one round trip charges many of them (the script was the API's biggest cost per
request, docs/benchmarks.md, issue 10).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis import asyncio as aioredis
from redis.commands.core import AsyncScript

from agentbus.bus.connection import translate_errors
from agentbus.domain.errors import Unavailable

# ARGV: now (ms), n, then per bucket its emission interval t and burst tolerance tau (ms).
# Returns k (how many of the n are admitted) and, per bucket, how far its theoretical arrival
# time was ahead of now before the charge (ms, as a string: Redis would truncate a number).
_GCRA = """
local now = tonumber(ARGV[1])
local k = tonumber(ARGV[2])
local n = #KEYS
local ahead = {}
for i = 1, n do
  local t = tonumber(ARGV[2 * i + 1])
  local tau = tonumber(ARGV[2 * i + 2])
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  ahead[i] = tat - now
  local fit = math.floor((tau - ahead[i]) / t + 1e-9) + 1
  if fit < k then k = fit end
end
if k < 0 then k = 0 end
local out = {k}
for i = 1, n do
  if k > 0 then
    local t = tonumber(ARGV[2 * i + 1])
    local tat = now + ahead[i] + k * t
    redis.call('SET', KEYS[i], tat, 'PX', math.ceil(tat - now + t))
  end
  out[i + 1] = tostring(ahead[i])
end
return out
"""


@dataclass(frozen=True)
class Rate:
    """``per_second`` sustained, ``burst`` at once."""

    per_second: float
    burst: int

    @classmethod
    def parse(cls, text: str) -> Rate:
        """``"50/s:100"`` (rate per second : burst), or ``"600/m:100"``."""
        rate, _, burst = text.partition(":")
        count, _, unit = rate.partition("/")
        seconds = {"s": 1.0, "m": 60.0, "h": 3600.0}.get(unit.strip() or "s")
        if seconds is None:
            raise ValueError(f"rate unit must be s, m or h: {text!r}")
        per_second = float(count) / seconds
        b = int(burst) if burst else max(1, int(per_second))
        if per_second <= 0 or b < 1:
            raise ValueError(f"rate and burst must be positive: {text!r}")
        return cls(per_second, b)

    @property
    def interval_ms(self) -> float:
        return 1000.0 / self.per_second

    @property
    def tolerance_ms(self) -> float:
        return self.interval_ms * (self.burst - 1)


Buckets = Sequence[tuple[str, Rate]]


@dataclass(frozen=True)
class Verdict:
    allowed: bool
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float


class RateLimiter:
    """The buckets in Redis. ``hit`` blocks (call it on a thread); with a ``url``, ``start`` on an
    event loop opens an asyncio client beside it and ``hit_async`` charges from that loop, with no
    thread hop (the API's auth, once per request: the hop cost more than the script), batched with
    the other requests for the same buckets that arrive while a charge is in flight."""

    def __init__(self, conn: redis.Redis, prefix: str = "agentbus:rl:", url: str | None = None) -> None:
        self.conn = conn
        self.prefix = prefix
        self._script = conn.register_script(_GCRA)
        self._url = url
        self._aconn: aioredis.Redis | None = None
        self._ascript: AsyncScript | None = None
        # per set of buckets with a charge in flight: the requests waiting for the next one
        self._queued: dict[tuple[tuple[str, Rate], ...], list[asyncio.Future[Verdict]]] = {}
        self._chargers: set[asyncio.Task[None]] = set()

    @translate_errors
    def hit(self, buckets: Buckets) -> Verdict:
        keys, args = self._request(buckets, 1)
        return _verdicts(buckets, self._script(keys=keys, args=args), 1)[0]

    async def start(self) -> None:
        """The asyncio client, bound to the running loop (the API's lifespan)."""
        if self._url is not None and self._aconn is None:
            self._aconn = aioredis.Redis.from_url(self._url, socket_connect_timeout=5, health_check_interval=30)
            self._ascript = self._aconn.register_script(_GCRA)

    async def stop(self) -> None:
        conn, self._aconn, self._ascript = self._aconn, None, None
        for task in list(self._chargers):
            task.cancel()
        if conn is not None:
            await conn.aclose()

    @property
    def on_loop(self) -> bool:
        """``hit_async`` may be called (on the loop that ran ``start``)."""
        return self._ascript is not None

    async def hit_async(self, buckets: Buckets) -> Verdict:
        if self._ascript is None:
            raise RuntimeError("RateLimiter.hit_async before start()")
        key = tuple(buckets)
        waiting: asyncio.Future[Verdict] = asyncio.get_running_loop().create_future()
        queue = self._queued.get(key)
        if queue is None:  # nothing in flight for these buckets: charge on the loop's next turn
            self._queued[key] = [waiting]
            task = asyncio.create_task(self._charge(key))
            self._chargers.add(task)
            task.add_done_callback(self._chargers.discard)
        else:
            queue.append(waiting)
        return await waiting

    async def _charge(self, key: tuple[tuple[str, Rate], ...]) -> None:
        """Charge whoever is queued for ``key``, one script call at a time, until nobody is."""
        try:
            while batch := self._queued.get(key):
                self._queued[key] = []  # arrivals from now on wait for the next call
                batch = [w for w in batch if not w.done()]  # a client that left is not charged
                if not batch:
                    continue
                try:
                    verdicts = await self._charge_now(key, len(batch))
                except Exception as exc:
                    for w in batch:
                        if not w.done():
                            w.set_exception(_copy(exc))
                    continue
                except BaseException:  # cancelled (the API stopping): the batch is told below
                    self._queued.setdefault(key, []).extend(batch)
                    raise
                for w, v in zip(batch, verdicts, strict=True):
                    if not w.done():
                        w.set_result(v)
        finally:
            for w in self._queued.pop(key, []):
                if not w.done():
                    w.set_exception(Unavailable("rate limiter stopped"))

    async def _charge_now(self, buckets: Buckets, n: int) -> list[Verdict]:
        if self._ascript is None:
            raise Unavailable("rate limiter stopped")
        keys, args = self._request(buckets, n)
        try:
            reply = await self._ascript(keys=keys, args=args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise Unavailable(f"redis unavailable: {exc}") from None
        return _verdicts(buckets, reply, n)

    def _request(self, buckets: Buckets, n: int) -> tuple[list[str], list[float]]:
        keys = [self.prefix + name for name, _ in buckets]
        args: list[float] = [time.time() * 1000, n]
        for _, rate in buckets:
            args += [rate.interval_ms, rate.tolerance_ms]
        return keys, args


def _copy(exc: Exception) -> Exception:
    """One exception per waiter (raising one instance in many tasks chains their tracebacks)."""
    if isinstance(exc, Unavailable):
        return Unavailable(exc.message)
    return exc


def _verdicts(buckets: Buckets, reply: Any, n: int) -> list[Verdict]:
    """The verdict of each of the ``n`` requests charged together, in order: the first ``k`` passed."""
    k = int(reply[0])
    ahead = [float(a) for a in reply[1:]]
    rates = [r for _, r in buckets]
    limit = min(r.burst for r in rates)
    out: list[Verdict] = []
    for j in range(min(k, n)):
        remaining, reset = -1, 0.0
        for a, r in zip(ahead, rates, strict=True):
            t = r.interval_ms
            left = math.floor((r.tolerance_ms - a - j * t) / t + 1e-9)
            if remaining < 0 or left < remaining:
                remaining, reset = left, a + (j + 1) * t
        out.append(Verdict(True, limit, max(0, remaining), reset / 1000, 0.0))
    if k < n:
        # the refused wait until the most loaded bucket has room again after the admitted
        wait = max(a + k * r.interval_ms - r.tolerance_ms for a, r in zip(ahead, rates, strict=True)) / 1000
        refused = Verdict(False, limit, 0, max(0.0, wait), max(0.001, wait))
        out += [refused] * (n - k)
    return out
