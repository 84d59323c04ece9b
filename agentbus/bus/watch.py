"""One Redis pub/sub listener per API process that wakes asyncio waiters on job notices.

A long-poll or an event stream registers its job id and waits on an ``asyncio.Event``: no
thread is held while it waits. The listener (an asyncio task, one Redis connection for the
whole process) subscribes to every job notice (``JobNotifier.finished`` and ``changed``) and
sets the events of the job named. A notice is only a hint: the waiter re-reads the record
when woken and on a slow safety timer. Notices sent while the listener was away are lost,
so every waiter is woken when it (re)subscribes. While Redis is unreachable ``healthy`` is
False and waiters read the record on a short timer instead.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Iterator

import redis
from redis import asyncio as aioredis

from agentbus.bus.notify import CHANGED, CHANNEL

log = logging.getLogger("agentbus.bus")

PATTERNS = (CHANNEL + "*", CHANGED + "*")


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
        self._task: asyncio.Task[None] | None = None
        self.healthy = False

    @property
    def waiting(self) -> int:
        return sum(len(s) for s in self._waiters.values())

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="agentbus-job-watch")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self.healthy = False
        self._wake_all()

    @contextlib.contextmanager
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever a notice for ``job_id`` arrives (clear it after waking).

        Register before reading the record: a notice that lands during the read leaves the
        event set, so it is never missed.
        """
        event = asyncio.Event()
        self._waiters.setdefault(job_id, set()).add(event)
        try:
            yield event
        finally:
            waiters = self._waiters.get(job_id)
            if waiters is not None:
                waiters.discard(event)
                if not waiters:
                    del self._waiters[job_id]

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        """Until a notice or ``timeout`` seconds, whichever comes first."""
        if timeout > 0 and not event.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await event.wait()
        event.clear()

    def _wake(self, job_id: str) -> None:
        for event in self._waiters.get(job_id, ()):
            event.set()

    def _wake_all(self) -> None:
        for waiters in self._waiters.values():
            for event in waiters:
                event.set()

    async def _run(self) -> None:
        while True:
            conn = aioredis.Redis.from_url(self._url, socket_connect_timeout=5, health_check_interval=5)
            pubsub = conn.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.psubscribe(*PATTERNS)
                self.healthy = True
                self._wake_all()  # notices sent while we were away are lost: everyone re-reads
                while True:
                    message = await pubsub.get_message(timeout=5.0)
                    if message is not None and message.get("type") == "pmessage":
                        channel = message["channel"]
                        name = channel.decode() if isinstance(channel, bytes) else str(channel)
                        self._wake(_job_of(name))
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
            await asyncio.sleep(self._reconnect_s)
