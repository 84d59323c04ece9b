"""A rolling deploy: workers of two builds at once, the new one with a task the old one lacks.

The orchestrator and the API run the new build (``fixture_app_next``); the old worker runs
``fixture_app``. No call fails for a missing task: a call for the new task goes only to a
worker that has it, and waits as pending while no live worker has it (docs/workers.md).
"""

from __future__ import annotations

import signal
from typing import Any

import pytest

from _cluster import Cluster, wait_until

pytestmark = pytest.mark.e2e

NEW_APP = "fixture_app_next:app"
OLD_APP = "fixture_app:app"


def start_worker(c: Cluster, name: str, app: str) -> None:
    c.start(name, "--role", "worker-cpu", "--name", name, "--queues", "cpu", "--app", app)
    wait_until(lambda: c.live(name), 60, f"{name} to heartbeat")


def tasks(c: Cluster, job_id: str) -> list[dict[str, Any]]:
    return list(c.client.job(job_id)["tasks"])


def test_a_task_only_the_new_build_has_runs_only_there_and_waits_while_no_worker_has_it(cluster: Cluster) -> None:
    cluster.env["AGENTBUS_APP"] = NEW_APP
    cluster.orchestrator()
    cluster.api()
    start_worker(cluster, "old", OLD_APP)
    start_worker(cluster, "new", NEW_APP)
    by_id = {w["id"]: w for w in cluster.client.workers()}
    assert "shout" in by_id["new"]["tasks"] and "shout" not in by_id["old"]["tasks"]
    assert by_id["new"]["build"] != by_id["old"]["build"]

    # both builds live: every job succeeds, the new task runs on the new worker only
    jobs = [cluster.client.submit("upgraded", {"n": 6}) for _ in range(5)]
    for job in jobs:
        body = cluster.wait(job["id"], timeout=120)
        assert body["status"] == "succeeded", body
        assert body["result"] == {"new": [f"T{i}" for i in range(6)], "old": 6}
        ran = tasks(cluster, job["id"])
        assert {t["worker"] for t in ran if t["name"] == "shout"} == {"new"}
        assert all(t["state"] == "succeeded" for t in ran)
    # calls of tasks both builds have still go to the shared queue, and run on either
    old_job = cluster.client.submit("stamp", {"label": "x", "n": 4, "seconds": 0.0})
    assert cluster.wait(old_job["id"], timeout=60)["status"] == "succeeded"
    assert {t["queue"] for t in tasks(cluster, old_job["id"])} == {"cpu"}

    # only the old build live: a call for the new task waits as pending, then runs on a new worker
    cluster.kill("new", signal.SIGTERM)
    wait_until(lambda: {w["id"] for w in cluster.client.workers() if w["status"] == "live"} == {"old"}, 30, "one build")
    job = cluster.client.submit("upgraded", {"n": 2})
    wait_until(
        lambda: any(t["state"] == "pending" for t in tasks(cluster, job["id"])), 30, "the new task's calls to wait"
    )
    waiting = tasks(cluster, job["id"])
    assert {t["route_reason"] for t in waiting if t["state"] == "pending"} == {"waiting for a worker with task 'shout'"}
    assert cluster.client.job(job["id"])["status"] == "running"
    start_worker(cluster, "new2", NEW_APP)
    body = cluster.wait(job["id"], timeout=120)
    assert body["status"] == "succeeded" and body["result"] == {"new": ["T0", "T1"], "old": 2}
    assert {t["worker"] for t in tasks(cluster, job["id"]) if t["name"] == "shout"} == {"new2"}
