"""The Python clients against a running API (uvicorn on a real socket, real PostgreSQL and Redis).

Every test runs against ``Client`` and ``AsyncClient`` alike (the ``client`` fixture is
parametrized): the two must behave the same.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import uvicorn
from typer.testing import CliRunner

from agentbus.api import create_app
from agentbus.cli import cli
from agentbus.client import Approval, AsyncClient, Client, Event, Job, JobResult, Retry
from agentbus.config import Settings
from agentbus.domain import (
    Conflict,
    IdempotencyConflict,
    InvalidInput,
    NotFound,
    TaskState,
    Unauthorized,
    Unavailable,
    ValidationFailed,
)
from agentbus.domain.hitl import HumanRequest
from agentbus.examples import REVIEW_SCHEMA
from agentbus.examples import app as examples
from agentbus.security import keys
from agentbus.store import NewJob, NewStep, Repositories


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class Api:
    """The API role in a thread, serving HTTP on a free port."""

    def __init__(self, settings: Settings) -> None:
        self.store = Repositories.from_url(settings.database_url)
        self.key, _ = self.store.keys.create_key("default", keys.SCOPES)
        self.url = f"http://127.0.0.1:{_free_port()}"
        port = int(self.url.rsplit(":", 1)[1])
        config = uvicorn.Config(create_app(settings, examples), host="127.0.0.1", port=port, log_level="warning")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> Api:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the API did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.store.close()


class Blocking:
    """An ``AsyncClient`` called like a ``Client`` (on one event loop), so one test covers both."""

    def __init__(self, client: AsyncClient) -> None:
        self._client = client
        self._loop = asyncio.new_event_loop()

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._client, name)

        def call(*args: Any, **kwargs: Any) -> Any:
            value = method(*args, **kwargs)
            if inspect.isawaitable(value):
                return self._loop.run_until_complete(value)
            return iter(self._loop.run_until_complete(self._collect(value)))

        return call

    @staticmethod
    async def _collect(items: AsyncIterator[Any]) -> list[Any]:
        return [item async for item in items]

    def close(self) -> None:
        self._loop.run_until_complete(self._client.aclose())
        self._loop.close()


@pytest.fixture
def api(pg_url: str, redis_url: str) -> Iterator[Api]:
    with Api(Settings(database_url=pg_url, redis_url=redis_url)) as running:
        yield running


@pytest.fixture(params=["sync", "async"])
def client(api: Api, request: pytest.FixtureRequest) -> Iterator[Any]:
    c: Any = (
        Client(api.url, api_key=api.key) if request.param == "sync" else Blocking(AsyncClient(api.url, api_key=api.key))
    )
    try:
        yield c
    finally:
        c.close()


def ask(store: Repositories, schema: dict[str, Any] | None = None) -> Approval:
    """A job waiting for a person, recorded the way the orchestrator records one; its approval's id."""
    job, _ = store.jobs.create_job(NewJob("editorial", {"topic": "t"}))
    step = NewStep(job.id, 0, "human", "ask_human", TaskState.PENDING)
    store.steps.record_replay(job.id, [step], None, asks=[(0, HumanRequest.build("publish?", {"text": "t"}, schema))])
    return Approval.from_json({"id": f"{job.id}-0", "job_id": job.id, "status": "pending"})


def test_jobs_typed_and_still_readable_as_the_json(client: Any) -> None:
    job = client.submit("echo", {"message": "hi"}, idempotency_key="k1", priority=3)
    assert isinstance(job, Job) and job.status == "submitted" and job.priority == 3
    assert job["id"] == job.id and job.get("idempotency_key") == "k1"  # what callers of the dict client read
    assert client.submit("echo", {"message": "hi"}, idempotency_key="k1").id == job.id
    shown = client.job(job.id)
    assert shown.type == "echo" and shown.progress is not None and shown.created_at is not None
    assert [j.id for j in client.jobs(type="echo").jobs] == [job.id]
    assert [j.id for j in client.iter_jobs(page_size=1)] == [job.id]
    assert client.tasks(job.id).tasks == ()
    done, result = client.results(job.id)
    assert done is False and isinstance(result, JobResult) and not result.finished
    assert client.cancel(job.id).status == "cancelled"
    done, result = client.results(job.id, wait=1)
    assert (
        done
        and result.status == "cancelled"
        and result == {"id": job.id, "status": "cancelled", "result": None, "error": dict(result["error"])}
    )
    assert client.wait(job.id, timeout=5).status == "cancelled"
    events = list(client.events(job.id))
    assert all(isinstance(e, Event) for e in events) and events[-1].event == "end"
    assert [e.data["status"] for e in events if e.event == "job"] == ["submitted", "cancelled"]


def test_rerun_links_a_new_job_and_resume_refuses_a_job_that_did_not_fail(client: Any) -> None:
    job = client.submit("echo", {"message": "hi"}, priority=2)
    with pytest.raises(Conflict):
        client.rerun(job.id)  # still open
    client.cancel(job.id)
    again = client.rerun(job.id)
    assert again.id != job.id and again.rerun_of == job.id and again.priority == 2
    assert client.job(again.id).rerun_of == job.id
    with pytest.raises(Conflict):
        client.resume(job.id)  # cancelled, not failed


def test_cli_reruns_and_resumes_by_id_prefix(api: Api) -> None:
    env = {"AGENTBUS_API_URL": api.url, "AGENTBUS_API_KEY": api.key}
    with Client(api.url, api_key=api.key) as c:
        job = c.submit("echo", {"message": "hi"})
        c.cancel(job.id)
        rerun = CliRunner().invoke(cli, ["jobs", "rerun", job.id[:8]], env=env)
        assert rerun.exit_code == 0, rerun.output
        again = json.loads(rerun.stdout)
        assert again["rerun_of"] == job.id and again["id"] != job.id
        resumed = CliRunner().invoke(cli, ["jobs", "resume", job.id[:8]], env=env)
        assert resumed.exit_code != 0  # cancelled, not failed: the API's 409
        assert c.job(job.id).status == "cancelled"


def test_errors_are_the_servers_exception_classes(client: Any, api: Api) -> None:
    with pytest.raises(NotFound):
        client.job("nope")
    with pytest.raises(ValidationFailed) as invalid:
        client.submit("echo", {"message": 1})
    assert invalid.value.errors and invalid.value.errors[0]["loc"][-1] == "message"
    with pytest.raises(InvalidInput):
        client.jobs(status="bogus")
    client.submit("echo", {"message": "a"}, idempotency_key="same")
    with pytest.raises(IdempotencyConflict):
        client.submit("echo", {"message": "b"}, idempotency_key="same")
    with pytest.raises(NotFound):
        list(client.events("nope"))
    stranger = Client(api.url, api_key="ab_not-a-key")
    with stranger, pytest.raises(Unauthorized):
        stranger.jobs()
    with Client("http://127.0.0.1:9", retry=Retry(attempts=0)) as nowhere, pytest.raises(Unavailable):
        nowhere.jobs()


def test_approvals_list_get_answer(client: Any, api: Api) -> None:
    asked = ask(api.store, REVIEW_SCHEMA)
    (listed,) = client.approvals(status="pending").approvals
    assert listed.id == asked.id and listed.schema == REVIEW_SCHEMA and listed.data == {"text": "t"}
    assert [a.id for a in client.iter_approvals(job=asked.job_id)] == [asked.id]
    with pytest.raises(ValidationFailed):
        client.answer(asked.id, "approve", input={"title": 7})
    answered = client.answer(asked.id, "approve", input={"title": "T"}, comment="fine", by="ann")
    assert (answered.status, answered.answered_by, answered.input) == ("approved", "ann", {"title": "T"})
    assert client.approval(asked.id).decision == "approve"


def test_memory_store_search_get_delete(client: Any) -> None:
    stored = client.memory_store(
        "notes",
        [{"id": "a", "text": "bees make honey", "metadata": {"k": 1}}, {"id": "b", "text": "ants build colonies"}],
    )
    assert stored.namespace == "notes" and set(stored.ids) == {"a", "b"}
    hits = client.memory_search("notes", "honey bees", k=1)
    assert [h.id for h in hits] == ["a"] and hits[0].metadata == {"k": 1} and hits[0].score > 0
    assert client.memory_get("notes", "b").text == "ants build colonies"
    (ns,) = client.memory_namespaces()
    assert (ns.name, ns.count) == ("notes", 2)
    client.memory_delete("notes", "a")
    with pytest.raises(NotFound):
        client.memory_get("notes", "a")
    assert client.memory_delete_namespace("notes") >= 1  # (the count includes the deleted item's tombstone)
    assert client.memory_namespaces() == []


def test_memory_search_hybrid_finds_an_id_by_its_name(client: Any) -> None:
    client.memory_store(
        "tickets",
        [
            {"id": "t1", "text": "refund for invoice INV-2041 was approved"},
            {"id": "t2", "text": "customer asks about a refund for a late order"},
            {"id": "t3", "text": "shipping label printed for order 77"},
        ],
    )
    hits = client.memory_search("tickets", "INV-2041", k=1, mode="hybrid")
    assert [h.id for h in hits] == ["t1"]
    with pytest.raises(InvalidInput):
        client.memory_search("tickets", "refund", mode="fuzzy")


def test_workers_and_job_types(client: Any) -> None:
    assert client.workers() == []
    types = {t.name: t for t in client.job_types()}
    assert types["echo"].kind == "task" and "message" in types["echo"].input_schema["properties"]
    assert types["editorial"].kind == "agent"


def test_the_two_clients_have_the_same_methods() -> None:
    def public(cls: type) -> set[str]:
        return {n for n in vars(cls) if not n.startswith("_")}

    assert public(Client) - {"close"} == public(AsyncClient) - {"aclose"}
    for name in public(AsyncClient) - {"aclose"}:
        method = getattr(AsyncClient, name)
        assert inspect.iscoroutinefunction(method) or inspect.isasyncgenfunction(method), name


def test_jobs_for_later_and_schedules(client: Any) -> None:
    from datetime import UTC, datetime, timedelta

    later = client.submit("echo", {"message": "hi"}, delay=120)
    assert later.status == "scheduled" and later.run_at is not None
    at = client.submit("echo", {"message": "hi"}, run_at=datetime.now(UTC) + timedelta(hours=1))
    assert at.status == "scheduled"
    with pytest.raises(ValidationFailed):
        client.submit("echo", {"message": "hi"}, run_at=datetime.now() + timedelta(hours=1))  # no offset
    assert client.cancel(later.id).status == "cancelled"
    s = client.create_schedule("every-minute", "echo", "* * * * *", {"message": "tick"}, timezone="Europe/Paris")
    assert (s.name, s.cron, s.timezone, s.paused, len(s.upcoming)) == (
        "every-minute",
        "* * * * *",
        "Europe/Paris",
        False,
        3,
    )
    assert [x.id for x in client.schedules()] == [s.id]
    assert client.pause_schedule(s.id).paused
    assert not client.resume_schedule(s.id).paused
    assert client.schedule(s.id).next_run_at is not None
    with pytest.raises(Conflict):
        client.create_schedule("every-minute", "echo", "* * * * *", {"message": "tick"})
    with pytest.raises(ValidationFailed):
        client.create_schedule("bad", "echo", "* * *", {"message": "tick"})
    client.delete_schedule(s.id)
    with pytest.raises(NotFound):
        client.schedule(s.id)


def test_cli_submits_for_later_and_keeps_schedules_by_name(api: Api) -> None:
    env = {"AGENTBUS_API_URL": api.url, "AGENTBUS_API_KEY": api.key}
    run = CliRunner().invoke
    later = run(cli, ["submit", "echo", "-i", '{"message": "hi"}', "--delay", "60"], env=env)
    assert later.exit_code == 0, later.output
    assert json.loads(later.stdout)["status"] == "scheduled"
    at = run(cli, ["submit", "echo", "-i", '{"message": "hi"}', "--at", str(time.time() + 60)], env=env)
    assert json.loads(at.stdout)["status"] == "scheduled"
    made = run(
        cli,
        ["schedules", "create", "nightly", "echo", "0 2 * * *", "-i", '{"message": "n"}', "--tz", "Asia/Tokyo"],
        env=env,
    )
    assert made.exit_code == 0, made.output
    listed = run(cli, ["schedules", "list", "-o", "json"], env=env)
    (s,) = json.loads(listed.stdout)
    assert (s["name"], s["timezone"]) == ("nightly", "Asia/Tokyo")
    assert run(cli, ["schedules", "pause", "nightly"], env=env).exit_code == 0
    shown = run(cli, ["schedules", "show", s["id"][:6], "-o", "json"], env=env)
    assert json.loads(shown.stdout)["paused"] is True
    assert run(cli, ["schedules", "resume", "nightly"], env=env).exit_code == 0
    assert run(cli, ["schedules", "delete", "nightly"], env=env).exit_code == 0
    assert json.loads(run(cli, ["schedules", "list", "-o", "json"], env=env).stdout) == []
    bad = run(cli, ["schedules", "create", "x", "echo", "61 * * * *"], env=env)
    assert isinstance(bad.exception, ValidationFailed) and "minute" in str(bad.exception)  # main() exits 2
