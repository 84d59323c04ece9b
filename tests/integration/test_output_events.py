"""``task.output`` events on ``GET /jobs/{id}/events``: in-process API, real PostgreSQL and Redis."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from agentbus.api import create_app
from agentbus.bus import OutputStream
from agentbus.client import Event, EventDecoder
from agentbus.config import Settings
from agentbus.domain import JobState
from agentbus.domain.output import Output
from agentbus.examples import app as examples
from agentbus.security import keys
from agentbus.store import Repositories


@pytest.fixture
def client(pg_url: str, redis_url: str) -> Iterator[TestClient]:
    store = Repositories.from_url(pg_url)
    token, _ = store.keys.create_key("default", keys.SCOPES)
    store.close()
    web = create_app(Settings(database_url=pg_url, redis_url=redis_url), examples)
    with TestClient(web, headers={"Authorization": f"Bearer {token}"}) as c:
        yield c
    web.state.repos.close()


def finished_job(client: TestClient) -> str:
    job_id = str(client.post("/jobs", json={"type": "echo", "input": {"message": "hi"}}).json()["id"])
    store = client.app.state.repos  # type: ignore[attr-defined]
    assert store.steps.record_replay(job_id, [], JobState.SUCCEEDED, result="hi")
    return job_id


def emit(conn: redis.Redis, job_id: str, n: int, maxlen: int = 1000) -> None:
    OutputStream(conn, maxlen=maxlen).append(
        [Output(job_id, "t1", "chat", 1, seq, json.dumps({"token": f"t{seq}"}), 1.0) for seq in range(n)]
    )


def read(client: TestClient, job_id: str, last_event_id: str | None = None) -> list[Event]:
    headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
    with client.stream("GET", f"/jobs/{job_id}/events", headers=headers) as resp:
        assert resp.status_code == 200
        decoder = EventDecoder()
        out = [e for e in (decoder.feed(line) for line in resp.iter_lines()) if e is not None]
    return out


def data(events: list[Event], kind: str = "task.output") -> list[dict[str, Any]]:
    return [e.data for e in events if e.event == kind]


def test_outputs_are_sent_in_order_and_a_reconnect_resumes_after_the_last_one_seen(
    client: TestClient, redis_conn: redis.Redis
) -> None:
    job_id = finished_job(client)
    emit(redis_conn, job_id, 6)
    events = read(client, job_id)
    outs = [e for e in events if e.event == "task.output"]
    assert [(d["task_id"], d["seq"], d["data"]) for d in data(events)] == [
        ("t1", i, {"token": f"t{i}"}) for i in range(6)
    ]
    assert [e.id.split("/")[1] for e in outs] == ["1", "2", "3", "4", "5", "6"]
    assert events[-1].event == "end" and data(events, "job")[-1]["status"] == "succeeded"
    again = read(client, job_id, outs[2].id)
    assert [d["seq"] for d in data(again)] == [3, 4, 5] and "job" not in [e.event for e in again]
    # an id of a state change (no output seen yet) resumes outputs from the start
    first_change = next(e for e in events if e.event == "job")
    assert [d["seq"] for d in data(read(client, job_id, first_change.id.split("/")[0]))] == list(range(6))


def test_outputs_trimmed_before_the_reader_came_are_counted_in_one_event(
    client: TestClient, redis_conn: redis.Redis
) -> None:
    job_id = finished_job(client)
    for _ in range(10):
        emit(redis_conn, job_id, 100, maxlen=50)
    events = read(client, job_id)
    (dropped,) = data(events, "task.output.dropped")
    kept = data(events)
    assert dropped["count"] + len(kept) == 1000 and dropped["count"] > 0 and "trimmed" in dropped["reason"]
    assert [e.event for e in events].index("task.output.dropped") < [e.event for e in events].index("task.output")


@pytest.mark.parametrize("bad", ["1.0/x", "1.0/-1", "nan/3", "1.0/2/3"])
def test_a_malformed_output_resume_point_is_400(client: TestClient, bad: str) -> None:
    job_id = finished_job(client)
    r = client.get(f"/jobs/{job_id}/events", headers={"Last-Event-ID": bad})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["type"] == "InvalidInput"
