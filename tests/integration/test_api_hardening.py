"""The API under a bad day, in-process on real PostgreSQL and Redis: the database pool, the
failed-auth limit, redirects, who answered an approval."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import uvicorn
from anyio._backends._asyncio import WorkerThread
from starlette.testclient import TestClient

from agentbus.api import create_app
from agentbus.config import Settings
from agentbus.domain import TaskState
from agentbus.domain.hitl import HumanRequest
from agentbus.examples import app as examples
from agentbus.security import keys
from agentbus.store import NewJob, NewStep, Repositories

ALL = keys.SCOPES
BAD = f"Bearer ab_{'1' * 12}_{'y' * 43}"


@pytest.fixture
def store(pg_url: str) -> Iterator[Repositories]:
    s = Repositories.from_url(pg_url)
    yield s
    s.close()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def served(
    pg_url: str, redis_url: str, store: Repositories, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, Any]]:
    """A real uvicorn server in this process, whose thread pool retires idle threads after 0.2 s
    (anyio's default is 10 s: injected rather than slept through). Created after ``store``:
    peewee binds the models to the database opened last, and it must be the API's."""
    monkeypatch.setattr(WorkerThread, "MAX_IDLE_TIME", 0.2)
    settings = Settings(database_url=pg_url, redis_url=redis_url, rate_read="10000/s:10000")
    web = create_app(settings, examples)
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(web, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}", web
    finally:
        server.should_exit = True
        thread.join(10)
        web.state.repos.close()


def test_connections_of_retired_threads_go_back_to_the_pool(store: Repositories, served: tuple[str, Any]) -> None:
    # Each burst runs on fresh threads (the last burst's retired while idle). A thread that kept
    # its connection took it to the grave: 3 bursts of 12 exhausted the pool of 32 for good.
    token, _ = store.keys.create_key("default", ALL)
    rec, _ = store.jobs.create_job(NewJob("echo", {"message": "x"}))
    url = f"{served[0]}/jobs/{rec.id}"

    def get(_: int) -> int | str:
        try:
            return httpx.get(url, headers=bearer(token), timeout=30).status_code
        except httpx.TimeoutException:
            return "timeout"

    for _ in range(4):
        with ThreadPoolExecutor(12) as pool:
            codes = list(pool.map(get, range(12)))
        assert set(codes) <= {200, 503}, codes
        time.sleep(0.6)  # the burst's threads go idle and retire
    assert get(0) == 200


def _until(check: Any, timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_a_client_that_hangs_up_frees_its_waiter(store: Repositories, served: tuple[str, Any]) -> None:
    token, _ = store.keys.create_key("default", ALL)
    rec, _ = store.jobs.create_job(NewJob("echo", {"message": "x"}))
    watch = served[1].state.agentbus.watch
    port = int(served[0].rpartition(":")[2])
    socks = []
    for path in [f"/jobs/{rec.id}/results?wait=60"] * 30 + [f"/jobs/{rec.id}/events"] * 10:
        s = socket.create_connection(("127.0.0.1", port), timeout=10)
        s.sendall(f"GET {path} HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {token}\r\n\r\n".encode())
        socks.append(s)
    _until(lambda: watch.waiting == 40)
    for s in socks:
        s.close()
    _until(lambda: watch.waiting == 0)  # long before their 60 s were up


def _app(settings: Settings, client: tuple[str, int] = ("127.0.0.1", 50000)) -> TestClient:
    return TestClient(create_app(settings, examples), client=client)


def test_a_valid_key_is_not_locked_out_by_other_peoples_failures(
    pg_url: str, redis_url: str, store: Repositories
) -> None:
    token, _ = store.keys.create_key("acme", ALL)
    with _app(Settings(database_url=pg_url, redis_url=redis_url, authfail_rate="1/m:3")) as web:
        failed = [web.get("/jobs", headers={"Authorization": BAD}).status_code for _ in range(6)]
        assert failed[:3] == [401] * 3 and set(failed[3:]) == {429}  # the failures are limited...
        assert web.get("/jobs", headers=bearer(token)).status_code == 200  # ...but not the valid key


def test_forwarded_addresses_are_ignored_unless_the_peer_is_a_trusted_proxy(pg_url: str, redis_url: str) -> None:
    settings = Settings(database_url=pg_url, redis_url=redis_url, authfail_rate="1/m:3")
    with _app(settings) as web:
        codes = [
            web.get(
                "/jobs", headers={"Authorization": f"Bearer nonsense-{i}", "X-Forwarded-For": f"203.0.113.{i}"}
            ).status_code
            for i in range(6)
        ]
    assert codes[:3] == [401] * 3 and set(codes[3:]) == {429}  # a rotating header buys nothing


def test_behind_a_trusted_proxy_each_client_address_has_its_own_failure_budget(pg_url: str, redis_url: str) -> None:
    settings = Settings(
        database_url=pg_url, redis_url=redis_url, authfail_rate="1/m:3", trusted_proxies=("127.0.0.0/8",)
    )

    def attempt(web: TestClient, forwarded: str, auth: str = "Bearer nonsense") -> int:
        return web.get("/jobs", headers={"Authorization": auth, "X-Forwarded-For": forwarded}).status_code

    with _app(settings) as web:
        # the client forges a left-hand hop; the proxy appended the real address on the right
        assert [attempt(web, f"198.51.100.{i}, 203.0.113.7") for i in range(5)] == [401, 401, 401, 429, 429]
        assert attempt(web, "203.0.113.8") == 401  # another client behind the same proxy
        # one key id tried from ever new addresses is still limited, by the key id
        tried = [attempt(web, f"192.0.2.{i}", BAD) for i in range(5)]
        assert tried[:3] == [401] * 3 and set(tried[3:]) == {429}


def test_a_trailing_slash_never_redirects_to_the_host_the_client_named(
    pg_url: str, redis_url: str, store: Repositories
) -> None:
    token, _ = store.keys.create_key("acme", ALL)
    with _app(Settings(database_url=pg_url, redis_url=redis_url)) as web:
        r = web.get("/jobs/", headers={**bearer(token), "Host": "evil.example"}, follow_redirects=False)
    assert r.status_code == 404
    assert "evil.example" not in r.headers.get("location", "")


def test_an_approval_records_the_key_that_answered_and_keeps_by_as_a_note(
    pg_url: str, redis_url: str, store: Repositories
) -> None:
    token, key = store.keys.create_key("acme", ALL)
    job, _ = store.jobs.create_job(NewJob("editorial", {"topic": "t"}, tenant="acme"))
    step = NewStep(job.id, 0, "human", "ask_human", TaskState.PENDING)
    store.steps.record_replay(job.id, [step], None, asks=[(0, HumanRequest.build("ok?"))])
    approval_id = f"{job.id}-0"
    with _app(Settings(database_url=pg_url, redis_url=redis_url)) as web:
        r = web.post(f"/approvals/{approval_id}", json={"decision": "approve", "by": "the-ceo"}, headers=bearer(token))
        assert r.status_code == 200, r.text
        assert r.json()["answered_key"] == key.id and r.json()["answered_by"] == "the-ceo"
        assert web.get(f"/approvals/{approval_id}", headers=bearer(token)).json()["answered_key"] == key.id


def test_a_full_pool_answers_503_at_once_and_readyz_reports_it(
    pg_url: str, redis_url: str, store: Repositories
) -> None:
    token, _ = store.keys.create_key("default", ALL)
    rec, _ = store.jobs.create_job(NewJob("echo", {"message": "x"}))
    settings = Settings(database_url=pg_url, redis_url=redis_url, db_pool_size=1, db_pool_timeout_s=0.5)
    web = create_app(settings, examples)  # created last: the models are bound to its database
    db = web.state.repos.db  # the pool of one connection
    taken, release = threading.Event(), threading.Event()

    def hold_the_only_connection() -> None:
        db.connect()
        taken.set()
        release.wait(30)
        db.close()

    holder = threading.Thread(target=hold_the_only_connection)
    holder.start()
    try:
        taken.wait(10)
        with TestClient(web, headers=bearer(token)) as client:
            ready = client.get("/readyz")
            assert ready.status_code == 503 and ready.json()["checks"]["postgresql"] != "ok"
            for _ in range(4):  # more than the breaker's fail_max: a busy pool does not open it
                r = client.get(f"/jobs/{rec.id}")
                assert r.status_code == 503 and r.headers["Retry-After"]
            release.set()
            holder.join(10)
            assert client.get(f"/jobs/{rec.id}").status_code == 200
            assert client.get("/readyz").status_code == 200
    finally:
        release.set()
        holder.join(10)
        web.state.repos.close()
