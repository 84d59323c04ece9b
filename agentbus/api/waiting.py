"""Waiting for a job without holding a thread: long-polls and event streams.

A waiter sleeps on the job's ``asyncio.Event`` (set by the process's one Redis listener,
``bus/watch.py``) and re-reads the record, in a short thread hop, only when woken: by a
notice, by a safety timer (a notice may be lost), or by the client going away. A long-poll
woken by a finished notice that carried the job's end answers from it instead, when that end
answers as the record would (``EndNotices.answer``).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncIterator, Awaitable, Callable

from starlette.requests import Request

from agentbus.bus import EndWaiter, JobWatch
from agentbus.domain.messages import JobEnd

RECHECK_S = 5.0  # notices flowing: re-read anyway this often, in case one was lost
POLL_S = 0.5  # no Redis to hear from: read the record this often


def _period(watch: JobWatch, healthy_s: float) -> float:
    # jittered, so waiters that started together (a burst of clients) do not re-read together
    return (healthy_s if watch.healthy else POLL_S) * random.uniform(0.5, 1.0)


class EndNotices:
    """A long-poll's view of its job's finished notices."""

    def __init__(self, watch: JobWatch, waiter: EndWaiter, recheck_s: float) -> None:
        self._watch = watch
        self._waiter = waiter
        self._recheck_s = recheck_s
        self.gone = asyncio.Event()

    async def wait(self, at_most_s: float) -> bool:
        """Sleep until the job's finished notice, the safety timer or ``at_most_s``; False once the client left."""
        await self._watch.wait(self._waiter.event, min(at_most_s, _period(self._watch, self._recheck_s)))
        return not self.gone.is_set()

    def answer(self, tenant: str) -> JobEnd | None:
        """The end the job's last finished notice carried, if it answers ``tenant`` as a read of the
        record would: the tenant's own job (another's is a 404, which the read gives), ended for good
        (``JobEnd.for_good``). None: read the record."""
        end = self._waiter.end
        return end if end is not None and end.tenant == tenant and end.for_good else None


@contextlib.asynccontextmanager
async def job_notices(
    request: Request, watch: JobWatch, job_id: str, recheck_s: float = RECHECK_S, follow_disconnect: bool = True
) -> AsyncIterator[EndNotices]:
    """The job's finished notices, for a long-poll.

    Enter it before the first read of the record: a notice that lands during the read is kept.
    ``follow_disconnect``: wake when the client goes away (a streaming response is cancelled
    by starlette instead, and needs no second reader of ``receive``).
    """
    with watch.watch_end(job_id) as waiter:
        notices = EndNotices(watch, waiter, recheck_s)

        async def until_disconnect() -> None:
            while (await request.receive())["type"] != "http.disconnect":
                pass
            notices.gone.set()
            waiter.event.set()

        listener = asyncio.create_task(until_disconnect()) if follow_disconnect else None
        try:
            yield notices
        finally:
            if listener is not None:
                listener.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await listener


@contextlib.asynccontextmanager
async def job_stream_notices(
    watch: JobWatch, job_id: str, recheck_s: float = RECHECK_S
) -> AsyncIterator[Callable[[float], Awaitable[tuple[bool, bool]]]]:
    """For an event stream: ``wait(at_most_s)`` sleeps until the job's notice, an output notice,
    the record's safety timer or ``at_most_s``, and says what to read: ``(record, outputs)``.
    Outputs alone (a stream of tokens) do not re-read the record, which is read on its notice,
    its timer, or when nothing came for ``at_most_s``.
    """
    with watch.watch(job_id) as notice, watch.watch_outputs(job_id) as output:
        loop = asyncio.get_running_loop()
        record_at = loop.time() + _period(watch, recheck_s)

        async def wait(at_most_s: float) -> tuple[bool, bool]:
            nonlocal record_at
            timeout = min(at_most_s, record_at - loop.time())
            if timeout > 0 and not notice.is_set() and not output.is_set():
                waiters = [asyncio.ensure_future(notice.wait()), asyncio.ensure_future(output.wait())]
                try:
                    await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for w in waiters:
                        w.cancel()
            outputs = output.is_set()
            record = notice.is_set() or loop.time() >= record_at or not outputs
            notice.clear()
            output.clear()
            if record:
                record_at = loop.time() + _period(watch, recheck_s)
            return record, outputs or record

        yield wait
