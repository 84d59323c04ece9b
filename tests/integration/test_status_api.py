"""GET /status: the cluster on one page, for admin keys (in-process API, real PostgreSQL and Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from agentbus.api import create_app
from agentbus.bus import Dispatcher, Fleet, Lease, connect, lease_name
from agentbus.config import Settings, keyrings
from agentbus.domain import Dispatch, TaskCall
from agentbus.domain.messages import Heartbeat
from agentbus.examples import app as examples
from agentbus.security import keys
from agentbus.store import Repositories


@pytest.fixture
def store(pg_url: str) -> Iterator[Repositories]:
    s = Repositories.from_url(pg_url)
    yield s
    s.close()


@pytest.fixture
def web(pg_url: str, redis_url: str) -> Iterator[TestClient]:
    with TestClient(create_app(Settings(database_url=pg_url, redis_url=redis_url), examples)) as c:
        yield c


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_status_shows_lease_queues_jobs_workers_and_failures(
    web: TestClient, store: Repositories, redis_url: str
) -> None:
    admin, _ = store.keys.create_key("acme", ("admin",))
    user, _ = store.keys.create_key("acme", keys.SCOPES[:2])
    assert web.get("/status", headers=bearer(user)).status_code == 403

    empty = web.get("/status", headers=bearer(admin)).json()
    assert empty["orchestrator"] == {"lease_holder": None, "lease_ttl_s": 0.0}  # nobody: say so
    assert empty["jobs"] == {"scheduled": 0, "submitted": 0, "running": 0, "waiting_human": 0}

    conn = connect(redis_url)
    Lease(conn, "orchestrator", "orch-1", 10_000).acquire()
    Fleet(conn, 10).beat(Heartbeat(id="w-1", concurrency=4, seen=1.0))
    call = TaskCall("j-0", "j", "square", {"x": 1}, 1, 0, 60, 1)
    Dispatcher(conn, keyrings(Settings())[1]).send("cpu.high", [Dispatch("d1", (call,))])
    job = web.post("/jobs", json={"type": "echo", "input": {"message": "x"}}, headers=bearer(admin)).json()

    st = web.get("/status", headers=bearer(admin)).json()
    assert st["orchestrator"]["lease_holder"] == "orch-1" and 0 < st["orchestrator"]["lease_ttl_s"] <= 10
    assert st["jobs"]["submitted"] == 1 and st["approvals_pending"] == 0
    [queue] = [q for q in st["queues"] if q["queue"] == "cpu" and q["priority"] == "high"]
    assert queue["depth"] == 1 and queue["oldest_age_s"] is not None
    assert st["workers"] == [
        {"id": "w-1", "role": "worker-cpu", "status": "live", "busy": 0, "free": 4, "done": 0, "failed": 0, "seen": 1.0}
    ]
    assert st["recent_failures"] == []
    store.jobs.cancel_job(job["id"])


def test_status_names_the_holder_of_each_shard(pg_url: str, redis_url: str, store: Repositories) -> None:
    """With --shards K an operator sees which orchestrator holds which shard, and which none holds."""
    admin, _ = store.keys.create_key("acme", ("admin",))
    Lease(connect(redis_url), lease_name(2), "orch-b", 10_000).acquire()
    Lease(connect(redis_url), lease_name(0), "orch-a", 10_000).acquire()
    settings = Settings(database_url=pg_url, redis_url=redis_url, shards=3)
    with TestClient(create_app(settings, examples)) as web:
        st = web.get("/status", headers=bearer(admin)).json()
    assert [(s["shard"], s["holder"]) for s in st["shards"]] == [(0, "orch-a"), (1, None), (2, "orch-b")]
    assert st["orchestrator"]["lease_holder"] == "orch-a"  # shard 0's lease is the one lease of K=1
