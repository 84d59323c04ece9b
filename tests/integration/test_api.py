"""The HTTP API in-process (starlette TestClient) on a real PostgreSQL and Redis."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
import redis
from starlette.routing import Route
from starlette.testclient import TestClient

from agentbus.api import create_app
from agentbus.bus import Fleet
from agentbus.bus.stream import STREAM
from agentbus.config import Settings
from agentbus.domain import Conflict, Dispatch, ErrorInfo, JobState, TaskCall, TaskState
from agentbus.orchestrator.compose import compose_over
from agentbus.orchestrator.driver import Driver
from agentbus.security import Keyring, keys
from agentbus.store import NewStep, Repositories, TaskOutcome, step_id
from agentbus.worker.execute import Executor

from fixture_app import app as examples

CLOSED_REDIS = "redis://127.0.0.1:1/0"


def _no_server_errors(response: httpx.Response) -> None:
    assert response.status_code != 500, f"{response.request.method} {response.request.url} answered 500"


def make_key(database_url: str, tenant: str = "default", scopes: tuple[str, ...] = keys.SCOPES) -> str:
    store = Repositories.from_url(database_url)
    token, _ = store.keys.create_key(tenant, scopes)
    store.close()
    return token


@contextmanager
def _client(settings: Settings) -> Iterator[TestClient]:
    web = create_app(settings, examples)
    headers = {"Authorization": f"Bearer {make_key(settings.database_url)}"}
    try:
        with TestClient(web, headers=headers) as client:
            client.event_hooks["response"].append(_no_server_errors)
            yield client
    finally:
        web.state.repos.close()


@pytest.fixture
def settings(pg_url: str, redis_url: str) -> Settings:
    return Settings(database_url=pg_url, redis_url=redis_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with _client(settings) as c:
        yield c


@pytest.fixture
def sqlite_client(sqlite_url: str, redis_url: str) -> Iterator[TestClient]:
    """For the routes that never read the database: a cheaper store than a fresh PostgreSQL database."""
    with _client(Settings(database_url=sqlite_url, redis_url=redis_url)) as c:
        yield c


def store_of(client: TestClient) -> Repositories:
    store: Repositories = client.app.state.repos  # type: ignore[attr-defined]
    return store


def driver_over(store: Repositories, conn: redis.Redis, settings: Settings) -> Driver:
    """An orchestrator's driver over the API's store, driven by hand."""
    ring = Keyring.parse("k1:traceback-test-secret-0123456")
    return compose_over(examples, settings, store, conn, ring=ring, workers=Fleet(conn, ttl_s=30)).driver


def events(conn: redis.Redis, settings: Settings) -> list[dict[str, Any]]:
    ring = Keyring.parse(settings.secret)
    return [ring.open(fields[b"m"]) for _, fields in conn.xrange(STREAM)]


def submit(client: TestClient, type: str = "echo", input: dict[str, Any] | None = None, **extra: Any) -> httpx.Response:
    return client.post("/jobs", json={"type": type, "input": {"message": "hi"} if input is None else input, **extra})


def error(response: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = response.json()["error"]
    assert body["status"] == response.status_code
    return body


# -- submit -------------------------------------------------------------------------------------


def test_submit_creates_a_job_and_announces_it(client: TestClient, redis_conn: redis.Redis, settings: Settings) -> None:
    r = submit(client, input={"message": "hello"}, priority=2)
    assert r.status_code == 201
    job = r.json()
    assert (job["type"], job["status"], job["input"], job["priority"]) == ("echo", "submitted", {"message": "hello"}, 2)
    assert job["created_at"].endswith("Z") and job["finished_at"] is None
    assert events(redis_conn, settings) == [{"kind": "job.submitted", "job_ids": [job["id"]]}]


def test_submit_applies_input_defaults(client: TestClient) -> None:
    r = submit(client, "map_reduce", {})
    assert r.status_code == 201
    assert r.json()["input"] == {"n": 100}


def test_same_idempotency_key_returns_the_same_job(
    client: TestClient, redis_conn: redis.Redis, settings: Settings
) -> None:
    first = submit(client, idempotency_key="order-42")
    again = submit(client, idempotency_key="order-42")
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["id"] == first.json()["id"]
    assert len(events(redis_conn, settings)) == 1


def test_same_idempotency_key_with_another_input_conflicts(client: TestClient) -> None:
    assert submit(client, idempotency_key="order-42").status_code == 201
    r = submit(client, input={"message": "something else"}, idempotency_key="order-42")
    assert r.status_code == 409
    assert error(r)["type"] == "IdempotencyConflict"


def test_malformed_json_is_400(client: TestClient, subtests: pytest.Subtests) -> None:
    for body in (b"{not json", b'{"type": "echo",', b"\xff\xfe", b""):
        with subtests.test(body=body):
            r = client.post("/jobs", content=body, headers={"content-type": "application/json"})
            assert r.status_code == 400
            assert error(r)["type"] == "InvalidInput"


def test_body_that_is_not_an_object_is_422(client: TestClient, subtests: pytest.Subtests) -> None:
    for body in ([1, 2], "echo", 3, None):
        with subtests.test(body=body):
            r = client.post("/jobs", content=json.dumps(body))
            assert r.status_code == 422
            assert error(r)["errors"][0]["loc"] == ["body"]


def test_unknown_job_type_is_404(client: TestClient) -> None:
    r = submit(client, "no_such_type", {})
    assert r.status_code == 404
    assert "echo" in error(r)["message"]


def test_input_failing_the_schema_is_422_with_the_field_path(client: TestClient, subtests: pytest.Subtests) -> None:
    cases: list[tuple[str, dict[str, Any], list[str]]] = [
        ("echo", {"message": 5}, ["input", "message"]),
        ("echo", {}, ["input", "message"]),
        ("echo", {"message": "hi", "extra": 1}, ["input", "extra"]),  # unknown input field
        ("map_reduce", {"n": "many"}, ["input", "n"]),
    ]
    for type, input, loc in cases:
        with subtests.test(type=type, input=input):
            r = submit(client, type, input)
            assert r.status_code == 422
            body = error(r)
            assert body["type"] == "ValidationFailed"
            assert body["errors"][0]["loc"] == loc


def test_bad_top_level_fields_are_422(client: TestClient, subtests: pytest.Subtests) -> None:
    cases: list[tuple[dict[str, Any], list[str]]] = [
        ({"type": "echo", "input": {"message": "hi"}, "status": "succeeded"}, ["status"]),  # unknown field
        ({"type": "echo", "input": {"message": "hi"}, "priority": 99}, ["priority"]),
        ({"type": "echo", "input": "hi"}, ["input"]),
        ({"input": {"message": "hi"}}, ["type"]),
        ({"type": "", "input": {}}, ["type"]),
        ({"type": "echo", "input": {"message": "hi"}, "idempotency_key": ""}, ["idempotency_key"]),
    ]
    for body, loc in cases:
        with subtests.test(body=body):
            r = client.post("/jobs", json=body)
            assert r.status_code == 422
            assert error(r)["errors"][0]["loc"] == loc


def test_nothing_is_created_by_a_rejected_submit(client: TestClient, redis_conn: redis.Redis) -> None:
    submit(client, "echo", {"message": 5})
    submit(client, "no_such_type", {})
    assert client.get("/jobs").json()["jobs"] == []
    assert not redis_conn.exists(STREAM)


@pytest.fixture
def small_client(pg_url: str, redis_url: str) -> Iterator[TestClient]:
    with _client(Settings(database_url=pg_url, redis_url=redis_url, max_body_bytes=1024)) as c:
        yield c


def test_body_over_the_limit_is_413(small_client: TestClient) -> None:
    assert submit(small_client, input={"message": "x" * 500}).status_code == 201
    r = submit(small_client, input={"message": "x" * 2000})
    assert r.status_code == 413
    assert error(r)["type"] == "PayloadTooLarge"


def test_streamed_body_over_the_limit_is_413(small_client: TestClient) -> None:
    payload = json.dumps({"type": "echo", "input": {"message": "x" * 4000}}).encode()

    def chunks() -> Iterator[bytes]:
        for i in range(0, len(payload), 256):
            yield payload[i : i + 256]

    r = small_client.post("/jobs", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in r.request.headers
    assert r.status_code == 413


def test_submit_while_redis_is_down_still_records_the_job(pg_url: str) -> None:
    with _client(Settings(database_url=pg_url, redis_url=CLOSED_REDIS)) as c:
        r = submit(c)
        assert r.status_code == 201  # the reconciler announces it once Redis is back
        assert c.get(f"/jobs/{r.json()['id']}").json()["status"] == "submitted"


# -- read ---------------------------------------------------------------------------------------


def test_get_job_with_progress(client: TestClient) -> None:
    job_id = submit(client, "map_reduce", {"n": 2}).json()["id"]
    r = client.get(f"/jobs/{job_id}")
    assert r.status_code == 200
    assert (r.json()["id"], r.json()["progress"]) == (job_id, {"done": 0, "total": 0})

    steps = [NewStep(job_id, i, "task", "square", TaskState.QUEUED, args={"x": i}) for i in range(2)]
    assert store_of(client).steps.record_replay(job_id, steps, None)
    body = client.get(f"/jobs/{job_id}").json()
    assert body["status"] == "running"
    assert body["started_at"] is not None
    assert body["progress"] == {"done": 0, "total": 2, "queued": 2}


def test_results_are_202_until_the_job_finishes(client: TestClient) -> None:
    job_id = submit(client).json()["id"]
    r = client.get(f"/jobs/{job_id}/results")
    assert r.status_code == 202
    assert r.json() == {"id": job_id, "status": "submitted"}

    assert store_of(client).steps.record_replay(job_id, [], JobState.SUCCEEDED, result="hi")
    r = client.get(f"/jobs/{job_id}/results")
    assert r.status_code == 200
    assert r.json() == {"id": job_id, "status": "succeeded", "result": "hi", "error": None}


def test_results_of_a_failed_job_carry_the_error(client: TestClient) -> None:
    job_id = submit(client).json()["id"]
    store_of(client).steps.record_replay(job_id, [], JobState.FAILED, error=ErrorInfo("ValueError", "no luck"))
    r = client.get(f"/jobs/{job_id}/results")
    assert r.status_code == 200
    assert r.json()["error"] == {"type": "ValueError", "message": "no luck"}


def test_unknown_job_is_404(client: TestClient) -> None:
    for r in (
        client.get("/jobs/0123456789abcdef"),
        client.get("/jobs/0123456789abcdef/results"),
        client.post("/jobs/0123456789abcdef/cancel"),
    ):
        assert r.status_code == 404
        assert error(r)["type"] == "NotFound"


def test_overlong_job_id_is_400(client: TestClient) -> None:
    assert client.get("/jobs/" + "x" * 121).status_code == 400


def test_list_jobs_filters_and_pages(client: TestClient) -> None:
    ids = [submit(client, input={"message": str(i)}).json()["id"] for i in range(5)]
    other = submit(client, "map_reduce", {"n": 1}).json()["id"]
    client.post(f"/jobs/{ids[0]}/cancel")

    listed = client.get("/jobs").json()
    assert {j["id"] for j in listed["jobs"]} == {*ids, other}
    assert listed["next_cursor"] is None

    cancelled = client.get("/jobs", params={"status": "cancelled"}).json()["jobs"]
    assert [j["id"] for j in cancelled] == [ids[0]]
    both = client.get("/jobs", params={"status": "submitted,cancelled", "type": "echo"}).json()["jobs"]
    assert {j["id"] for j in both} == set(ids)
    assert [j["id"] for j in client.get("/jobs", params={"type": "map_reduce"}).json()["jobs"]] == [other]

    seen: list[str] = []
    params: dict[str, Any] = {"limit": 4}
    while True:
        page = client.get("/jobs", params=params).json()
        seen += [j["id"] for j in page["jobs"]]
        if page["next_cursor"] is None:
            break
        params["cursor"] = page["next_cursor"]
    assert sorted(seen) == sorted([*ids, other])


def test_list_jobs_bad_query_is_400(client: TestClient, subtests: pytest.Subtests) -> None:
    for params in (
        {"status": "bogus"},
        {"status": "submitted,done"},
        {"limit": "0"},
        {"limit": "201"},
        {"limit": "ten"},
        {"limit": "-1"},
        {"cursor": "!!!"},
        {"stauts": "submitted"},
    ):
        with subtests.test(params=params):
            r = client.get("/jobs", params=params)
            assert r.status_code == 400
            assert error(r)["type"] == "InvalidInput"


# -- cancel -------------------------------------------------------------------------------------


def test_cancel_is_idempotent_and_announced(client: TestClient, redis_conn: redis.Redis, settings: Settings) -> None:
    job_id = submit(client).json()["id"]
    r = client.post(f"/jobs/{job_id}/cancel")
    assert r.status_code == 200
    assert r.json()["status"] == "cancelled"
    assert client.get(f"/jobs/{job_id}").json()["status"] == "cancelled"
    again = client.post(f"/jobs/{job_id}/cancel")
    assert again.status_code == 200 and again.json()["status"] == "cancelled"
    assert {"kind": "job.cancel", "job_ids": [job_id]} in events(redis_conn, settings)
    results = client.get(f"/jobs/{job_id}/results")
    assert results.status_code == 200 and results.json()["status"] == "cancelled"


def test_cancel_of_a_succeeded_job_is_409(client: TestClient) -> None:
    job_id = submit(client).json()["id"]
    assert store_of(client).steps.record_replay(job_id, [], JobState.SUCCEEDED, result="hi")
    r = client.post(f"/jobs/{job_id}/cancel")
    assert r.status_code == 409
    assert error(r)["type"] == "Conflict"
    assert client.get(f"/jobs/{job_id}").json()["status"] == "succeeded"


# -- rerun and resume ---------------------------------------------------------------------------


def _settle(store: Repositories, driver: Driver, job_id: str, seq: int, attempt: int, outcome: TaskOutcome) -> None:
    """The worker's part by hand: take call ``seq`` of the job and report ``outcome``, then replay."""
    call = step_id(job_id, seq)
    assert store.steps.mark_running([(call, attempt)], "w1") == {call}
    assert store.steps.record_outcomes([outcome]) == [job_id]
    driver.advance(job_id)


def _failed_two_steps(client: TestClient, driver: Driver) -> str:
    """A ``two_steps`` job whose first call succeeded and whose second failed for good."""
    store = store_of(client)
    job_id = submit(client, "two_steps", {"x": 3}).json()["id"]
    driver.advance(job_id)
    _settle(store, driver, job_id, 0, 1, TaskOutcome(step_id(job_id, 0), 1, TaskState.SUCCEEDED, result=9))
    failure = ErrorInfo("ValueError", "flaked")
    _settle(store, driver, job_id, 1, 1, TaskOutcome(step_id(job_id, 1), 1, TaskState.FAILED, error=failure))
    assert client.get(f"/jobs/{job_id}").json()["status"] == "failed"
    return job_id


def test_resume_retries_the_failed_step_and_keeps_the_ones_that_succeeded(
    client: TestClient, redis_conn: redis.Redis, settings: Settings
) -> None:
    store = store_of(client)
    driver = driver_over(store, redis_conn, settings)
    job_id = _failed_two_steps(client, driver)

    r = client.post(f"/jobs/{job_id}/resume")
    assert r.status_code == 200
    assert (r.json()["status"], r.json()["error"], r.json()["finished_at"]) == ("running", None, None)
    assert {"kind": "job.advance", "job_ids": [job_id]} in events(redis_conn, settings)
    tasks = {t["seq"]: t for t in client.get(f"/jobs/{job_id}").json()["tasks"]}
    assert (tasks[0]["state"], tasks[0]["attempt"]) == ("succeeded", 1)  # not run again
    assert (tasks[1]["state"], tasks[1]["attempt"], tasks[1]["error_type"]) == ("pending", 2, None)

    assert driver.admission.dispatch_pending() == 1  # the orchestrator sends it as any waiting call
    # the new attempt's outcome replaces the failure in what the replayed agent sees
    _settle(store, driver, job_id, 1, 2, TaskOutcome(step_id(job_id, 1), 2, TaskState.SUCCEEDED, result=81))
    done = client.get(f"/jobs/{job_id}/results").json()
    assert (done["status"], done["result"], done["error"]) == ("succeeded", {"first": 9, "second": 81}, None)
    assert [t["attempt"] for t in client.get(f"/jobs/{job_id}/tasks").json()["tasks"]] == [1, 2]


def test_resume_is_409_unless_a_step_of_a_failed_job_failed(client: TestClient) -> None:
    store = store_of(client)
    open_job = submit(client).json()["id"]
    raised = submit(client).json()["id"]  # failed with no failed step: a replay would fail the same way
    store.steps.record_replay(raised, [], JobState.FAILED, error=ErrorInfo("ValueError", "own code"))
    for job_id, status in ((open_job, "submitted"), (raised, "failed")):
        r = client.post(f"/jobs/{job_id}/resume")
        assert r.status_code == 409 and error(r)["type"] == "Conflict"
        body = client.get(f"/jobs/{job_id}").json()
        assert body["status"] == status  # a refused resume leaves the job as it was
    assert client.get(f"/jobs/{raised}").json()["error"]["message"] == "own code"


def test_two_resumes_at_once_resume_once(
    client: TestClient, redis_conn: redis.Redis, settings: Settings, pg_url: str
) -> None:
    job_id = _failed_two_steps(client, driver_over(store_of(client), redis_conn, settings))
    stores = [Repositories.from_url(pg_url) for _ in range(2)]
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def resume(store: Repositories) -> None:
        start.wait()
        try:
            store.jobs.resume_failed(job_id)
            outcomes.append("resumed")
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=resume, args=(s,)) for s in stores]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in stores:
        s.close()
    assert sorted(outcomes) == ["conflict", "resumed"]
    tasks = client.get(f"/jobs/{job_id}").json()["tasks"]
    assert [(t["state"], t["attempt"]) for t in tasks] == [("succeeded", 1), ("pending", 2)]  # one new attempt


def test_rerun_creates_a_new_job_linked_to_the_finished_one(
    client: TestClient, redis_conn: redis.Redis, settings: Settings
) -> None:
    first = submit(client, "echo", {"message": "again"}, priority=5).json()
    assert store_of(client).steps.record_replay(first["id"], [], JobState.SUCCEEDED, result="again")

    r = client.post(f"/jobs/{first['id']}/rerun")
    assert r.status_code == 201
    new = r.json()
    assert new["id"] != first["id"]
    assert (new["type"], new["input"], new["priority"], new["status"]) == ("echo", {"message": "again"}, 5, "submitted")
    assert client.get(f"/jobs/{new['id']}").json()["rerun_of"] == first["id"]
    assert client.get(f"/jobs/{first['id']}").json()["rerun_of"] is None
    assert {"kind": "job.submitted", "job_ids": [new["id"]]} in events(redis_conn, settings)


def test_rerun_of_an_open_job_is_409(client: TestClient) -> None:
    job_id = submit(client).json()["id"]
    r = client.post(f"/jobs/{job_id}/rerun")
    assert r.status_code == 409 and error(r)["type"] == "Conflict"
    assert len(client.get("/jobs").json()["jobs"]) == 1  # nothing was created


def test_another_tenants_job_cannot_be_rerun_or_resumed(client: TestClient, settings: Settings) -> None:
    job_id = submit(client).json()["id"]
    store_of(client).steps.record_replay(job_id, [], JobState.FAILED, error=ErrorInfo("ValueError", "x"))
    other = {"Authorization": f"Bearer {make_key(settings.database_url, tenant='other')}"}
    for action in ("rerun", "resume"):
        r = client.post(f"/jobs/{job_id}/{action}", headers=other)
        assert r.status_code == 404, action
    assert len(client.get("/jobs").json()["jobs"]) == 1


# -- health, documents, errors ------------------------------------------------------------------


def test_healthz(sqlite_client: TestClient) -> None:
    client = sqlite_client
    r = client.get("/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


def test_readyz_when_everything_answers(client: TestClient) -> None:
    r = client.get("/readyz")
    assert r.status_code == 200
    assert r.json() == {"status": "ok", "checks": {"postgresql": "ok", "redis": "ok"}}


def test_readyz_is_503_with_retry_after_when_redis_is_down(pg_url: str) -> None:
    with _client(Settings(database_url=pg_url, redis_url=CLOSED_REDIS)) as c:
        r = c.get("/readyz")
        assert r.status_code == 503
        assert r.headers["retry-after"]
        body = r.json()
        assert body["status"] == "unavailable"
        assert body["checks"]["postgresql"] == "ok"
        assert body["checks"]["redis"] != "ok"
        assert c.get("/healthz").status_code == 200


def test_openapi_lists_every_route_and_every_job_type(sqlite_client: TestClient) -> None:
    client = sqlite_client
    doc = client.get("/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    # the console's pages (HTML, under /ui) say include_in_schema=False: they are no API operations
    routes = client.app.routes  # type: ignore[attr-defined]
    web_routes = [r for r in routes if isinstance(r, Route) and r.include_in_schema]
    for route in web_routes:
        methods = {m.lower() for m in route.methods or ()} - {"head"}
        assert route.path in doc["paths"], route.path
        assert methods <= set(doc["paths"][route.path]), (route.path, methods)
    schemas = doc["components"]["schemas"]
    for name in [*examples.tasks, *examples.agents]:
        assert f"Input_{name}" in schemas, name
    assert schemas["Input_echo"]["required"] == ["message"]
    assert schemas["Input_echo"]["properties"]["message"]["type"] == "string"


def test_job_types_lists_agents_and_tasks(sqlite_client: TestClient) -> None:
    client = sqlite_client
    types = {t["name"]: t for t in client.get("/job-types").json()["job_types"]}
    assert set(types) == {*examples.tasks, *examples.agents}
    assert types["echo"]["kind"] == "task" and types["echo"]["device"] == "cpu"
    assert types["map_reduce"]["kind"] == "agent"
    assert types["echo"]["input_schema"]["required"] == ["message"]


def test_unknown_route_is_a_json_404(sqlite_client: TestClient) -> None:
    client = sqlite_client
    r = client.get("/nope")
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/json")
    assert error(r)["message"] == "no route GET /nope"


def test_wrong_method_is_a_json_405(sqlite_client: TestClient) -> None:
    client = sqlite_client
    r = client.delete("/jobs")
    assert r.status_code == 405
    assert error(r)["type"] == "HTTPError"


def test_a_failing_tasks_traceback_reaches_the_job_and_its_task(
    client: TestClient, redis_conn: redis.Redis, settings: Settings
) -> None:
    """The worker's executor runs the task, the driver fails its job: both name where it raised."""
    store = store_of(client)
    job_id = submit(client, "always_fails", {"reason": "nope"}).json()["id"]
    args = {"reason": "nope"}
    store.steps.record_replay(
        job_id,
        [NewStep(job_id, 0, "task", "always_fails", TaskState.QUEUED, args=args, queue="cpu", dispatch_id="d1")],
        None,
    )
    executor = Executor(examples, store.steps, lambda events: None, "w-test", lambda origin, calls: None)
    executor.start()
    try:
        executor(Dispatch("d1", (TaskCall(step_id(job_id, 0), job_id, "always_fails", args, 1, 0, 30.0, 0.5),)), "cpu")
        deadline = time.monotonic() + 20
        while store.steps.load_journal(job_id)[0].state != TaskState.FAILED:
            assert time.monotonic() < deadline, "the task never failed"
            time.sleep(0.02)
    finally:
        executor.drain(0.0, force=lambda: True)
    driver_over(store, redis_conn, settings).advance(job_id)

    body = client.get(f"/jobs/{job_id}").json()
    assert body["status"] == "failed"
    assert (body["error"]["type"], body["error"]["message"]) == ("ValueError", "nope")
    for tb in (
        body["error"]["traceback"],
        body["tasks"][0]["error_traceback"],
        client.get(f"/jobs/{job_id}/results").json()["error"]["traceback"],
    ):
        assert "in always_fails" in tb and tb.rstrip().endswith("ValueError: nope")
        assert "execute.py" not in tb  # the executor's own frame is left out
    assert client.get(f"/jobs/{job_id}/tasks").json()["tasks"][0]["error_traceback"] == body["error"]["traceback"]


def test_an_agent_that_raises_reports_a_traceback_naming_the_agent(
    client: TestClient, redis_conn: redis.Redis, settings: Settings
) -> None:
    store = store_of(client)
    driver = driver_over(store, redis_conn, settings)
    jobs = [submit(client, "clumsy", {"x": 3}).json()["id"] for _ in range(2)]  # two: advanced together
    assert driver.advance_many(jobs) == []
    calls = [(step_id(j, 0), 1) for j in jobs]
    assert store.steps.mark_running(calls, "w1") == {c for c, _ in calls}
    done = store.steps.record_outcomes([TaskOutcome(c, 1, TaskState.SUCCEEDED, result=9) for c, _ in calls])
    assert driver.advance_many(done) == []

    for job_id in jobs:
        error = client.get(f"/jobs/{job_id}").json()["error"]
        assert error["type"] == "ZeroDivisionError"
        assert "in clumsy" in error["traceback"] and "ZeroDivisionError" in error["traceback"]


def test_errors_recorded_without_a_traceback_keep_their_old_shape(client: TestClient) -> None:
    job_id = submit(client).json()["id"]
    store_of(client).steps.record_replay(job_id, [], JobState.FAILED, error=ErrorInfo("Cancelled", "by hand"))
    assert client.get(f"/jobs/{job_id}").json()["error"] == {"type": "Cancelled", "message": "by hand"}
