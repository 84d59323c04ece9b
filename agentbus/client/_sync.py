"""``Client``: the API over ``httpx.Client`` (what the CLI uses)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, TypeVar

import httpx

from agentbus.client import _protocol as p
from agentbus.client import records as r

T = TypeVar("T")


class Client:
    """A blocking client. ``retry`` says how 429 and 503 answers are retried (``Retry(attempts=0)``: never)."""

    def __init__(
        self,
        base_url: str = "http://127.0.0.1:8000",
        timeout: float = 30.0,
        api_key: str | None = None,
        *,
        retry: p.Retry | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers, transport=transport)
        self.retry = retry or p.Retry()

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, call: p.Call[T]) -> T:
        attempt = 0
        while True:
            try:
                resp = self.http.request(
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
            time.sleep(delay)

    # -- jobs ----------------------------------------------------------------------------------
    def submit(
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
        return self._send(p.submit(type, input, idempotency_key, priority, run_at, delay))

    # -- schedules -----------------------------------------------------------------------------
    def create_schedule(
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
        return self._send(p.create_schedule(name, agent, cron, input, timezone, catch_up, paused))

    def schedules(self, *, limit: int = 50, after: str | None = None) -> list[r.Schedule]:
        """The tenant's schedules by name, ``limit`` after the name ``after``."""
        return self._send(p.schedules(limit, after))

    def schedule(self, schedule_id: str) -> r.Schedule:
        return self._send(p.schedule(schedule_id))

    def pause_schedule(self, schedule_id: str) -> r.Schedule:
        return self._send(p.pause_schedule(schedule_id))

    def resume_schedule(self, schedule_id: str) -> r.Schedule:
        """Resume from the next tick (ticks during the pause are skipped)."""
        return self._send(p.resume_schedule(schedule_id))

    def delete_schedule(self, schedule_id: str) -> None:
        self._send(p.delete_schedule(schedule_id))

    def job(self, job_id: str) -> r.Job:
        """The job with its progress and its first 100 tasks."""
        return self._send(p.job(job_id))

    def jobs(
        self, *, status: str | None = None, type: str | None = None, limit: int = 50, cursor: str | None = None
    ) -> r.JobPage:
        """One page of jobs, newest first (``status``: comma-separated states)."""
        return self._send(p.jobs(status, type, limit, cursor))

    def iter_jobs(self, *, status: str | None = None, type: str | None = None, page_size: int = 200) -> Iterator[r.Job]:
        """Every job, page after page."""
        cursor: str | None = None
        while True:
            page = self.jobs(status=status, type=type, limit=page_size, cursor=cursor)
            yield from page.jobs
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def tasks(self, job_id: str, *, after: int = -1, limit: int = 200) -> r.TaskPage:
        """A page of the job's tasks after the task ``seq`` ``after`` (``next_after`` for the next)."""
        return self._send(p.tasks(job_id, after, limit))

    def results(self, job_id: str, wait: float = 0) -> tuple[bool, r.JobResult]:
        """(finished, result); ``wait`` long-polls up to that many seconds (at most 60)."""
        return self._send(p.results(job_id, wait))

    def wait(
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
                on_progress(self.job(job_id))
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"job {job_id} did not finish within {timeout}s")
            step = min(remaining, progress_every if on_progress is not None else 30.0)
            done, body = self.results(job_id, wait=max(0.01, step))
            if done:
                return body

    def cancel(self, job_id: str) -> r.Job:
        return self._send(p.cancel(job_id))

    def rerun(self, job_id: str) -> r.Job:
        """Run a finished job again as a new job (its ``rerun_of`` is ``job_id``)."""
        return self._send(p.rerun(job_id))

    def resume(self, job_id: str) -> r.Job:
        """Resume a failed job: its failed steps are tried again, its journal is kept."""
        return self._send(p.resume(job_id))

    def signal(self, job_id: str, name: str, data: Any = None, *, idempotency_key: str | None = None) -> r.Signal:
        """Send the signal ``name`` (payload ``data``) to a job's ``ctx.wait_for``; kept until a wait takes it.
        With ``idempotency_key``, sending again returns the signal sent the first time."""
        return self._send(p.signal(job_id, name, data, idempotency_key))

    def signals(self, job_id: str) -> list[r.Signal]:
        """The job's signals in the order they arrived, delivered or pending."""
        return self._send(p.signals(job_id))

    def events(
        self, job_id: str, last_event_id: str | None = None, *, timeout: float | None = None
    ) -> Iterator[r.Event]:
        """The job's server-sent events (job, task, approval, task.output), then ``end`` once it has finished.

        ``timeout``: raise TimeoutError once that many seconds have passed (checked as lines come;
        the server sends a keep-alive line every 15 s).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        headers = p.events_headers(last_event_id)
        try:
            with self.http.stream(
                "GET",
                p.events_path(job_id),
                headers=headers,
                timeout=httpx.Timeout(self.http.timeout.connect, read=timeout),
            ) as resp:
                if resp.status_code >= 400:
                    resp.read()
                    raise p.error_from(resp)
                decoder = p.EventDecoder()
                for line in resp.iter_lines():
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

    def job_types(self) -> list[r.JobType]:
        return self._send(p.job_types())

    def workers(self) -> list[r.Worker]:
        return self._send(p.workers())

    def status(self) -> dict[str, Any]:
        """The cluster on one page (``GET /status``, an admin key): lease, queues, jobs, workers, failures."""
        return self._send(p.status())

    # -- human in the loop ---------------------------------------------------------------------
    def approvals(
        self,
        *,
        status: str | None = None,
        job: str | None = None,
        assignee: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> r.ApprovalPage:
        return self._send(p.approvals(status, job, assignee, limit, cursor))

    def iter_approvals(
        self, *, status: str | None = None, job: str | None = None, assignee: str | None = None, page_size: int = 200
    ) -> Iterator[r.Approval]:
        cursor: str | None = None
        while True:
            page = self.approvals(status=status, job=job, assignee=assignee, limit=page_size, cursor=cursor)
            yield from page.approvals
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    def approval(self, approval_id: str) -> r.Approval:
        return self._send(p.approval(approval_id))

    def answer(
        self, approval_id: str, decision: str, *, input: Any = None, comment: str | None = None, by: str | None = None
    ) -> r.Approval:
        """``decision`` is approve or reject; ``input`` must fit the approval's ``schema`` to approve."""
        return self._send(p.answer(approval_id, decision, input, comment, by))

    # -- memory --------------------------------------------------------------------------------
    def memory_store(self, namespace: str, items: list[Mapping[str, Any]]) -> r.Stored:
        """Upsert items (``id``, ``text`` or ``vector``, ``metadata``, ``ttl``); all or nothing."""
        return self._send(p.memory_store(namespace, items))

    def memory_search(
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
        return self._send(p.memory_search(namespace, q, vector, k, filter, mode))

    def memory_get(self, namespace: str, item_id: str) -> r.MemoryItem:
        return self._send(p.memory_get(namespace, item_id))

    def memory_delete(self, namespace: str, item_id: str) -> None:
        self._send(p.memory_delete(namespace, item_id))

    def memory_delete_namespace(self, namespace: str) -> int:
        """Drop a namespace; returns how many items it held."""
        return self._send(p.memory_delete_namespace(namespace))

    def memory_namespaces(self) -> list[r.Namespace]:
        return self._send(p.memory_namespaces())
