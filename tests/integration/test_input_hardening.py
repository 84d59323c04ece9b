"""Input that JSON, PostgreSQL or UTF-8 cannot hold is refused with a 4xx before anything is
written, and nothing an agent or task produces can make a later read fail (issue 17, item 8).

In-process API on a real PostgreSQL and Redis. Each test also reads back afterwards: the old
failures were sticky (a job created with NaN made every later ``GET /jobs`` of its tenant a 500).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from agentbus.api import create_app
from agentbus.bus.stream import STREAM
from agentbus.config import Settings
from agentbus.domain import JobState, ValidationFailed
from agentbus.domain.hitl import HumanRequest
from agentbus.examples import app as examples
from agentbus.security import keys
from agentbus.services import MemoryService
from agentbus.store import NewJob, Repositories


@pytest.fixture
def client(pg_url: str, redis_url: str) -> Iterator[TestClient]:
    store = Repositories.from_url(pg_url)
    token, _ = store.keys.create_key("default", keys.SCOPES)
    store.close()
    web = create_app(Settings(database_url=pg_url, redis_url=redis_url), examples)
    with TestClient(web, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c
    web.state.repos.close()


def store_of(client: TestClient) -> Any:
    return client.app.state.repos  # type: ignore[attr-defined]


def post_raw(client: TestClient, path: str, raw: str) -> httpx.Response:
    return client.post(path, content=raw.encode(), headers={"content-type": "application/json"})


def error(r: httpx.Response) -> dict[str, Any]:
    body: dict[str, Any] = r.json()["error"]
    return body


def assert_nothing_submitted(client: TestClient, conn: redis.Redis) -> None:
    listed = client.get("/jobs")
    assert listed.status_code == 200
    assert listed.json()["jobs"] == []
    assert not conn.exists(STREAM)


def cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# -- request bodies -------------------------------------------------------------------------------

UNHOLDABLE_JOB_BODIES = {
    "NaN in the input": '{"type": "nap", "input": {"seconds": NaN}}',
    "Infinity in the input": '{"type": "nap", "input": {"seconds": Infinity}}',
    "-Infinity in the input": '{"type": "nap", "input": {"seconds": -Infinity}}',
    "a number beyond float range": '{"type": "nap", "input": {"seconds": 1e400}}',
    "a lone surrogate in the input": '{"type": "echo", "input": {"message": "\\ud800"}}',
    "a NUL in the input": '{"type": "echo", "input": {"message": "a\\u0000b"}}',
    "a NUL in the idempotency key": '{"type": "echo", "input": {"message": "hi"}, "idempotency_key": "k\\u0000"}',
    "a NUL in the type": '{"type": "echo\\u0000", "input": {"message": "hi"}}',
    "a lone surrogate in a key": '{"type": "echo", "input": {"\\udc00": "hi"}}',
}


@pytest.mark.parametrize("raw", UNHOLDABLE_JOB_BODIES.values(), ids=UNHOLDABLE_JOB_BODIES.keys())
def test_a_job_body_json_cannot_hold_is_422_and_creates_nothing(
    client: TestClient, redis_conn: redis.Redis, raw: str
) -> None:
    r = post_raw(client, "/jobs", raw)
    assert r.status_code == 422, r.text
    assert error(r)["type"] == "ValidationFailed"
    assert_nothing_submitted(client, redis_conn)
    assert client.post("/jobs", json={"type": "echo", "input": {"message": "hi"}}).status_code == 201


def test_the_422_names_where_the_bad_value_is(client: TestClient) -> None:
    r = post_raw(client, "/jobs", '{"type": "echo", "input": {"message": "\\u0000"}}')
    assert error(r)["errors"][0]["loc"] == ["input", "message"]
    assert "NUL" in error(r)["message"]


def pending_approval(client: TestClient, schema: dict[str, Any] | None = None) -> str:
    store = store_of(client)
    job, _ = store.jobs.create_job(NewJob("editorial", {"topic": "t"}))
    store.steps.record_replay(job.id, [], None, asks=[(0, HumanRequest("Publish?", schema=schema))])
    (approval,) = client.get("/approvals").json()["approvals"]
    approval_id: str = approval["id"]
    return approval_id


@pytest.mark.parametrize(
    "raw",
    [
        '{"decision": "approve", "input": NaN}',
        '{"decision": "approve", "input": {"score": Infinity}}',
        '{"decision": "approve", "input": "\\ud83d"}',
        '{"decision": "approve", "comment": "\\u0000"}',
        '{"decision": "approve", "by": "me\\u0000"}',
    ],
)
def test_an_approval_answer_json_cannot_hold_is_422_and_the_approval_stays_readable(
    client: TestClient, raw: str
) -> None:
    approval_id = pending_approval(client)
    r = post_raw(client, f"/approvals/{approval_id}", raw)
    assert r.status_code == 422, r.text
    got = client.get(f"/approvals/{approval_id}")
    assert got.status_code == 200 and got.json()["status"] == "pending"
    assert client.get("/approvals").status_code == 200
    assert client.post(f"/approvals/{approval_id}", json={"decision": "approve"}).status_code == 200


@pytest.mark.parametrize(
    "item",
    [
        '{"text": "a", "metadata": {"score": NaN}}',
        '{"text": "a", "metadata": {"score": 1e999}}',
        '{"text": "a\\u0000b"}',
        '{"id": "x\\u0000", "text": "a"}',
        '{"text": "a", "metadata": {"k": "\\udfff"}}',
        '{"vector": [1.0, NaN]}',
    ],
)
def test_a_memory_item_json_cannot_hold_is_422_and_nothing_is_stored(client: TestClient, item: str) -> None:
    assert (
        client.post("/memory/store", json={"namespace": "ns", "items": [{"id": "ok", "text": "b"}]}).status_code == 201
    )
    r = post_raw(client, "/memory/store", f'{{"namespace": "ns", "items": [{item}]}}')
    assert r.status_code == 422, r.text
    search = client.post("/memory/search", json={"namespace": "ns", "q": "a", "k": 10})
    assert search.status_code == 200
    assert [h["id"] for h in search.json()["hits"]] == ["ok"]
    assert client.get("/memory/search", params={"namespace": "ns", "q": "a"}).status_code == 200


# -- query and path parameters ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "params"),
    [
        ("/jobs", {"type": "echo\x00"}),
        ("/jobs", {"status": "running\x00"}),
        ("/jobs", {"cursor": "\x00"}),
        ("/approvals", {"job": "\x00"}),
        ("/approvals", {"assignee": "alice\x00"}),
        ("/approvals", {"status": "pending\x00"}),
        ("/memory/search", {"namespace": "ns", "q": "a\x00"}),
        ("/jobs/a%00b", {}),
        ("/jobs/a%00b/results", {}),
        ("/jobs/a%00b/tasks", {}),
        ("/jobs/a%00b/events", {}),
        ("/approvals/a%00b", {}),
        ("/memory/ns/a%00b", {}),
    ],
)
def test_a_nul_in_a_query_or_path_parameter_is_400(client: TestClient, path: str, params: dict[str, str]) -> None:
    r = client.get(path, params=params)
    assert r.status_code == 400, r.text
    assert error(r)["type"] == "InvalidInput" and "NUL" in error(r)["message"]


def test_a_nul_in_the_path_of_a_write_is_400_and_changes_nothing(client: TestClient) -> None:
    assert client.post("/jobs/a%00b/cancel").status_code == 400
    assert client.post("/approvals/a%00b", json={"decision": "approve"}).status_code == 400
    assert client.delete("/memory/ns/a%00b").status_code == 400
    assert client.delete("/memory/ns%00").status_code == 400
    assert client.get("/jobs").status_code == 200


@pytest.mark.parametrize("crafted", ["1|\x00", "nan|x", "1e400|x", "inf|x", "1|", "1", "|x", "1|" + "x" * 200])
@pytest.mark.parametrize("path", ["/jobs", "/approvals"])
def test_a_crafted_cursor_is_400(client: TestClient, path: str, crafted: str) -> None:
    client.post("/jobs", json={"type": "echo", "input": {"message": "hi"}})
    r = client.get(path, params={"cursor": cursor(crafted)})
    assert r.status_code == 400, r.text
    assert error(r)["type"] == "InvalidInput"


def test_a_real_cursor_still_pages(client: TestClient) -> None:
    for i in range(3):
        client.post("/jobs", json={"type": "echo", "input": {"message": str(i)}})
    first = client.get("/jobs", params={"limit": 2}).json()
    rest = client.get("/jobs", params={"limit": 2, "cursor": first["next_cursor"]})
    assert rest.status_code == 200 and len(rest.json()["jobs"]) == 1


@pytest.mark.parametrize(
    "flt",
    [
        "[" * 3000,
        "{" * 3000,
        '{"a": NaN}',
        '{"a": {"$gt": Infinity}}',
        '{"a": "\\u0000"}',
        json.dumps({"a": {"$in": list(range(1001))}}),
        json.dumps({f"f{i}": i for i in range(65)}),
    ],
    ids=["3000 [", "3000 {", "NaN", "Infinity", "NUL", "a long $in", "many fields"],
)
def test_a_memory_filter_out_of_bounds_is_4xx(client: TestClient, flt: str) -> None:
    client.post("/memory/store", json={"namespace": "ns", "items": [{"id": "ok", "text": "b"}]})
    r = client.get("/memory/search", params={"namespace": "ns", "q": "a", "filter": flt})
    assert r.status_code in (400, 422), r.text
    posted = post_raw(client, "/memory/search", f'{{"namespace": "ns", "q": "a", "filter": {flt}}}')
    assert 400 <= posted.status_code < 500, posted.text


def test_k_that_only_unicode_calls_a_digit_is_400(client: TestClient) -> None:
    for k in ("²", "9" * 5000):
        assert client.get("/memory/search", params={"namespace": "ns", "q": "a", "k": k}).status_code == 400


# -- what agents and tasks produce ------------------------------------------------------------------


def test_a_result_holding_nan_or_a_lone_surrogate_is_stored_readably(client: TestClient) -> None:
    """Agent and task code is not API input: what JSON cannot hold is encoded as JSON.stringify
    would (NaN → null) and lone surrogates as U+FFFD, so the job and every list stay readable."""
    store = store_of(client)
    job_id = client.post("/jobs", json={"type": "nap", "input": {"seconds": 1}}).json()["id"]
    result = {"score": float("nan"), "big": float("inf"), "text": "ok\ud800", "nested": [float("-inf")]}
    assert store.steps.record_replay(job_id, [], JobState.SUCCEEDED, result=result)
    got = client.get(f"/jobs/{job_id}/results")
    assert got.status_code == 200
    assert got.json()["result"] == {"score": None, "big": None, "text": "ok\ufffd", "nested": [None]}
    assert client.get("/jobs").status_code == 200
    assert client.get(f"/jobs/{job_id}").status_code == 200


def test_an_approval_question_holding_nan_stays_readable(client: TestClient) -> None:
    store = store_of(client)
    job, _ = store.jobs.create_job(NewJob("editorial", {"topic": "t"}))
    store.steps.record_replay(job.id, [], None, asks=[(0, HumanRequest("Publish?", data={"p": float("nan")}))])
    listed = client.get("/approvals")
    assert listed.status_code == 200
    (approval,) = listed.json()["approvals"]
    assert client.get(f"/approvals/{approval['id']}").status_code == 200


def test_memory_written_by_a_task_is_checked_as_api_input_is(client: TestClient) -> None:
    """``ctx.memory`` in a task calls the service directly: it refuses what the API refuses."""
    service: MemoryService = client.app.state.memory  # type: ignore[attr-defined]
    for item in ({"text": "a", "metadata": {"x": float("nan")}}, {"text": "a\x00"}, {"id": "\ud800", "text": "a"}):
        with pytest.raises(ValidationFailed):
            service.store_items("default", "ns", [item])
    service.store_items("default", "ns", [{"id": "ok", "text": "a", "metadata": {"x": 1.5}}])
    search = client.post("/memory/search", json={"namespace": "ns", "q": "a"})
    assert search.status_code == 200 and [h["id"] for h in search.json()["hits"]] == ["ok"]


def test_a_limit_that_only_unicode_calls_a_digit_is_400(client: TestClient) -> None:
    r = client.get("/jobs", params={"limit": "\u00b2"})
    assert r.status_code == 400, r.text
    assert error(r)["type"] == "InvalidInput"


@pytest.mark.parametrize("since", ["nan", "1e400", "-inf"])
def test_an_event_id_that_is_no_finite_time_is_400(client: TestClient, since: str) -> None:
    job = client.post("/jobs", json={"type": "echo", "input": {"message": "hi"}}).json()
    r = client.get(f"/jobs/{job['id']}/events", headers={"Last-Event-ID": since})
    assert r.status_code == 400, r.text
    assert error(r)["type"] == "InvalidInput"
