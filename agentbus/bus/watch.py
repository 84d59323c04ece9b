"""One Redis pub/sub listener per API process that wakes asyncio waiters on job notices.

A long-poll or an event stream registers its job id and waits on an ``asyncio.Event``: no thread is
held while it waits. The listener (an asyncio task, one Redis connection for the whole process)
subscribes to the job notices (``JobNotifier``: one message per orchestrator batch) and sets the
events of the jobs named (a long-poll for a result waits for ``finished`` only: a ``changed`` notice
would wake it for a re-read that finds the job still running). A finished notice may carry the
job's end (``JobEnd``): the listener hands it to the job's end-waiters (``EndWaiter.end``), so that
a long-poll can answer without reading the record; nothing is kept for a job nobody waits on.
A notice is only a hint: the waiter re-reads the record when woken (unless the end it was handed
answers as the record would) and on a slow safety timer. Notices sent while
the listener was away are lost, so every waiter is woken when it (re)subscribes. Output notices
(``bus/output.py``: a batch of ``ctx.emit`` reached the job's output stream) wake output waiters
only, so that a stream of tokens reads Redis, not the record; ``outputs`` reads those streams on
the same event loop. While Redis is unreachable ``healthy`` is False and waiters read the record
on a short timer instead.

The jobs this process just submitted are ``expect``ed (before their ``job.submitted`` is sent):
until their finished notice comes, the listener holding its subscription all along, such a job
is known to be still open, and a long-poll for it may skip its first read of the record
(``still_open``). A job is expected for EXPECT_S at most, and while the listener stays connected.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from typing import TypeVar

import redis
from redis import asyncio as aioredis

from agentbus.bus.notify import NOTICES
from agentbus.bus.output import OUTPUT_NOTICE, OutputReader
from agentbus.domain import MessageRejected
from agentbus.domain.messages import JobEnd, JobNotices

log = logging.getLogger("agentbus.bus")

PATTERNS = (OUTPUT_NOTICE + "*",)
LISTEN_S = 1.0
"""The longest one read for notices blocks: how soon the listener sees that it must stop."""
EXPECT_S = 60.0
"""How long a job this process submitted is expected (a long-poll for it comes right after the submit)."""
EXPECT_MAX = 100_000


class EndWaiter:
    """A waiter for a job's end: ``event`` is set by the job's finished notice, which leaves the end it
    carried in ``end`` (None: none heard yet, or a bare one; the latest notice heard counts)."""

    def __init__(self) -> None:
        self.event = asyncio.Event()
        self.end: JobEnd | None = None


class JobWatch:
    def __init__(self, url: str, reconnect_s: float = 1.0) -> None:
        self._url = url
        self._reconnect_s = reconnect_s
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self._end_waiters: dict[str, set[EndWaiter]] = {}
        self._output_waiters: dict[str, set[asyncio.Event]] = {}
        self._task: asyncio.Task[None] | None = None
        self._stopping = False
        self.healthy = False
        self.outputs = OutputReader(url)
        # job id -> (its owner, the subscription it was expected under, when); written from the API's
        # threads (the submit), read on the loop: the lock covers the dict only
        self._expected: dict[str, tuple[str, int, float]] = {}
        self._expected_lock = threading.Lock()
        self._subscription = 0  # counts the listener's (re)subscriptions: notices between two may be lost

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
    def watch(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever a notice for ``job_id`` arrives (clear it after waking).

        Register before reading the record: a notice that lands during the read leaves the
        event set, so it is never missed.
        """
        with _registered(self._waiters, job_id, asyncio.Event()) as event:
            yield event

    @contextlib.contextmanager
    def watch_end(self, job_id: str) -> Iterator[EndWaiter]:
        """Woken only by the notice that ``job_id`` finished (a long-poll for the result has nothing
        to re-read when the job merely started running), which hands the waiter the job's end if it
        carried one. Register before reading the record, as for ``watch``."""
        with _registered(self._end_waiters, job_id, EndWaiter()) as waiter:
            yield waiter

    def expect(self, job_id: str, owner: str) -> None:
        """``job_id`` was just created by this process and is not finished: remember it until its
        finished notice. Call it before the job is announced (any thread): its end cannot come sooner."""
        if not self.healthy:
            return
        now = time.monotonic()
        with self._expected_lock:
            if len(self._expected) >= EXPECT_MAX:
                self._forget_old(now)
            self._expected[job_id] = (owner, self._subscription, now)

    def still_open(self, job_id: str, owner: str) -> bool:
        """Whether ``job_id`` of ``owner`` is expected and its finished notice cannot have been missed:
        a long-poll may wait for the notice without reading the record first."""
        entry = self._expected.get(job_id)
        return (
            entry is not None
            and self.healthy
            and entry[0] == owner
            and entry[1] == self._subscription
            and time.monotonic() - entry[2] < EXPECT_S
        )

    def _forget_old(self, now: float) -> None:
        old = [j for j, (_, _, at) in self._expected.items() if now - at >= EXPECT_S]
        for j in old or list(self._expected)[: EXPECT_MAX // 2]:
            del self._expected[j]

    @contextlib.contextmanager
    def watch_outputs(self, job_id: str) -> Iterator[asyncio.Event]:
        """An event set whenever outputs of ``job_id`` were appended (register before reading them)."""
        with _registered(self._output_waiters, job_id, asyncio.Event()) as event:
            yield event

    async def wait(self, event: asyncio.Event, timeout: float) -> None:
        """Until a notice or ``timeout`` seconds, whichever comes first."""
        if timeout > 0 and not event.is_set():
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(timeout):
                    await event.wait()
        event.clear()

    def _wake(self, channel: str, data: bytes) -> None:
        if channel.startswith(OUTPUT_NOTICE):
            for event in self._output_waiters.get(channel[len(OUTPUT_NOTICE) :], ()):
                event.set()
            return
        try:
            notices = JobNotices.from_json(data)
        except MessageRejected as exc:  # whose jobs it named is unknown: their waiters' timers re-read
            log.warning("unreadable job notices: %s", exc)
            return
        for job_id in notices.changed:
            for event in self._waiters.get(job_id, ()):
                event.set()
        for notice in notices.finished:
            end, job_id = (notice, notice.job_id) if isinstance(notice, JobEnd) else (None, notice)
            if job_id in self._expected:
                with self._expected_lock:
                    self._expected.pop(job_id, None)
            for waiter in self._end_waiters.get(job_id, ()):
                waiter.end = end
                waiter.event.set()
            for event in self._waiters.get(job_id, ()):
                event.set()

    def _wake_all(self) -> None:
        for table in (self._waiters, self._output_waiters):
            for waiters in table.values():
                for event in waiters:
                    event.set()
        for ending in self._end_waiters.values():
            for waiter in ending:
                waiter.event.set()

    async def _run(self) -> None:
        while not self._stopping:
            conn = aioredis.Redis.from_url(self._url, socket_connect_timeout=5, health_check_interval=5)
            pubsub = conn.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(NOTICES)
                await pubsub.psubscribe(*PATTERNS)
                with self._expected_lock:
                    self._subscription += 1  # what was expected before may have ended unheard
                    self._expected.clear()
                self.healthy = True
                self._wake_all()  # notices sent while we were away are lost: everyone re-reads
                while not self._stopping:
                    message = await pubsub.get_message(timeout=LISTEN_S)
                    if message is not None and message.get("type") in ("message", "pmessage"):
                        channel = message["channel"]
                        name = channel.decode() if isinstance(channel, bytes) else str(channel)
                        data = message["data"]
                        self._wake(name, data if isinstance(data, bytes) else str(data).encode())
            except (redis.RedisError, OSError) as exc:
                if self.healthy:
                    log.warning("job notices unavailable, waiters read the record instead: %s", exc)
            except Exception:  # never let the listener die: waiters would poll for the process's life
                log.exception("job notice listener failed; reconnecting")
            finally:
                self.healthy = False
                with self._expected_lock:
                    self._subscription += 1
                    self._expected.clear()
                self._wake_all()  # waiters switch to reading the record on a short timer
                with contextlib.suppress(Exception):
                    await pubsub.aclose()  # type: ignore[no-untyped-call]
                with contextlib.suppress(Exception):
                    await conn.aclose()
            if not self._stopping:
                await asyncio.sleep(self._reconnect_s)


Waiter = TypeVar("Waiter", asyncio.Event, EndWaiter)


@contextlib.contextmanager
def _registered(table: dict[str, set[Waiter]], job_id: str, waiter: Waiter) -> Iterator[Waiter]:
    table.setdefault(job_id, set()).add(waiter)
    try:
        yield waiter
    finally:
        waiters = table.get(job_id)
        if waiters is not None:
            waiters.discard(waiter)
            if not waiters:
                del table[job_id]
