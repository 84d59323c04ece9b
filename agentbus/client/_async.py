"""``AsyncClient``: the same methods as ``Client``, over ``httpx.AsyncClient``."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import datetime
from typing import Any, TypeVar

import httpx

from agentbus.client import _protocol as p
from agentbus.client import records as r

T = TypeVar("T")


class AsyncClient:
    """An asyncio client. ``retry`` says how 429 and 503 answers are retried (``Retry(attempts=0)``: never)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        timeout: float = 30.0,
        api_key: str | None = None,
        *,
        retry: p.Retry | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.AsyncClient(
            base_url=base_url.rstrip("/"), timeout=timeout, headers=headers, transport=transport
        )
        self.retry = retry or p.Retry()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def _send(self, call: p.Call[T]) -> T:
        attempt = 0
        while True:
            try:
                resp = await self.http.request(
                    call.method,
                    call.path,
                    params=call.params,
                    json=call.json,
                    content=call.content,
                    headers=call.headers,
                    timeout=httpx.USE_CLIENT_DEFAULT if call.timeout is None else call.timeout,
                )
            except httpx.TransportError as exc:
                raise p.unreachable(self.http.base_url, exc) from None
            delay = self.retry.delay(resp, attempt)
            if delay is None:
                return p.read(call, resp)
            attempt += 1
            await asyncio.sleep(delay)

    # -- jobs ----------------------------------------------------------------------------------
    async def submit(
        self,
        type: str,
        input: Any = None,
        *,
        idempotency_key: str | None = None,
        priority: int = 0,
        run_at: datetime | float | str | None = None,
        delay: float | None = None,
    ) -> r.Job:
        """Submit a job; ``run_at`` (an aware datetime, unix seconds or ISO 8601 with an offset) or
        ``delay`` (seconds) submits it for later: it waits as ``scheduled`` until then."""
        return await self._send(p.submit(type, input, idempotency_key, priority, run_at, delay))

    # -- schedules -----------------------------------------------------------------------------
    async def create_schedule(
        self,
        name: str,
        agent: str,
        cron: str,
        input: Any = None,
        *,
        timezone: str = "UTC",
        catch_up: str = "latest",
        paused: bool = False,
    ) -> r.Schedule:
        """Run ``agent`` with ``input`` on each tick of ``cron`` in ``timezone`` (``docs/schedules.md``)."""
        return await self._send(p.create_schedule(name, agent, cron, input, timezone, catch_up, paused))

    async def schedules(self, *, limit: int = 50, after: str | None = None) -> list[r.Schedule]:
        """The tenant's schedules by name, ``limit`` after the name ``after``."""
        return await self._send(p.schedules(limit, after))

    async def schedule(self, schedule_id: str) -> r.Schedule:
        return await self._send(p.schedule(schedule_id))

    async def pause_schedule(self, schedule_id: str) -> r.Schedule:
        return await self._send(p.pause_schedule(schedule_id))

    async def resume_schedule(self, schedule_id: str) -> r.Schedule:
        """Resume from the next tick (ticks during the pause are skipped)."""
        return await self._send(p.resume_schedule(schedule_id))

    async def delete_schedule(self, schedule_id: str) -> None:
        await self._send(p.delete_schedule(schedule_id))

    async def job(self, job_id: str) -> r.Job:
        """The job with its progress and its first 100 tasks."""
        return await self._send(p.job(job_id))

    async def jobs(
        self, *, status: str | None = None, type: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> r.JobPage:
        """One page of jobs, newest first (``status``: comma-separated states)."""
        return await self._send(p.jobs(status, type, limit, cursor))

    async def iter_jobs(
        self, *, status: str | None = None, type: str | None = None, page_size: int = 200
    ) -> AsyncIterator[r.Job]:
        """Every job, page after page."""
        cursor: str | None = None
        while True:
            page = await self.jobs(status=status, type=type, limit=page_size, cursor=cursor)
            for item in page.jobs:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def tasks(self, job_id: str, *, after: int = -1, limit: int = 200) -> r.TaskPage:
        """A page of the job's tasks after the task ``seq`` ``after`` (``next_after`` for the next)."""
        return await self._send(p.tasks(job_id, after, limit))

    async def results(self, job_id: str, wait: float = 0) -> tuple[bool, r.JobResult]:
        """(finished, result); ``wait`` long-polls up to that many seconds (at most 60)."""
        return await self._send(p.results(job_id, wait))

    async def wait(
        self,
        job_id: str,
        timeout: float = 300.0,
        on_progress: Callable[[r.Job], None] | None = None,
        progress_every: float = 0.5,
    ) -> r.JobResult:
        """Long-poll until the job finishes and return its result; TimeoutError after ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        while True:
            if on_progress is not None:
                on_progress(await self.job(job_id))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"job {job_id} did not finish within {timeout}s")
            step = min(remaining, progress_every if on_progress is not None else 30.0)
            done, body = await self.results(job_id, wait=max(0.01, step))
            if done:
                return body

    async def cancel(self, job_id: str) -> r.Job:
        return await self._send(p.cancel(job_id))

    async def rerun(self, job_id: str) -> r.Job:
        """Run a finished job again as a new job (its ``rerun_of`` is ``job_id``)."""
        return await self._send(p.rerun(job_id))

    async def resume(self, job_id: str) -> r.Job:
        """Resume a failed job: its failed steps are tried again, its journal is kept."""
        return await self._send(p.resume(job_id))

    async def signal(self, job_id: str, name: str, data: Any = None, *, idempotency_key: str | None = None) -> r.Signal:
        """Send the signal ``name`` (payload ``data``) to a job's ``ctx.wait_for``; kept until a wait takes it.
        With ``idempotency_key``, sending again returns the signal sent the first time."""
        return await self._send(p.signal(job_id, name, data, idempotency_key))

    async def signals(self, job_id: str) -> list[r.Signal]:
        """The job's signals in the order they arrived, delivered or pending."""
        return await self._send(p.signals(job_id))

    async def events(
        self, job_id: str, last_event_id: str | None = None, *, timeout: float | None = None
    ) -> AsyncIterator[r.Event]:
        """The job's server-sent events (job, task, approval, task.output), then ``end`` once it has finished.

        ``timeout``: raise TimeoutError once that many seconds have passed (checked as lines come;
        the server sends a keep-alive line every 15 s).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        headers = p.events_headers(last_event_id)
        try:
            async with self.http.stream(
                "GET",
                p.events_path(job_id),
                headers=headers,
                timeout=httpx.Timeout(self.http.timeout.connect, read=timeout),
            ) as resp:
                if resp.status_code >= 400:
                    await resp.aread()
                    raise p.error_from(resp)
                decoder = p.EventDecoder()
                async for line in resp.aiter_lines():
                    if deadline is not None and time.monotonic() > deadline:
                        raise TimeoutError(f"job {job_id} did not finish within {timeout:g}s")
                    event = decoder.feed(line)
                    if event is not None:
                        yield event
                        if event.event == "end":
                            return
        except httpx.ReadTimeout:
            raise TimeoutError(f"job {job_id} did not finish within {timeout:g}s") from None
        except httpx.TransportError as exc:
            raise p.unreachable(self.http.base_url, exc) from None

    async def job_types(self) -> list[r.JobType]:
        return await self._send(p.job_types())

    async def workers(self) -> list[r.Worker]:
        return await self._send(p.workers())

    async def status(self) -> dict[str, Any]:
        """The cluster on one page (``GET /status``, an admin key): lease, queues, jobs, workers, failures."""
        return await self._send(p.status())

    # -- human in the loop ---------------------------------------------------------------------
    async def approvals(
        self,
        *,
        status: str | None = None,
        job: str | None = None,
        assignee: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> r.ApprovalPage:
        return await self._send(p.approvals(status, job, assignee, limit, cursor))

    async def iter_approvals(
        self, *, status: str | None = None, job: str | None = None, assignee: str | None = None, page_size: int = 200
    ) -> AsyncIterator[r.Approval]:
        cursor: str | None = None
        while True:
            page = await self.approvals(status=status, job=job, assignee=assignee, limit=page_size, cursor=cursor)
            for item in page.approvals:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    async def approval(self, approval_id: str) -> r.Approval:
        return await self._send(p.approval(approval_id))

    async def answer(
        self, approval_id: str, decision: str, *, input: Any = None, comment: str | None = None, by: str | None = None
    ) -> r.Approval:
        """``decision`` is approve or reject; ``input`` must fit the approval's ``schema`` to approve."""
        return await self._send(p.answer(approval_id, decision, input, comment, by))

    # -- memory --------------------------------------------------------------------------------
    async def memory_store(self, namespace: str, items: list[Mapping[str, Any]]) -> r.Stored:
        """Upsert items (``id``, ``text`` or ``vector``, ``metadata``, ``ttl``); all or nothing."""
        return await self._send(p.memory_store(namespace, items))

    async def memory_search(
        self,
        namespace: str,
        q: str | None = None,
        *,
        vector: list[float] | None = None,
        k: int = 10,
        filter: Mapping[str, Any] | None = None,
        mode: str = "vector",
    ) -> list[r.MemoryHit]:
        """``mode="hybrid"``: keywords (BM25 over the text) fused with the vector ranking; needs ``q``."""
        return await self._send(p.memory_search(namespace, q, vector, k, filter, mode))

    async def memory_get(self, namespace: str, item_id: str) -> r.MemoryItem:
        return await self._send(p.memory_get(namespace, item_id))

    async def memory_delete(self, namespace: str, item_id: str) -> None:
        await self._send(p.memory_delete(namespace, item_id))

    async def memory_delete_namespace(self, namespace: str) -> int:
        """Drop a namespace; returns how many items it held."""
        return await self._send(p.memory_delete_namespace(namespace))

    async def memory_namespaces(self) -> list[r.Namespace]:
        return await self._send(p.memory_namespaces())
