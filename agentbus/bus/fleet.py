"""Worker heartbeats: who is alive, what it serves, what it runs.

Each worker's heartbeat is a key that expires (``worker_ttl_s``), and its id is also in a set,
``agentbus:workers``, which is how the fleet is listed. Listing by ``SCAN`` walked the whole Redis
keyspace, 500 keys a round trip: with the replay guard's nonces and RQ's job hashes of a busy hour
in it, the orchestrator's routing read (once a second) took hundreds of round trips and stalled the
loop (docs/benchmarks.md, seventh pass). One script reads the set's heartbeats and drops from it
the ids whose key has expired, in one step, so that a worker beating again at that moment is never
dropped with them. Workers that went silent are kept the same way (``lost``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from typing import Any

import redis

from agentbus.bus.connection import translate_errors
from agentbus.domain.errors import MessageRejected
from agentbus.domain.messages import Heartbeat

PREFIX = "agentbus:worker:"
LOST = "agentbus:worker-lost:"
LIVE_SET = "agentbus:workers"
LOST_SET = "agentbus:workers-lost"
LOST_TTL_MS = 3_600_000

# KEYS[1]: the set of ids; ARGV[1]: the prefix of their keys. The values of the keys still there;
# the ids of those gone are dropped from the set.
_LISTED = """
local out = {}
for _, id in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local v = redis.call('GET', ARGV[1] .. id)
  if v then out[#out + 1] = v else redis.call('SREM', KEYS[1], id) end
end
return out
"""


class Fleet:
    def __init__(self, conn: redis.Redis, ttl_s: float = 10.0) -> None:
        self.conn = conn
        self.ttl_ms = int(ttl_s * 1000)
        self._listed = conn.register_script(_LISTED)

    @translate_errors
    def heartbeat(self, worker_id: str, info: dict[str, Any]) -> None:
        self._set(LIVE_SET, PREFIX, worker_id, json.dumps({**info, "id": worker_id, "seen": time.time()}), self.ttl_ms)

    @translate_errors
    def beat(self, hb: Heartbeat) -> None:
        self._set(LIVE_SET, PREFIX, hb.id, hb.to_json(), self.ttl_ms)

    def _set(self, listed_in: str, prefix: str, worker_id: str, value: str, ttl_ms: int) -> None:
        pipe = self.conn.pipeline(transaction=False)
        pipe.set(prefix + worker_id, value, px=ttl_ms)
        pipe.sadd(listed_in, worker_id)
        pipe.execute()

    @translate_errors
    def heartbeats(self) -> list[Heartbeat]:
        """The live workers' heartbeats (one that cannot be read is skipped)."""
        out = []
        for raw in self._values(LIVE_SET, PREFIX):
            try:
                out.append(Heartbeat.from_json(raw))
            except MessageRejected:
                continue
        return out

    def _values(self, listed_in: str, prefix: str) -> list[bytes]:
        return list(self._listed(keys=[listed_in], args=[prefix]))

    @translate_errors
    def forget(self, worker_id: str) -> None:
        pipe = self.conn.pipeline(transaction=False)
        pipe.delete(PREFIX + worker_id)
        pipe.srem(LIVE_SET, worker_id)
        pipe.execute()

    @translate_errors
    def alive(self, worker_ids: Sequence[str]) -> dict[str, bool]:
        ids = list(dict.fromkeys(worker_ids))
        if not ids:
            return {}
        got = self.conn.mget([PREFIX + w for w in ids])
        return {w: v is not None for w, v in zip(ids, got, strict=True)}

    @translate_errors
    def workers(self) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self._values(LIVE_SET, PREFIX)]

    @translate_errors
    def mark_lost(self, worker_id: str, info: dict[str, Any]) -> None:
        """Remember, for an hour, a worker that went silent (GET /workers shows it as lost)."""
        self._set(LOST_SET, LOST, worker_id, json.dumps({**info, "lost_at": time.time()}), LOST_TTL_MS)

    @translate_errors
    def lost(self) -> list[dict[str, Any]]:
        return [json.loads(v) for v in self._values(LOST_SET, LOST)]
