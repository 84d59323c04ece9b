"""The control stream: a Redis Stream per shard, read by the orchestrators' consumer group.

With ``AGENTBUS_SHARDS`` = K, each job's events go to its shard's stream (``domain/shards.py``);
K = 1 is the single stream ``agentbus:control`` of an unpartitioned bus.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import redis

from agentbus.bus.connection import translate_errors
from agentbus.bus.replay import ReplayGuard
from agentbus.domain.errors import MessageRejected
from agentbus.domain.messages import ControlEvent
from agentbus.domain.shards import check_shards, shard_key, shard_of
from agentbus.security.signing import Keyring

log = logging.getLogger("agentbus.bus")

STREAM = "agentbus:control"
GROUP = "orchestrators"


@dataclass(frozen=True)
class Entry:
    id: bytes
    event: ControlEvent
    shard: int = 0


def stream_key(shard: int) -> str:
    return shard_key(STREAM, shard)


class ControlStream:
    def __init__(self, conn: redis.Redis, keyring: Keyring, maxlen: int = 200_000, shards: int = 1) -> None:
        self.conn = conn
        self.keyring = keyring
        self.maxlen = maxlen
        self.shards = check_shards(shards)
        self.rejected = 0
        self.guard = ReplayGuard(conn, keyring.max_age)

    def split(self, event: ControlEvent) -> dict[int, ControlEvent]:
        """``event`` as one event per shard, each naming only that shard's jobs (in their order)."""
        if self.shards == 1 or not event.job_ids:
            return {0: event}
        ids: defaultdict[int, list[str]] = defaultdict(list)
        for job_id in event.job_ids:
            ids[shard_of(job_id, self.shards)].append(job_id)
        return {k: ControlEvent(event.kind, tuple(v)) for k, v in ids.items()}

    @translate_errors
    def publish(self, events: Sequence[ControlEvent]) -> None:
        pipe = self.conn.pipeline(transaction=False)
        for ev in events:
            for shard, part in self.split(ev).items():
                sealed = self.keyring.seal(part.to_dict())
                pipe.xadd(stream_key(shard), {"m": sealed}, maxlen=self.maxlen, approximate=True)
        pipe.execute()

    @translate_errors
    def ensure_group(self, shards: Iterable[int] = (0,)) -> None:
        for shard in shards:
            try:
                self.conn.xgroup_create(stream_key(shard), GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def _decode(self, raw: list[tuple[bytes, dict[bytes, bytes]]], shard: int = 0) -> tuple[list[Entry], list[bytes]]:
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
            entries.append(Entry(entry_id, ev, shard))
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
    def read(self, consumer: str, count: int = 1000, block_ms: int = 200, shards: Sequence[int] = (0,)) -> list[Entry]:
        """New entries of ``shards``' streams for this consumer; rejected ones are acknowledged and dropped."""
        if not shards:
            return []
        keys = {stream_key(k): k for k in shards}
        try:
            resp = self.conn.xreadgroup(GROUP, consumer, dict.fromkeys(keys, ">"), count=count, block=block_ms)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group(shards)  # the stream was flushed: start over, the reconciler covers the gap
            return []
        out: list[Entry] = []
        replies: list[tuple[bytes, list[tuple[bytes, dict[bytes, bytes]]]]] = resp or []  # type: ignore[assignment]
        for key, raw in replies:
            shard = keys[key.decode()]
            entries, bad = self._decode(raw, shard)
            if bad:
                self.ack(bad, shard)
            out.extend(entries)
        return out

    @translate_errors
    def claim_stale(self, consumer: str, min_idle_ms: int, count: int = 1000, shard: int = 0) -> list[Entry]:
        """Take over entries another consumer read but never acknowledged."""
        key = stream_key(shard)
        try:
            resp = self.conn.xautoclaim(key, GROUP, consumer, min_idle_time=min_idle_ms, start_id="0-0", count=count)
        except redis.ResponseError as exc:
            if "NOGROUP" not in str(exc):
                raise
            self.ensure_group([shard])
            return []
        entries, bad = self._decode(resp[1], shard)  # type: ignore[index,arg-type]
        if bad:
            self.ack(bad, shard)
        return entries

    @translate_errors
    def ack(self, ids: Sequence[bytes], shard: int = 0) -> None:
        if ids:
            self.conn.xack(stream_key(shard), GROUP, *ids)

    @translate_errors
    def ack_entries(self, entries: Iterable[Entry]) -> None:
        """Acknowledge entries of any shards in one round trip."""
        by_shard: defaultdict[int, list[bytes]] = defaultdict(list)
        for e in entries:
            by_shard[e.shard].append(e.id)
        if len(by_shard) == 1:
            ((shard, ids),) = by_shard.items()
            self.ack(ids, shard)
            return
        pipe = self.conn.pipeline(transaction=False)
        for shard, ids in by_shard.items():
            pipe.xack(stream_key(shard), GROUP, *ids)
        pipe.execute()
