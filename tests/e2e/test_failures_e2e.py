"""What the bus survives: a killed worker, a flushed Redis, a killed orchestrator."""

from __future__ import annotations

import pytest
import redis

from agentbus.domain import TaskState
from agentbus.store import Repositories

from _cluster import Cluster, wait_until

pytestmark = pytest.mark.e2e


def _steps(pg_url: str, job_id: str) -> list[tuple[str, str, int, str | None]]:
    from agentbus.store.models import Step

    store = Repositories.from_url(pg_url)
    rows = [(r.id, r.state, r.attempt, r.worker) for r in Step.select().where(Step.job_id == job_id).order_by(Step.seq)]
    store.close()
    return rows


def test_sigkilled_worker_task_runs_again_on_another_worker(cluster: Cluster, pg_url: str) -> None:
    cluster.orchestrator()
    cluster.worker("doomed")
    cluster.api()
    job = cluster.client.submit("long_haul", {"tasks": 1, "seconds": 2})
    wait_until(
        lambda: _steps(pg_url, job["id"]) and _steps(pg_url, job["id"])[0][1] == "running", 30, "the task to start"
    )
    assert _steps(pg_url, job["id"])[0][3] == "doomed"
    cluster.kill("doomed")
    cluster.worker("rescuer")
    body = cluster.wait(job["id"], timeout=90)
    assert body == {"id": job["id"], "status": "succeeded", "result": [2.0], "error": None}
    ((_, state, attempt, worker),) = _steps(pg_url, job["id"])
    assert (state, attempt, worker) == (TaskState.SUCCEEDED, 2, "rescuer")


def test_flushall_mid_job_loses_nothing(running: Cluster, pg_url: str, redis_url: str) -> None:
    n = 1000
    job = running.client.submit("paced_map", {"n": n, "seconds": 0.004})
    wait_until(lambda: running.client.job(job["id"])["progress"].get("succeeded", 0) >= 150, 60, "progress")
    redis.Redis.from_url(redis_url).flushdb()  # the test's whole Redis database: queues, stream, leases
    body = running.wait(job["id"], timeout=120)
    assert body["status"] == "succeeded"
    assert body["result"] == {"n": n, "sum": n * (n - 1) // 2}
    steps = _steps(pg_url, job["id"])
    assert len(steps) == n and {s[1] for s in steps} == {"succeeded"}
    journal = Repositories.from_url(pg_url).steps.load_journal(job["id"])
    assert [journal[i].result for i in range(n)] == list(range(n))


def test_standby_orchestrator_takes_over_and_finishes_the_job(cluster: Cluster, redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url)
    cluster.orchestrator("orch-a")
    wait_until(lambda: conn.get("agentbus:lease:orchestrator") == b"orch-a", 30, "orch-a to lead")
    cluster.orchestrator("orch-b")
    cluster.worker("w1")
    cluster.worker("w2")
    cluster.api()
    job = cluster.client.submit("paced_map", {"n": 300, "seconds": 0.01})
    wait_until(lambda: cluster.client.job(job["id"])["progress"].get("succeeded", 0) >= 30, 60, "progress")
    cluster.kill("orch-a")
    after = cluster.client.submit("echo", {"message": "still here"})
    assert cluster.wait(job["id"], timeout=90)["result"] == {"n": 300, "sum": 300 * 299 // 2}
    assert cluster.wait(after["id"], timeout=60)["result"] == "still here"
    assert conn.get("agentbus:lease:orchestrator") == b"orch-b"
