"""The control stream: a Redis Stream read by the orchestrators' consumer group."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from agentbus.bus.connection import translate_errors
from agentbus.bus.replay import ReplayGuard
from agentbus.domain.errors import MessageRejected
from agentbus.domain.messages import ControlEvent
from agentbus.security.signing import Keyring

log = logging.getLogger("agentbus.bus")

STREAM = "agentbus:control"
GROUP = "orchestrators"


@dataclass(frozen=True)
class Entry:
    id: bytes
    event: ControlEvent


class ControlStream:
    def __init__(self, conn: redis.Redis, keyring: Keyring, maxlen: int = 200_000) -> None:
        self.conn = conn
        self.keyring = keyring
        self.maxlen = maxlen
        self.rejected = 0
        self.guard = ReplayGuard(conn, keyring.max_age)

    @translate_errors
    def publish(self, events: Sequence[ControlEvent]) -> None:
        pipe = self.conn.pipeline(transaction=False)
        for ev in events:
            pipe.xadd(STREAM, {"m": self.keyring.seal(ev.to_dict())}, maxlen=self.maxlen, approximate=True)
        pipe.execute()

    @translate_errors
    def ensure_group(self) -> None:
        try:
            self.conn.xgroup_create(STREAM, GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def _decode(self, raw: list[tuple[bytes, dict[bytes, bytes]]]) -> tuple[list[Entry], list[bytes]]:
        entries: list[Entry] = []
        nonces: list[tuple[str, str]] = []
        bad: list[bytes] = []
        for entry_id, fields in raw:
            if not fields:  # deleted meanwhile (trimmed)
                bad.append(entry_id)
                continue
            try:
                nonce, body = self.keyring.open_with_nonce(fields.get(b"m", b""))
                ev = ControlEvent.from_dict(body)
            except MessageRejected as exc:
                self.rejected += 1
                log.warning("dropped control message %s: %s", entry_id.decode(), exc)
                bad.append(entry_id)
                continue
            entries.append(Entry(entry_id, ev))
            nonces.append((nonce, entry_id.decode()))
        kept: list[Entry] = []
        for entry, first in zip(entries, self.guard.first_sight(nonces), strict=True):
            if first:
                kept.append(entry)
            else:
                self.rejected += 1
                log.warning("dropped replayed control message %s", entry.id.decode())
                bad.append(entry.id)
        return kept, bad

    @translate_errors
    def read(self, consumer: str, count: int = 1000, block_ms: int = 200) -> list[Entry]:
        """New entries for this consumer; rejected ones are acknowledged and dropped."""
        try:
            resp = self.conn.xreadgroup(GROUP, consumer, {STREAM: ">"}, count=count, block=block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()  # the stream was flushed: start over, the reconciler covers the gap
            return []
        if not resp:
            return []
        entries, bad = self._decode(resp[0][1])  # type: ignore[index,arg-type]
        if bad:
            self.ack(bad)
        return entries

    @translate_errors
    def claim_stale(self, consumer: str, min_idle_ms: int, count: int = 1000) -> list[Entry]:
        """Take over entries another consumer read but never acknowledged."""
        try:
            resp = self.conn.xautoclaim(STREAM, GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group()
            return []
        entries, bad = self._decode(resp[1])  # type: ignore[index,arg-type]
        if bad:
            self.ack(bad)
        return entries

    @translate_errors
    def ack(self, ids: Sequence[bytes]) -> None:
        if ids:
            self.conn.xack(STREAM, GROUP, *ids)
