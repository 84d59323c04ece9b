"""Leases in Redis: which orchestrator holds each shard, and which orchestrators are live."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from agentbus.bus.connection import translate_errors
from agentbus.domain.shards import shard_key

_RENEW = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] or not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

# Server time, not the caller's: orchestrators on hosts with skewed clocks still agree who is live.
_BEAT = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[1])
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return redis.call('ZCARD', KEYS[1])
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    """``acquire`` takes a free lease; ``renew`` keeps it (or retakes it after a flush)."""

    def __init__(self, conn: redis.Redis, name: str, owner: str, ttl_ms: int) -> None:
        self.conn = conn
        self.name = name
        self.key = f"agentbus:lease:{name}"
        self.owner = owner
        self.ttl_ms = ttl_ms
        self._renew = conn.register_script(_RENEW)
        self._release = conn.register_script(_RELEASE)

    @translate_errors
    def acquire(self) -> bool:
        return bool(self.conn.set(self.key, self.owner, nx=True, px=self.ttl_ms)) or self.renew()

    @translate_errors
    def renew(self) -> bool:
        return bool(self._renew(keys=[self.key], args=[self.owner, self.ttl_ms]))

    @translate_errors
    def release(self) -> None:
        self._release(keys=[self.key], args=[self.owner])

    @translate_errors
    def holder(self) -> str | None:
        v = self.conn.get(self.key)
        return v.decode() if isinstance(v, bytes) else None


@translate_errors
def renew_all(conn: redis.Redis, leases: Sequence[Lease]) -> list[bool]:
    """``renew`` of each lease, in one round trip: K shards cost no more Redis calls than one."""
    if not leases:
        return []
    pipe = conn.pipeline(transaction=False)
    for lease in leases:
        lease._renew(keys=[lease.key], args=[lease.owner, lease.ttl_ms], client=pipe)
    return [bool(v) for v in pipe.execute()]


def lease_name(shard: int) -> str:
    """Shard 0's lease is the one lease of an unpartitioned deployment (``orchestrator``)."""
    return shard_key("orchestrator", shard)


@translate_errors
def free_leases(conn: redis.Redis, names: Sequence[str]) -> list[bool]:
    """Whether each lease is free (nobody holds it), in one round trip."""
    pipe = conn.pipeline(transaction=False)
    for name in names:
        pipe.exists(f"agentbus:lease:{name}")
    return [not held for held in pipe.execute()]


class Roster:
    """The live orchestrators: each beats with a TTL; whoever stops beating drops out after it."""

    KEY = "agentbus:orchestrators"

    def __init__(self, conn: redis.Redis, owner: str, ttl_ms: int) -> None:
        self.conn = conn
        self.owner = owner
        self.ttl_ms = ttl_ms
        self._beat = conn.register_script(_BEAT)

    @translate_errors
    def beat(self) -> int:
        """Say this orchestrator is live; returns how many are (itself included)."""
        return int(self._beat(keys=[self.KEY], args=[self.owner, self.ttl_ms]))

    @translate_errors
    def leave(self) -> None:
        self.conn.zrem(self.KEY, self.owner)


@translate_errors
def lease_holder(conn: redis.Redis, name: str = "orchestrator") -> tuple[str | None, float]:
    """Who holds the lease ``name`` and for how many more seconds (0 when nobody does)."""
    pipe = conn.pipeline(transaction=False)
    pipe.get(f"agentbus:lease:{name}")
    pipe.pttl(f"agentbus:lease:{name}")
    holder, ttl_ms = pipe.execute()
    if not isinstance(holder, bytes):
        return None, 0.0
    return holder.decode(), max(0.0, int(ttl_ms) / 1000)
