"""A lease in Redis: who is the active orchestrator."""

from __future__ import annotations

import redis

from agentbus.bus.connection import translate_errors

_RENEW = """
local cur = redis.call('GET', KEYS[1])
if cur == ARGV[1] or not cur then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
return 0
"""

_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""


class Lease:
    """``acquire`` takes a free lease; ``renew`` keeps it (or retakes it after a flush)."""

    def __init__(self, conn: redis.Redis, name: str, owner: str, ttl_ms: int) -> None:
        self.conn = conn
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
def lease_holder(conn: redis.Redis, name: str = "orchestrator") -> tuple[str | None, float]:
    """Who holds the lease ``name`` and for how many more seconds (0 when nobody does)."""
    pipe = conn.pipeline(transaction=False)
    pipe.get(f"agentbus:lease:{name}")
    pipe.pttl(f"agentbus:lease:{name}")
    holder, ttl_ms = pipe.execute()
    if not isinstance(holder, bytes):
        return None, 0.0
    return holder.decode(), max(0.0, int(ttl_ms) / 1000)
