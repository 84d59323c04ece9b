"""One Redis pub/sub listener per API process that wakes asyncio waiters on job notices.

A long-poll or an event stream registers its job id and waits on an ``asyncio.Event``: no thread is
held while it waits. The listener (an asyncio task, one Redis connection for the whole process)
subscribes to every job notice (``JobNotifier.finished`` and ``changed``) and sets the events of the
job named (a long-poll for a result waits for ``finished`` only: a ``changed`` notice would wake it
for a re-read that finds the job still running). A notice is only a hint: the waiter re-reads the
record when woken and on a slow safety timer. Notices sent while the listener was away are lost, so
every waiter is woken when it (re)subscribes. Output notices (``bus/output.py``: a batch of
``ctx.emit`` reached the job's output stream) wake output waiters only, so that a stream of tokens
reads Redis, not the record; ``outputs`` reads those streams on the same event loop.
While Redis is unreachable ``healthy`` is False and waiters read the record on a short timer
instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import redis
from redis import asyncio as aioredis

from agentbus.bus.notify import CHANGED, CHANNEL
from agentbus.bus.output import OUTPUT_NOTICE, OutputReader

log = logging.getLogger("agentbus.bus")

PATTERNS = (CHANNEL + "*", CHANGED + "*", OUTPUT_NOTICE + "*")
LISTEN_S = 1.0
"""The longest one read for notices blocks: how soon the listener sees that it must stop."""


def _job_of(channel: str) -> str:
    for prefix in (CHANNEL, CHANGED):
        if channel.startswith(prefix):
            return channel[len(prefix) :]
    return ""


class JobWatch:
    def __init__(self, url: str, reconnect_s: float = 1.0) -> None:
        self._url = url
        self._reconnect_s = reconnect_s
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._end_waiters: dict[str, set[asyncio.Event]] = {}
        self._output_waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.healthy = False
        self.outputs = OutputReader(url)

    @property
    def waiting(self) -> int:
        return sum(len(s) for table in (self._waiters, self._end_waiters) for s in table.values())

    async def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self._run(), name="agentbus-job-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._stopping = True
        if task is not None:
            task.cancel()
            # redis-py's get_message can swallow a cancellation that lands in its read timeout (seen:
            # the listener read on and the API's shutdown hung for good). The flag ends the listener's
            # loops at its next read, and the wait is bounded either way.
            done, _ = await asyncio.wait({task}, timeout=LISTEN_S + 2)
            if not done:
                log.warning("the job notice listener did not stop; leaving it")
        self.healthy = False
        self._wake_all()
        await self.outputs.close()

    @contextlib.contextmanager
    def watch(self, job_id: str, changes: bool = True) -> Iterator[asyncio.Event]:
        """An event set whenever a notice for ``job_id`` arrives (clear it after waking).

        ``changes=False``: only the notice that the job finished (a long-poll for the result
        has nothing to re-read when the job merely started running).
        Register before reading the record: a notice that lands during the read leaves the
        event set, so it is never missed.
        """
        with _registered(self._waiters if changes else self._end_waiters, job_id) as event:
            yield event

    @contextlib.contextmanager
    def watch_outputs(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever outputs of ``job_id`` were appended (register before reading them)."""
        with _registered(self._output_waiters, job_id) as event:
            yield event

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        """Until a notice or ``timeout`` seconds, whichever comes first."""
        if timeout > 0 and not event.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await event.wait()
        event.clear()

    def _wake(self, channel: str) -> None:
        if channel.startswith(OUTPUT_NOTICE):
            waiters = self._output_waiters.get(channel[len(OUTPUT_NOTICE) :], ())
        else:
            job_id = _job_of(channel)
            waiters = self._waiters.get(job_id, ())
            if channel.startswith(CHANNEL):
                for event in self._end_waiters.get(job_id, ()):
                    event.set()
        for event in waiters:
            event.set()

    def _wake_all(self) -> None:
        for table in (self._waiters, self._end_waiters, self._output_waiters):
            for waiters in table.values():
                for event in waiters:
                    event.set()

    async def _run(self) -> None:
        while not self._stopping:
            conn = aioredis.Redis.from_url(self._url, socket_connect_timeout=5, health_check_interval=5)
            pubsub = conn.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(*PATTERNS)
                self.healthy = True
                self._wake_all()  # notices sent while we were away are lost: everyone re-reads
                while not self._stopping:
                    message = await pubsub.get_message(timeout=LISTEN_S)
                    if message is not None and message.get("type") == "pmessage":
                        channel = message["channel"]
                        name = channel.decode() if isinstance(channel, bytes) else str(channel)
                        self._wake(name)
            except (redis.RedisError, OSError) as exc:
                if self.healthy:
                    log.warning("job notices unavailable, waiters read the record instead: %s", exc)
            except Exception:  # never let the listener die: waiters would poll for the process's life
                log.exception("job notice listener failed; reconnecting")
            finally:
                self.healthy = False
                self._wake_all()  # waiters switch to reading the record on a short timer
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await conn.aclose()
            if not self._stopping:
                await asyncio.sleep(self._reconnect_s)


@contextlib.contextmanager
def _registered(table: dict[str, set[asyncio.Event]], job_id: str) -> Iterator[asyncio.Event]:
    event = asyncio.Event()
    table.setdefault(job_id, set()).add(event)
    try:
        yield event
    finally:
        waiters = table.get(job_id)
        if waiters is not None:
            waiters.discard(event)
            if not waiters:
                del table[job_id]
