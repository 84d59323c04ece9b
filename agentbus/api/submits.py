"""``POST /jobs`` in batches: the submits that arrive together are written together.

Each submit used to take a thread hop, a PostgreSQL statement and an XADD of its own: together
half of the API's time per job under many clients (docs/benchmarks.md, issue 10). Here, as the
rate limiter charges requests (bus/ratelimit.py), the submits that arrive while a batch is being
written wait on the event loop and go together in the next one: one thread hop, one statement
for all their jobs (``Jobs.create_jobs``, under each tenant's cap of open jobs) and one XADD
naming every new job. There is no timer: a client alone is a batch of one, as fast as before.

A job is answered 201 only once its row is committed; if the XADD then fails, the job is in
PostgreSQL and the reconciler announces it (as before). A store failure fails every submit of
the batch while none of its jobs is written, and only the submits not yet written after that
(``Jobs.create_jobs``); an error of one job (over its tenant's cap, an idempotency key reused)
answers that submit only.
"""

from __future__ import annotations

import asyncio
import copy
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.concurrency import run_in_threadpool

from agentbus.bus import ControlStream, JobWatch
from agentbus.domain import ControlEvent, RateLimited, Unavailable
from agentbus.domain.errors import AgentbusError
from agentbus.domain.states import JOB_NOT_DUE
from agentbus.observability import metrics, tracing
from agentbus.store import JobRecord, Jobs, NewJob

log = logging.getLogger("agentbus.api")

BATCH_MAX = 128
"""The most submits written together (one statement's worth; the rest wait for the next batch)."""

Submitted = tuple[JobRecord, bool]
"""The job, and whether it was created now (201) or found by its idempotency key (200)."""


@dataclass(frozen=True)
class _Pending:
    new: NewJob
    started: float
    answer: asyncio.Future[Submitted]


class Submits:
    """Writes the jobs submitted to this API process, in batches (call ``submit`` on the event loop)."""

    def __init__(self, jobs: Jobs, stream: ControlStream, watch: JobWatch, open_cap: int) -> None:
        self.jobs = jobs
        self.stream = stream
        self.watch = watch
        self.open_cap = open_cap
        self._queued: list[_Pending] = []  # arrived while a batch is written: the next batch
        self._writer: asyncio.Task[None] | None = None

    async def submit(self, new: NewJob, started: float) -> Submitted:
        answer: asyncio.Future[Submitted] = asyncio.get_running_loop().create_future()
        self._queued.append(_Pending(new, started, answer))
        if self._writer is None:  # nothing being written: write on the loop's next turn
            self._writer = asyncio.create_task(self._write_all())
        return await answer

    async def _write_all(self) -> None:
        """Write whoever is queued, one batch at a time, until nobody is."""
        try:
            while self._queued:
                batch, self._queued = self._queued[:BATCH_MAX], self._queued[BATCH_MAX:]
                batch = [p for p in batch if not p.answer.done()]  # a client that left submits nothing
                if not batch:
                    continue
                try:
                    results = await run_in_threadpool(self._write, batch)
                except Exception as exc:
                    for p in batch:
                        if not p.answer.done():
                            p.answer.set_exception(_copy(exc))
                    continue
                except BaseException:  # cancelled (the API stopping): the batch is told below
                    self._queued[:0] = batch
                    raise
                for p, result in zip(batch, results, strict=True):
                    if p.answer.done():
                        continue
                    if isinstance(result, AgentbusError):
                        p.answer.set_exception(result)
                    else:
                        p.answer.set_result(result)
        finally:
            self._writer = None
            queued, self._queued = self._queued, []
            for p in queued:
                if not p.answer.done():
                    p.answer.set_exception(Unavailable("the API is stopping"))

    def _write(self, batch: Sequence[_Pending]) -> list[Submitted | AgentbusError]:
        """The batch's thread hop: its jobs in one store call, then announced together."""
        results = self.jobs.create_jobs([p.new for p in batch], self.open_cap)
        created: list[tuple[JobRecord, float]] = []
        for p, result in zip(batch, results, strict=True):
            if isinstance(result, RateLimited):
                metrics.rate_limited("open_jobs")
            elif not isinstance(result, AgentbusError) and result[1]:
                self.watch.expect(result[0].id, result[0].tenant)  # before it is announced: its end cannot come sooner
                created.append((result[0], p.started))
        announce(self.stream, created)
        return results


def announce(stream: ControlStream, created: Sequence[tuple[JobRecord, float]]) -> None:
    """New jobs (each with when its request started) are counted, traced and put on the control
    stream for the orchestrator, all in one ``job.submitted``."""
    for rec, started in created:
        metrics.job_submitted(rec.type)
        tracing.submitted(rec.id, rec.type, started)
    # a job for later is started by the orchestrator's due-job sweep
    due = tuple(rec.id for rec, _ in created if rec.state not in JOB_NOT_DUE)
    if not due:
        return
    try:
        stream.publish([ControlEvent("job.submitted", due)])
    except Unavailable as exc:  # the jobs are in PostgreSQL: the reconciler will emit them
        log.warning("could not publish job.submitted for %s: %s", due, exc)


def _copy(exc: Exception) -> Exception:
    """One exception per waiter (raising one instance in many tasks chains their tracebacks)."""
    try:
        return copy.copy(exc)
    except Exception:  # pragma: no cover - an exception that cannot be rebuilt from its args
        return exc
