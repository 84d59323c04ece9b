"""Worker heartbeats: who is alive, what it serves, what it runs."""

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
LOST_TTL_MS = 3_600_000


class Fleet:
    def __init__(self, conn: redis.Redis, ttl_s: float = 10.0) -> None:
        self.conn = conn
        self.ttl_ms = int(ttl_s * 1000)

    @translate_errors
    def heartbeat(self, worker_id: str, info: dict[str, Any]) -> None:
        self.conn.set(PREFIX + worker_id, json.dumps({**info, "id": worker_id, "seen": time.time()}), px=self.ttl_ms)

    @translate_errors
    def beat(self, hb: Heartbeat) -> None:
        self.conn.set(PREFIX + hb.id, hb.to_json(), px=self.ttl_ms)

    @translate_errors
    def heartbeats(self) -> list[Heartbeat]:
        """The live workers' heartbeats (one that cannot be read is skipped)."""
        out = []
        for raw in self._values(PREFIX):
            try:
                out.append(Heartbeat.from_json(raw))
            except MessageRejected:
                continue
        return out

    def _values(self, prefix: str) -> list[bytes | str]:
        keys = list(self.conn.scan_iter(match=prefix + "*", count=500))
        return [v for v in self.conn.mget(keys) if v is not None] if keys else []

    @translate_errors
    def forget(self, worker_id: str) -> None:
        self.conn.delete(PREFIX + worker_id)

    @translate_errors
    def alive(self, worker_ids: Sequence[str]) -> dict[str, bool]:
        ids = list(dict.fromkeys(worker_ids))
        if not ids:
            return {}
        got = self.conn.mget([PREFIX + w for w in ids])
        return {w: v is not None for w, v in zip(ids, got, strict=True)}

    @translate_errors
    def workers(self) -> list[dict[str, Any]]:
        keys = list(self.conn.scan_iter(match=PREFIX + "*", count=500))
        if not keys:
            return []
        return [json.loads(v) for v in self.conn.mget(keys) if v is not None]

    @translate_errors
    def mark_lost(self, worker_id: str, info: dict[str, Any]) -> None:
        """Remember, for an hour, a worker that went silent (GET /workers shows it as lost)."""
        self.conn.set(LOST + worker_id, json.dumps({**info, "lost_at": time.time()}), px=LOST_TTL_MS)

    @translate_errors
    def lost(self) -> list[dict[str, Any]]:
        keys = list(self.conn.scan_iter(match=LOST + "*", count=500))
        if not keys:
            return []
        return [json.loads(v) for v in self.conn.mget(keys) if v is not None]
