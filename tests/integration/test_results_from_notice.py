"""A long-poll for a result answers from the end its job's finished notice carried, without
reading PostgreSQL, when that end answers as the record would; otherwise it reads the record.
In-process on real PostgreSQL and Redis: the job's end is committed and announced as the
orchestrator does (``Steps.record_replay``, then ``JobNotifier.finished`` with its ``JobEnd``)."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import redis
import uvicorn
from starlette.requests import Request

from agentbus.api import create_app
from agentbus.api.waiting import job_notices
from agentbus.bus import JobNotifier, JobWatch
from agentbus.config import Settings
from agentbus.domain import ErrorInfo, JobState
from agentbus.domain.messages import JobEnd
from agentbus.examples import app as examples
from agentbus.security import keys
from agentbus.store import NewJob


class Api:
    def __init__(self, url: str, web: Any, notifier: JobNotifier) -> None:
        self.url = url
        self.st = web.state.agentbus
        self.notifier = notifier  # the orchestrator's
        self.reads: list[str] = []
        get_job = self.st.jobs.get_job

        def counted(job_id: str, *args: Any, **kwargs: Any) -> Any:
            self.reads.append(job_id)
            return get_job(job_id, *args, **kwargs)

        self.st.jobs.get_job = counted  # every read of a job record the API makes

    def key(self, tenant: str) -> dict[str, str]:
        token, _ = self.st.keys.create_key(tenant, keys.SCOPES)
        return {"Authorization": f"Bearer {token}"}

    def long_poll(self, job_id: str, headers: dict[str, str], wait: float = 30) -> Future[httpx.Response]:
        """GET the results with ``?wait``, returned once its waiter is registered."""
        waiting = self.st.watch.waiting
        url = f"{self.url}/jobs/{job_id}/results?wait={wait:g}"
        pool = ThreadPoolExecutor(1)
        answer = pool.submit(httpx.get, url, headers=headers, timeout=wait + 10)
        pool.shutdown(wait=False)
        _until(lambda: self.st.watch.waiting > waiting or answer.done())
        return answer

    def end(self, end: JobEnd, notice: JobEnd | str | None = None) -> None:
        """Commit ``end`` as a replay does, then send its finished notice (``notice``: another one)."""
        assert self.st.steps.record_replay(end.job_id, [], end.state, result=end.result, error=end.error)
        self.notifier.finished([end if notice is None else notice])


def _until(check: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


@pytest.fixture
def api(pg_url: str, redis_url: str, redis_conn: redis.Redis) -> Iterator[Api]:
    settings = Settings(database_url=pg_url, redis_url=redis_url, rate_read="10000/s:10000")
    web = create_app(settings, examples)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    _until(lambda: server.started and web.state.agentbus.watch.healthy)
    try:
        yield Api(f"http://127.0.0.1:{port}", web, JobNotifier(redis_conn))
    finally:
        server.should_exit = True
        thread.join(10)
        web.state.repos.close()


def _submit(api: Api, headers: dict[str, str]) -> str:
    r = httpx.post(f"{api.url}/jobs", json={"type": "echo", "input": {"message": "hi"}}, headers=headers)
    assert r.status_code == 201
    job_id: str = r.json()["id"]
    return job_id


def test_a_long_poll_answers_from_the_end_in_the_notice_without_reading_the_record(api: Api) -> None:
    acme = api.key("acme")
    job = _submit(api, acme)  # submitted here: known to be open, the long-poll reads nothing first
    answer = api.long_poll(job, acme)
    result = {"echo": "hi", "n": [1, 2]}
    api.end(JobEnd(job, "acme", JobState.SUCCEEDED, result))
    r = answer.result()
    assert (r.status_code, r.json()) == (200, {"id": job, "status": "succeeded", "result": result, "error": None})
    assert api.reads == []

    other = api.st.jobs.create_job(NewJob("echo", {"message": "x"}, tenant="acme"))[0].id  # not submitted here
    answer = api.long_poll(other, acme)
    cancelled = ErrorInfo("Cancelled", "cancelled")
    api.end(JobEnd(other, "acme", JobState.CANCELLED, None, cancelled))
    r = answer.result()
    assert r.json() == {
        "id": other,
        "status": "cancelled",
        "result": None,
        "error": {"type": "Cancelled", "message": "cancelled"},
    }
    assert api.reads == [other]  # its first read only: the notice answered


def test_another_tenants_long_poll_is_a_404_not_the_result(api: Api, redis_url: str) -> None:
    job = _submit(api, api.key("acme"))
    answer = api.long_poll(job, api.key("umbrella"))
    assert answer.result().status_code == 404

    async def heard_by(tenant: str) -> JobEnd | None:  # past its first read, a waiter of another tenant reads again
        watch = JobWatch(redis_url)
        await watch.start()
        try:
            while not watch.healthy:
                await asyncio.sleep(0.01)
            request = Request({"type": "http"})
            async with job_notices(request, watch, job, follow_disconnect=False) as notices:
                await asyncio.to_thread(api.notifier.finished, [end])
                assert await notices.wait(20)
                return notices.answer(tenant)
        finally:
            await watch.stop()

    end = JobEnd(job, "acme", JobState.SUCCEEDED, "acme's secret")
    assert asyncio.run(heard_by("umbrella")) is None
    assert asyncio.run(heard_by("acme")) == end


def test_a_result_too_big_for_a_notice_is_read_from_the_record(api: Api) -> None:
    acme = api.key("acme")
    job = _submit(api, acme)
    answer = api.long_poll(job, acme)
    big = {"text": "x" * (100 * 1024)}
    api.end(JobEnd(job, "acme", JobState.SUCCEEDED, big))
    r = answer.result()
    assert (r.status_code, r.json()["result"]) == (200, big)
    assert api.reads == [job]


def test_a_bare_notice_wakes_the_long_poll_which_reads_the_record(api: Api) -> None:
    acme = api.key("acme")
    job = _submit(api, acme)
    answer = api.long_poll(job, acme)
    api.end(JobEnd(job, "acme", JobState.SUCCEEDED, "done"), notice=job)
    r = answer.result()
    assert (r.status_code, r.json()["result"]) == (200, "done")
    assert api.reads == [job]


def test_a_failed_jobs_notice_only_wakes_the_long_poll_the_record_answers(api: Api) -> None:
    """A failed job may be resumed: a notice of its failure heard after the resume must not answer."""
    acme = api.key("acme")
    job = _submit(api, acme)
    assert api.st.steps.record_replay(job, [], None)  # running (resumed, say) ...
    answer = api.long_poll(job, acme, wait=1)
    stale = JobEnd(job, "acme", JobState.FAILED, None, ErrorInfo("TaskFailed", "the first attempt failed"))
    api.notifier.finished([stale])  # ... heard late
    r = answer.result()
    assert (r.status_code, r.json()["status"]) == (202, "running")
    assert job in api.reads

    api.reads.clear()
    job = _submit(api, acme)
    answer = api.long_poll(job, acme)
    failed = ErrorInfo("TaskFailed", "boom", "Traceback\n")
    api.end(JobEnd(job, "acme", JobState.FAILED, None, failed))
    r = answer.result()
    assert (r.status_code, r.json()["error"]) == (
        200,
        {"type": "TaskFailed", "message": "boom", "traceback": "Traceback\n"},
    )
    assert api.reads == [job]  # after its notice
