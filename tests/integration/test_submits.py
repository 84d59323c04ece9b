"""Submits that arrive together are written together (api/submits.py), on a real PostgreSQL and Redis:
one statement for their jobs and one control message naming all of them, each tenant's cap exact."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from agentbus.api import create_app
from agentbus.api.submits import Submits
from agentbus.bus import ControlStream, Fleet, JobWatch
from agentbus.bus.stream import STREAM
from agentbus.config import Settings
from agentbus.domain import IdempotencyConflict, JobState, RateLimited
from agentbus.examples import app as examples
from agentbus.orchestrator.compose import compose_over
from agentbus.security import Keyring, keys
from agentbus.store import NewJob, Repositories


def announced(conn: redis.Redis, settings: Settings) -> list[dict[str, Any]]:
    """The control messages on the stream, opened as the orchestrator opens them."""
    ring = Keyring.parse(settings.secret)
    return [ring.open(fields[b"m"]) for _, fields in conn.xrange(STREAM)]


@pytest.fixture
def settings(pg_url: str, redis_url: str) -> Settings:
    return Settings(database_url=pg_url, redis_url=redis_url, max_running_jobs=5)


@pytest.fixture
def pg_store(pg_url: str) -> Iterator[Repositories]:
    store = Repositories.from_url(pg_url)
    yield store
    store.close()


def submits_over(store: Repositories, conn: redis.Redis, settings: Settings) -> Submits:
    stream = ControlStream(conn, Keyring.parse(settings.secret))
    return Submits(store.jobs, stream, JobWatch(settings.redis_url), settings.max_running_jobs)


def submit_all(submits: Submits, news: list[NewJob]) -> list[Any]:
    """Every submit at once on one event loop: each is queued before the first batch is written."""

    async def main() -> list[Any]:
        return list(await asyncio.gather(*(submits.submit(n, 0.0) for n in news), return_exceptions=True))

    return asyncio.run(main())


def test_submits_that_arrive_together_are_one_batch_and_one_control_message(
    pg_store: Repositories, redis_conn: redis.Redis, settings: Settings
) -> None:
    submits = submits_over(pg_store, redis_conn, settings)
    news = [NewJob("echo", {"message": str(i)}, tenant=f"t{i % 3}") for i in range(9)]
    results = submit_all(submits, news)
    ids = [rec.id for rec, created in results if created]
    assert len(set(ids)) == 9
    for rec, _ in results:
        assert pg_store.jobs.get_job(rec.id) == rec and rec.state is JobState.SUBMITTED
    # one message for the batch, naming every new job in the order submitted
    assert [(m["kind"], m["job_ids"]) for m in announced(redis_conn, settings)] == [("job.submitted", ids)]


def test_in_a_batch_each_tenant_gets_exactly_its_cap_and_one_submit_error_answers_that_submit_only(
    pg_store: Repositories, redis_conn: redis.Redis, settings: Settings
) -> None:
    pg_store.jobs.create_job(NewJob("echo", {"message": "open"}, tenant="acme"))
    pg_store.jobs.create_job(NewJob("echo", {"message": "z"}, tenant="zeta", idempotency_key="z"))
    submits = submits_over(pg_store, redis_conn, settings)
    news = [NewJob("echo", {"message": str(i)}, tenant="acme" if i < 8 else "zeta") for i in range(10)]
    news += [NewJob("echo", {"message": "k"}, tenant="zeta", idempotency_key="k")]
    news += [NewJob("echo", {"message": "changed"}, tenant="zeta", idempotency_key="z")]
    results = submit_all(submits, news)
    acme, zeta, zeta_keyed, conflict = results[:8], results[8:10], results[10], results[11]
    # acme had one open job: 4 more fit under its cap of 5, the first 4
    assert [isinstance(r, tuple) for r in acme] == [True] * 4 + [False] * 4
    assert all(isinstance(r, RateLimited) for r in acme[4:])
    assert all(isinstance(r, tuple) and r[1] for r in (*zeta, zeta_keyed))
    assert isinstance(conflict, IdempotencyConflict)
    assert pg_store.jobs.running_jobs("acme") == 5 and pg_store.jobs.running_jobs("zeta") == 4


def _client(settings: Settings, store: Repositories) -> TestClient:
    token, _ = store.keys.create_key("acme", keys.SCOPES)
    return TestClient(create_app(settings, examples), headers={"Authorization": f"Bearer {token}"})


def _post_at_once(client: TestClient, n: int) -> list[tuple[int, dict[str, Any]]]:
    body = {"type": "echo", "input": {"message": "x"}}
    with ThreadPoolExecutor(n) as pool:
        responses = list(pool.map(lambda _: client.post("/jobs", json=body), range(n)))
    return [(r.status_code, r.json()) for r in responses]


def test_many_submits_at_once_over_http_are_all_created_stored_and_announced(
    pg_store: Repositories, redis_conn: redis.Redis, pg_url: str, redis_url: str
) -> None:
    settings = Settings(database_url=pg_url, redis_url=redis_url)
    with _client(settings, pg_store) as client:
        answers = _post_at_once(client, 40)
    client.app.state.repos.close()  # type: ignore[attr-defined]
    assert [code for code, _ in answers] == [201] * 40
    ids = {body["id"] for _, body in answers}
    assert len(ids) == 40
    assert {j.id for j in pg_store.jobs.list_jobs(tenant="acme", limit=100)[0]} == ids
    named = [job_id for m in announced(redis_conn, settings) for job_id in m["job_ids"]]
    assert sorted(named) == sorted(ids)  # each job announced once to the orchestrator
    driver = compose_over(examples, settings, pg_store, redis_conn, workers=Fleet(redis_conn, ttl_s=30)).driver
    for job_id in driver.advance_many(named):  # as the orchestrator handles what it reads
        driver.advance(job_id)
    assert {pg_store.jobs.get_job(job_id).state for job_id in ids} == {JobState.RUNNING}


def test_the_tenant_cap_holds_exactly_for_submits_at_once_over_http(
    pg_store: Repositories, redis_conn: redis.Redis, settings: Settings
) -> None:
    with _client(settings, pg_store) as client:
        answers = _post_at_once(client, 20)
    client.app.state.repos.close()  # type: ignore[attr-defined]
    codes = sorted(code for code, _ in answers)
    assert codes == [201] * 5 + [429] * 15
    assert pg_store.jobs.running_jobs("acme") == 5
    assert all("its cap is 5" in body["error"]["message"] for code, body in answers if code == 429)
