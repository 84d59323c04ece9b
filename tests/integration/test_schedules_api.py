"""Jobs for later and schedules over HTTP (in-process API, real PostgreSQL and Redis)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
import redis
from starlette.testclient import TestClient

from agentbus.api import create_app
from agentbus.bus.stream import STREAM
from agentbus.config import Settings
from agentbus.security import keys
from agentbus.store import Repositories

from fixture_app import app as examples


def make_key(database_url: str, tenant: str = "default", scopes: tuple[str, ...] = keys.SCOPES) -> str:
    store = Repositories.from_url(database_url)
    token, _ = store.keys.create_key(tenant, scopes)
    store.close()
    return token


@pytest.fixture
def settings(pg_url: str, redis_url: str) -> Settings:
    return Settings(database_url=pg_url, redis_url=redis_url)


def _client(settings: Settings, tenant: str = "default") -> Iterator[TestClient]:
    web = create_app(settings, examples)
    headers = {"Authorization": f"Bearer {make_key(settings.database_url, tenant)}"}
    try:
        with TestClient(web, headers=headers) as client:
            yield client
    finally:
        web.state.repos.close()


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    yield from _client(settings)


@pytest.fixture
def other(settings: Settings) -> Iterator[TestClient]:
    yield from _client(settings, "acme")


def test_a_delayed_job_is_accepted_scheduled_listed_and_not_announced(client: TestClient, redis_url: str) -> None:
    before = redis.Redis.from_url(redis_url).xlen(STREAM)
    r = client.post("/jobs", json={"type": "nap", "input": {"seconds": 0}, "delay": 60})
    assert r.status_code == 201, r.text
    job = r.json()
    assert job["status"] == "scheduled"
    due = datetime.fromisoformat(job["run_at"].replace("Z", "+00:00")).timestamp()
    assert 50 < due - time.time() <= 60
    assert redis.Redis.from_url(redis_url).xlen(STREAM) == before  # the sweep starts it, not a message
    listed = client.get("/jobs", params={"status": "scheduled"}).json()["jobs"]
    assert [j["id"] for j in listed] == [job["id"]]
    assert client.post(f"/jobs/{job['id']}/cancel").json()["status"] == "cancelled"


def test_run_at_takes_an_offset_time_or_unix_seconds_and_a_past_one_runs_now(client: TestClient) -> None:
    at = datetime.fromtimestamp(time.time() + 3600, UTC).isoformat()
    assert client.post("/jobs", json={"type": "nap", "run_at": at}).json()["status"] == "scheduled"
    assert client.post("/jobs", json={"type": "nap", "run_at": time.time() + 3600}).json()["status"] == "scheduled"
    assert client.post("/jobs", json={"type": "nap", "run_at": time.time() - 5}).json()["status"] == "submitted"


def test_a_delayed_job_keeps_its_idempotency_key(client: TestClient) -> None:
    body = {"type": "nap", "delay": 30, "idempotency_key": "later-1"}
    first = client.post("/jobs", json=body)
    again = client.post("/jobs", json=body)
    assert (first.status_code, again.status_code) == (201, 200)
    assert first.json()["id"] == again.json()["id"]


@pytest.mark.parametrize(
    "extra",
    [
        {"delay": 5, "run_at": time.time() + 5},
        {"delay": -1},
        {"delay": "soon"},
        {"run_at": "next tuesday"},
        {"run_at": "2030-01-01T09:00:00"},
        {"run_at": True},
        {"delay": 10 * 365 * 86_400},
    ],
)
def test_a_bad_time_is_422(client: TestClient, extra: dict[str, object]) -> None:
    r = client.post("/jobs", json={"type": "nap", **extra})
    assert r.status_code == 422, r.text


SCHEDULE = {"name": "nightly", "agent": "nap", "input": {"seconds": 0}, "cron": "0 2 * * *", "timezone": "Europe/Paris"}


def test_create_list_show_pause_resume_delete(client: TestClient) -> None:
    r = client.post("/schedules", json=SCHEDULE)
    assert r.status_code == 201, r.text
    s = r.json()
    shown = (s["name"], s["agent"], s["catch_up"], s["paused"], s["origin"])
    assert shown == ("nightly", "nap", "latest", False, "api")
    assert len(s["upcoming"]) == 3 and s["next_run_at"] == s["upcoming"][0]
    # 02:00 in Paris is 00:00 or 01:00 UTC
    assert s["next_run_at"][11:16] in ("00:00", "01:00")
    assert [x["id"] for x in client.get("/schedules").json()["schedules"]] == [s["id"]]
    assert client.get(f"/schedules/{s['id']}").json()["cron"] == "0 2 * * *"
    paused = client.post(f"/schedules/{s['id']}/pause").json()
    assert paused["paused"] and paused["next_run_at"] is None
    resumed = client.post(f"/schedules/{s['id']}/resume").json()
    assert not resumed["paused"] and resumed["next_run_at"] == s["next_run_at"]
    assert client.delete(f"/schedules/{s['id']}").json() == {"id": s["id"], "deleted": True}
    assert client.get(f"/schedules/{s['id']}").status_code == 404
    assert client.delete(f"/schedules/{s['id']}").status_code == 404


def test_a_duplicate_name_is_409(client: TestClient) -> None:
    assert client.post("/schedules", json=SCHEDULE).status_code == 201
    assert client.post("/schedules", json=SCHEDULE).status_code == 409


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"cron": "61 * * * *"}, "cron"),
        ({"cron": "* * *"}, "cron"),
        ({"timezone": "Mars/Olympus"}, "timezone"),
        ({"agent": "no_such_agent"}, "agent"),
        ({"input": {"seconds": "long"}}, "seconds"),
        ({"catch_up": "sometimes"}, "catch_up"),
        ({"name": ""}, "name"),
    ],
)
def test_a_bad_schedule_is_422_naming_the_field(client: TestClient, change: dict[str, object], field: str) -> None:
    r = client.post("/schedules", json={**SCHEDULE, **change})
    assert r.status_code == 422, r.text
    assert field in r.text


def test_schedules_are_the_tenants_own(client: TestClient, other: TestClient) -> None:
    s = client.post("/schedules", json=SCHEDULE).json()
    assert other.get("/schedules").json()["schedules"] == []
    for r in (
        other.get(f"/schedules/{s['id']}"),
        other.post(f"/schedules/{s['id']}/pause"),
        other.delete(f"/schedules/{s['id']}"),
    ):
        assert r.status_code == 404
    assert other.post("/schedules", json=SCHEDULE).status_code == 201  # names are unique per tenant


def test_a_read_only_key_cannot_create_a_schedule(settings: Settings) -> None:
    web = create_app(settings, examples)
    token = make_key(settings.database_url, scopes=("jobs:read",))
    try:
        with TestClient(web, headers={"Authorization": f"Bearer {token}"}) as c:
            assert c.get("/schedules").status_code == 200
            assert c.post("/schedules", json=SCHEDULE).status_code == 403
    finally:
        web.state.repos.close()


def test_a_schedules_jobs_name_it(client: TestClient, pg_url: str) -> None:
    s = client.post("/schedules", json=SCHEDULE).json()
    repos = Repositories.from_url(pg_url)
    try:
        rec = repos.schedules.get(s["id"])
        (job_id,) = repos.schedules.fire(rec, [rec.next_tick], rec.next_tick + 86_400, time.time()) or []
    finally:
        repos.close()
    job = client.get(f"/jobs/{job_id}").json()
    assert job["schedule_id"] == s["id"] and job["schedule_tick"] == s["next_run_at"]
    assert client.get(f"/schedules/{s['id']}").json()["last_job_id"] == job_id
