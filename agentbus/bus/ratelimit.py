"""Rate limits in Redis: GCRA (the generic cell rate algorithm), several buckets in one atomic script.

A request passes only if every bucket it is charged to (its API key, its tenant) has room;
a refused request is charged to none. Holding the state in Redis makes a limit hold across
every API replica.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import redis
from redis import asyncio as aioredis
from redis.commands.core import AsyncScript

from agentbus.bus.connection import translate_errors
from agentbus.domain.errors import Unavailable

_GCRA = """
local now = tonumber(ARGV[1])
local n = #KEYS
local tats = {}
for i = 1, n do
  local t = tonumber(ARGV[2 * i])      -- emission interval (ms)
  local tau = tonumber(ARGV[2 * i + 1]) -- burst tolerance (ms)
  local tat = tonumber(redis.call('GET', KEYS[i]) or now)
  if tat < now then tat = now end
  if tat - now > tau then
    return {0, i, tat - tau - now}
  end
  tats[i] = tat + t
end
local remaining = -1
local reset = 0
for i = 1, n do
  local t = tonumber(ARGV[2 * i])
  local tau = tonumber(ARGV[2 * i + 1])
  redis.call('SET', KEYS[i], tats[i], 'PX', math.ceil(tats[i] - now + t))
  local left = math.floor((tau - (tats[i] - now - t)) / t)
  if remaining < 0 or left < remaining then remaining = left; reset = tats[i] - now end
end
return {1, remaining, reset}
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
    thread hop (the API's auth, once per request: the hop cost more than the script)."""

    def __init__(self, conn: redis.Redis, prefix: str = "agentbus:rl:", url: str | None = None) -> None:
        self.conn = conn
        self.prefix = prefix
        self._script = conn.register_script(_GCRA)
        self._url = url
        self._aconn: aioredis.Redis | None = None
        self._ascript: AsyncScript | None = None

    @translate_errors
    def hit(self, buckets: Sequence[tuple[str, Rate]]) -> Verdict:
        keys, args = self._request(buckets)
        return _verdict(buckets, self._script(keys=keys, args=args))

    async def start(self) -> None:
        """The asyncio client, bound to the running loop (the API's lifespan)."""
        if self._url is not None and self._aconn is None:
            self._aconn = aioredis.Redis.from_url(self._url, socket_connect_timeout=5, health_check_interval=30)
            self._ascript = self._aconn.register_script(_GCRA)

    async def stop(self) -> None:
        conn, self._aconn, self._ascript = self._aconn, None, None
        if conn is not None:
            await conn.aclose()

    @property
    def on_loop(self) -> bool:
        """``hit_async`` may be called (on the loop that ran ``start``)."""
        return self._ascript is not None

    async def hit_async(self, buckets: Sequence[tuple[str, Rate]]) -> Verdict:
        if self._ascript is None:
            raise RuntimeError("RateLimiter.hit_async before start()")
        keys, args = self._request(buckets)
        try:
            reply = await self._ascript(keys=keys, args=args)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise Unavailable(f"redis unavailable: {exc}") from None
        return _verdict(buckets, reply)

    def _request(self, buckets: Sequence[tuple[str, Rate]]) -> tuple[list[str], list[float]]:
        keys = [self.prefix + name for name, _ in buckets]
        args: list[float] = [time.time() * 1000]
        for _, rate in buckets:
            t = 1000.0 / rate.per_second
            args += [t, t * (rate.burst - 1)]
        return keys, args


def _verdict(buckets: Sequence[tuple[str, Rate]], reply: Any) -> Verdict:
    ok, a, b = reply
    limit = min(r.burst for _, r in buckets)
    if int(ok) == 1:
        return Verdict(True, limit, max(0, int(a)), float(b) / 1000, 0.0)
    return Verdict(False, limit, 0, float(b) / 1000, max(0.001, float(b) / 1000))
