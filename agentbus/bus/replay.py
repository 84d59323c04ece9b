"""Recognising replayed messages: each signed envelope's nonce may be acted on once."""

from __future__ import annotations

from collections.abc import Sequence

import redis

from agentbus.bus.connection import translate_errors

PREFIX = "agentbus:seen:"


class ReplayGuard:
    """Remembers nonces for as long as a message is valid (after that it is refused as expired)."""

    def __init__(self, conn: redis.Redis, ttl_s: float) -> None:
        self.conn = conn
        self.ttl_ms = max(1000, int(ttl_s * 1000))

    @translate_errors
    def first_sight(self, items: Sequence[tuple[str, str]]) -> list[bool]:
        """For each (nonce, delivery): is this the message's first delivery, or a redelivery of the same one?

        ``delivery`` names one delivery of the message (a stream entry id: claiming an entry
        delivers it again under the same id). The same nonce under another delivery is a replay.
        """
        if not items:
            return []
        pipe = self.conn.pipeline(transaction=False)
        for nonce, delivery in items:
            pipe.set(PREFIX + nonce, delivery, nx=True, px=self.ttl_ms)
        fresh = pipe.execute()
        out = [bool(f) for f in fresh]
        again = [i for i, f in enumerate(out) if not f]
        if again:
            pipe = self.conn.pipeline(transaction=False)
            for i in again:
                pipe.get(PREFIX + items[i][0])
            for i, seen in zip(again, pipe.execute(), strict=True):
                out[i] = seen is not None and seen.decode() == items[i][1]
        return out
