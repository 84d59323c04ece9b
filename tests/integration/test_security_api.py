"""The API's doors: keys, scopes, tenants, rate limits, request limits (in-process, real PostgreSQL and Redis)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from agentbus.api import create_app
from agentbus.config import Settings
from agentbus.domain import JobState, TaskState
from agentbus.domain.hitl import HumanRequest
from agentbus.examples import app as examples
from agentbus.security import keys
from agentbus.store import NewJob, NewStep, Repositories

ALL = keys.SCOPES


@pytest.fixture
def store(pg_url: str) -> Iterator[Repositories]:
    s = Repositories.from_url(pg_url)
    yield s
    s.close()


def make_client(settings: Settings) -> TestClient:
    return TestClient(create_app(settings, examples))


@pytest.fixture
def web(pg_url: str, redis_url: str) -> Iterator[TestClient]:
    with make_client(Settings(database_url=pg_url, redis_url=redis_url)) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_route_but_health_needs_a_key(pg_url: str, redis_url: str) -> None:
    with make_client(Settings(database_url=pg_url, redis_url=redis_url, authfail_rate="100/s:100")) as web:
        _every_route_needs_a_key(web)


def _every_route_needs_a_key(web: TestClient) -> None:
    assert web.get("/healthz").status_code == 200
    assert web.get("/readyz").status_code == 200
    for method, path in [
        ("GET", "/jobs"),
        ("POST", "/jobs"),
        ("GET", "/jobs/x"),
        ("GET", "/jobs/x/results"),
        ("POST", "/jobs/x/cancel"),
        ("GET", "/jobs/x/events"),
        ("GET", "/approvals"),
        ("POST", "/approvals/x"),
        ("GET", "/workers"),
        ("GET", "/openapi.json"),
        ("GET", "/job-types"),
    ]:
        r = web.request(method, path)
        assert r.status_code == 401, (method, path, r.status_code)
        assert r.headers["WWW-Authenticate"].startswith("Bearer")
        assert "missing API key" in r.json()["error"]["message"]


def test_malformed_unknown_revoked_and_expired_keys_are_401(pg_url: str, redis_url: str, store: Repositories) -> None:
    # no key cache (AGENTBUS_KEY_CACHE=0): the revocation below is seen at once, no waiting it out
    with make_client(Settings(database_url=pg_url, redis_url=redis_url, key_cache_s=0)) as web:
        _bad_keys_are_401(web, store)


def _bad_keys_are_401(web: TestClient, store: Repositories) -> None:
    good, rec = store.keys.create_key("acme", ALL)
    expired, _ = store.keys.create_key("acme", ALL, expires_in=0.01)
    time.sleep(0.05)
    assert web.get("/jobs", headers=bearer(good)).status_code == 200
    cases = {
        "Basic dXNlcjpwdw==": "malformed",
        "Bearer not-a-key": "malformed",
        f"Bearer ab_{'0' * 12}_{'x' * 43}": "unknown API key",
        f"Bearer {good[:-1]}{'A' if good[-1] != 'A' else 'B'}": "unknown API key",  # right id, wrong secret
        f"Bearer {expired}": "expired",
    }
    for header, said in cases.items():
        r = web.get("/jobs", headers={"Authorization": header})
        assert r.status_code == 401 and said in r.json()["error"]["message"], header
    store.keys.revoke_key(rec.id)
    r = web.get("/jobs", headers=bearer(good))
    assert r.status_code == 401 and "revoked" in r.json()["error"]["message"]


def test_a_missing_scope_is_403(web: TestClient, store: Repositories) -> None:
    reader, _ = store.keys.create_key("acme", ("jobs:read",))
    assert web.get("/jobs", headers=bearer(reader)).status_code == 200
    r = web.post("/jobs", json={"type": "echo", "input": {"message": "x"}}, headers=bearer(reader))
    assert r.status_code == 403 and "jobs:write" in r.json()["error"]["message"]
    assert web.get("/workers", headers=bearer(reader)).status_code == 403
    assert web.post("/approvals/x", json={"decision": "approve"}, headers=bearer(reader)).status_code == 403
    admin, _ = store.keys.create_key("acme", ("admin",))
    assert web.get("/workers", headers=bearer(admin)).status_code == 200


def test_another_tenants_objects_are_404_everywhere_and_never_listed(web: TestClient, store: Repositories) -> None:
    a, _ = store.keys.create_key("tenant-a", ALL)
    b, _ = store.keys.create_key("tenant-b", ALL)
    job = web.post("/jobs", json={"type": "echo", "input": {"message": "secret"}}, headers=bearer(a)).json()
    # an approval of tenant a, recorded the way the orchestrator records one
    asked, _ = store.jobs.create_job(NewJob("editorial", {"topic": "t"}, tenant="tenant-a"))
    step = NewStep(asked.id, 0, "human", "ask_human", TaskState.PENDING)
    store.steps.record_replay(asked.id, [step], None, asks=[(0, HumanRequest.build("ok?"))])
    approval = f"{asked.id}-0"
    for method, path, body in [
        ("GET", f"/jobs/{job['id']}", None),
        ("GET", f"/jobs/{job['id']}/results", None),
        ("GET", f"/jobs/{job['id']}/tasks", None),
        ("GET", f"/jobs/{job['id']}/events", None),
        ("POST", f"/jobs/{job['id']}/cancel", None),
        ("GET", f"/approvals/{approval}", None),
        ("POST", f"/approvals/{approval}", {"decision": "approve"}),
    ]:
        r = web.request(method, path, json=body, headers=bearer(b))
        assert r.status_code == 404, (method, path, r.status_code)
        if method == "GET" and not path.endswith("/events"):
            assert web.get(path, headers=bearer(a)).status_code in (200, 202), path
    assert web.get("/jobs", headers=bearer(b)).json()["jobs"] == []
    assert web.get("/approvals", headers=bearer(b)).json()["approvals"] == []
    assert [j["id"] for j in web.get("/jobs", headers=bearer(a)).json()["jobs"]] == [asked.id, job["id"]]
    assert store.jobs.get_job(job["id"]).state == JobState.SUBMITTED  # b's cancel did nothing


def test_idempotency_keys_are_per_tenant(web: TestClient, store: Repositories) -> None:
    a, _ = store.keys.create_key("tenant-a", ALL)
    b, _ = store.keys.create_key("tenant-b", ALL)
    body = {"type": "echo", "input": {"message": "x"}, "idempotency_key": "same"}
    ja = web.post("/jobs", json=body, headers=bearer(a))
    jb = web.post("/jobs", json=body, headers=bearer(b))
    assert ja.status_code == jb.status_code == 201 and ja.json()["id"] != jb.json()["id"]


def test_rate_limit_is_429_with_retry_after_and_ratelimit_headers(
    pg_url: str, redis_url: str, store: Repositories
) -> None:
    token, _ = store.keys.create_key("acme", ALL)
    settings = Settings(database_url=pg_url, redis_url=redis_url, rate_read="1/m:5", tenant_rate_factor=10)
    with make_client(settings) as web:
        codes = []
        last: Any = None
        for _ in range(8):
            last = web.get("/jobs", headers=bearer(token))
            codes.append(last.status_code)
        assert codes[:5] == [200] * 5 and 429 in codes[5:]
        assert int(last.headers["Retry-After"]) >= 1
        assert last.headers["RateLimit-Limit"] == "5" and last.headers["RateLimit-Remaining"] == "0"
        ok = web.get("/healthz")
        assert ok.status_code == 200  # health checks are never limited


def test_tenant_bucket_holds_across_keys_of_the_tenant(pg_url: str, redis_url: str, store: Repositories) -> None:
    # per key 1/s with a burst of 100; per tenant a burst of 5 refilled every 20 s: no refill during the test
    settings = Settings(database_url=pg_url, redis_url=redis_url, rate_read="60/m:100", tenant_rate_factor=0.05)
    tokens = [store.keys.create_key("acme", ALL)[0] for _ in range(3)]
    with make_client(settings) as web:
        codes = [web.get("/jobs", headers=bearer(tokens[i % 3])).status_code for i in range(12)]
    assert codes.count(200) == 5 and codes.count(429) == 7  # the tenant's bucket: 5, whichever key


def test_failed_authentication_is_rate_limited(pg_url: str, redis_url: str) -> None:
    settings = Settings(database_url=pg_url, redis_url=redis_url, authfail_rate="1/m:3")
    with make_client(settings) as web:
        codes = [
            web.get("/jobs", headers={"Authorization": f"Bearer ab_{'1' * 12}_{'y' * 43}"}).status_code
            for _ in range(6)
        ]
    assert codes[:3] == [401] * 3 and set(codes[3:]) == {429}


def test_tenant_cap_on_open_jobs(pg_url: str, redis_url: str, store: Repositories) -> None:
    token, _ = store.keys.create_key("acme", ALL)
    with make_client(Settings(database_url=pg_url, redis_url=redis_url, max_running_jobs=2)) as web:
        body = {"type": "echo", "input": {"message": "x"}}
        codes = [web.post("/jobs", json=body, headers=bearer(token)).status_code for _ in range(3)]
    assert codes == [201, 201, 429]


def test_request_limits(web: TestClient, store: Repositories) -> None:
    token, _ = store.keys.create_key("acme", ALL)
    h = bearer(token)
    deep: Any = "x"
    for _ in range(40):
        deep = [deep]
    r = web.post("/jobs", json={"type": "echo", "input": {"message": deep}}, headers=h)
    assert r.status_code == 413 and "nested" in r.json()["error"]["message"]
    r = web.post("/jobs", json={"type": "map_reduce", "input": {"n": 1, "extra": list(range(20_000))}}, headers=h)
    assert r.status_code == 413 and "array" in r.json()["error"]["message"]
    for forbidden in ("status", "tenant", "attempts", "result"):
        r = web.post("/jobs", json={"type": "echo", "input": {"message": "x"}, forbidden: "x"}, headers=h)
        assert r.status_code == 422 and forbidden in r.json()["error"]["message"], forbidden


def test_a_long_poll_for_a_job_just_submitted_is_scoped_and_answers_from_the_record(
    pg_url: str, redis_url: str, store: Repositories
) -> None:
    """The API skips the first read of a job it has just submitted (its end not yet heard of): the
    job stays its tenant's, and the answer is still the record's."""
    token, _ = store.keys.create_key("acme", ALL)
    other, _ = store.keys.create_key("umbrella", ALL)
    with make_client(Settings(database_url=pg_url, redis_url=redis_url)) as web:
        watch = web.app.state.agentbus.watch  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while not watch.healthy:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        job = web.post("/jobs", json={"type": "echo", "input": {"message": "x"}}, headers=bearer(token)).json()
        assert watch.still_open(job["id"], "acme")
        r = web.get(f"/jobs/{job['id']}/results?wait=1", headers=bearer(other))
        assert r.status_code == 404
        r = web.get(f"/jobs/{job['id']}/results?wait=0.3", headers=bearer(token))  # no orchestrator runs it
        assert r.status_code == 202 and r.json()["status"] == "submitted"
        web.post(f"/jobs/{job['id']}/cancel", headers=bearer(token))
        r = web.get(f"/jobs/{job['id']}/results?wait=5", headers=bearer(token))
        assert r.status_code == 200 and r.json()["status"] == "cancelled"
        assert not watch.still_open(job["id"], "acme")  # its finished notice was heard
