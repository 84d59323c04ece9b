"""Streamed output in Redis: one capped stream per job, written in batches, read without a thread.

Each job's outputs (``ctx.emit`` of its tasks and its agent) go to the stream
``agentbus:out:{<job>}``, numbered 1, 2, 3, ... across the job (the entry id is ``0-<n>``, so a
reader knows exactly how many it missed: the numbers it never saw). A batch is written by one
script: number, append with ``MAXLEN ~ maxlen`` (older entries trimmed), refresh the expiry
(nothing outlives the job for long) and publish a notice on ``agentbus:job-output:<job>`` that
wakes the API's readers (``bus/watch.py``). The API reads with ``redis.asyncio`` on its event
loop. Outputs are never written to PostgreSQL: the call's result is the record.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import redis
from redis import asyncio as aioredis

from agentbus.bus.connection import translate_errors
from agentbus.domain import Unavailable
from agentbus.domain.output import OUTPUT_BUFFER, OUTPUT_TTL_S, OutputRecord, record_from_json, record_to_json

OUTPUT_NOTICE = "agentbus:job-output:"

# KEYS: stream, counter, notice channel; ARGV: maxlen, ttl seconds, then one JSON record each
_APPEND = """
local k = #ARGV - 2
local last = redis.call('INCRBY', KEYS[2], k)
for i = 1, k do
  redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '0-' .. (last - k + i), 'r', ARGV[i + 2])
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('EXPIRE', KEYS[2], ARGV[2])
redis.call('PUBLISH', KEYS[3], last)
return last
"""


def _number(entry_id: object) -> int:
    return int((entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)).split("-")[1])


def stream_key(job_id: str) -> str:
    return "agentbus:out:{" + job_id + "}"


def _counter_key(job_id: str) -> str:
    return stream_key(job_id) + ":n"


class OutputStream:
    """Writes outputs (workers, the orchestrator); ``maxlen`` kept per job, ``ttl_s`` after the last."""

    def __init__(self, conn: redis.Redis, maxlen: int = OUTPUT_BUFFER, ttl_s: float = OUTPUT_TTL_S) -> None:
        self.conn = conn
        self.maxlen = max(1, maxlen)
        self.ttl_s = max(1, int(ttl_s))
        self._append = conn.register_script(_APPEND)

    @classmethod
    def from_url(cls, url: str, maxlen: int = OUTPUT_BUFFER, ttl_s: float = OUTPUT_TTL_S) -> OutputStream:
        """Its own connection, with a short timeout: a Redis that hangs delays outputs, not results."""
        return cls(redis.Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2), maxlen, ttl_s)

    @translate_errors
    def append(self, records: Sequence[OutputRecord]) -> None:
        """Append in order (one round trip for all jobs); ``Unavailable`` when Redis is away."""
        by_job: dict[str, list[str]] = defaultdict(list)
        for rec in records:
            by_job[rec.job_id].append(record_to_json(rec))
        if not by_job:
            return
        pipe = self.conn.pipeline(transaction=False)
        for job_id, texts in by_job.items():
            keys = [stream_key(job_id), _counter_key(job_id), OUTPUT_NOTICE + job_id]
            self._append(keys=keys, args=[self.maxlen, self.ttl_s, *texts], client=pipe)
        pipe.execute()


@dataclass(frozen=True)
class OutputPage:
    """Outputs after a reader's cursor: ``(n, record)`` in order, and how many it can no longer get."""

    records: tuple[tuple[int, OutputRecord], ...]
    missed: int
    """Entries after the cursor trimmed from the stream before this read (``MAXLEN``)."""


class OutputReader:
    """Reads job output streams on the caller's event loop (one connection pool per process)."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._conn: aioredis.Redis | None = None

    def _client(self) -> aioredis.Redis:
        if self._conn is None:
            self._conn = aioredis.Redis.from_url(self._url, socket_connect_timeout=5, socket_timeout=5)
        return self._conn

    async def read(self, job_id: str, after: int, count: int = 1000) -> OutputPage:
        """Entries numbered above ``after`` (at most ``count``); ``Unavailable`` when Redis is away."""
        key = stream_key(job_id)
        try:
            rows = await self._client().xrange(key, min=f"0-{after + 1}", max="+", count=count)
            if not rows and after > 0:
                # A job silent past the expiry starts numbering again at 1: a cursor past the last
                # number it holds now belongs to the expired stream, so read the new one from its start.
                last = await self._client().xrevrange(key, count=1)
                if last and _number(last[0][0]) < after:
                    return await self.read(job_id, 0, count)
        except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
            raise Unavailable(f"redis unavailable: {exc}") from None
        out: list[tuple[int, OutputRecord]] = []
        for entry_id, fields in rows or ():
            if entry_id is None or not fields:
                continue
            n = _number(entry_id)
            out.append((n, record_from_json(job_id, fields[b"r"])))
        missed = out[0][0] - after - 1 if out else 0
        return OutputPage(tuple(out), max(0, missed))

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await conn.aclose()
