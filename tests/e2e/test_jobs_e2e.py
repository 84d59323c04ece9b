"""Jobs over HTTP through the real roles."""

from __future__ import annotations

import subprocess
import sys

import pytest

from agentbus.domain import NotFound
from agentbus.store import Repositories

from _cluster import Cluster, wait_until

pytestmark = pytest.mark.e2e


def test_echo_job_returns_its_input(running: Cluster) -> None:
    job = running.client.submit("echo", {"message": "hello"})
    assert job["status"] == "submitted"
    body = running.wait(job["id"])
    assert body == {"id": job["id"], "status": "succeeded", "result": "hello", "error": None}
    shown = running.client.job(job["id"])
    assert shown["progress"]["done"] == shown["progress"]["total"] == 1
    assert shown["started_at"] and shown["finished_at"]


def test_map_reduce_over_100_tasks_gives_the_right_sum(running: Cluster) -> None:
    job = running.client.submit("map_reduce", {"n": 100})
    body = running.wait(job["id"])
    assert body["status"] == "succeeded"
    assert body["result"] == {"n": 100, "sum": sum(i * i for i in range(100))}
    assert running.client.job(job["id"])["progress"]["succeeded"] == 100


def test_agent_calling_a_sub_agent(running: Cluster) -> None:
    job = running.client.submit("parent", {"n": 6})
    body = running.wait(job["id"])
    expected = sum(i * i for i in range(6))
    assert body["result"] == {"child": {"n": 6, "sum": expected}, "echo": f"child summed {expected}"}
    children = [j for j in running.client.jobs(type="map_reduce")["jobs"] if j["parent_id"] == job["id"]]
    assert len(children) == 1 and children[0]["status"] == "succeeded"


def test_failing_task_is_retried_until_it_succeeds(running: Cluster) -> None:
    job = running.client.submit("retrying", {"failures": 2})
    assert running.wait(job["id"])["result"] == {"attempts": 3}


def test_task_failure_reaches_the_agent_as_an_exception(running: Cluster) -> None:
    job = running.client.submit("careful", {"reason": "boom"})
    assert running.wait(job["id"])["result"] == {"caught": "ValueError", "message": "boom"}


def test_exhausted_retries_fail_the_job_with_the_task_error(running: Cluster) -> None:
    job = running.client.submit("always_fails", {"reason": "nope"})
    body = running.wait(job["id"])
    assert body["status"] == "failed"
    assert (body["error"]["type"], body["error"]["message"]) == ("ValueError", "nope")
    assert "in always_fails" in body["error"]["traceback"]  # where the task raised (issue 13)


def test_durable_sleep(running: Cluster) -> None:
    job = running.client.submit("nap", {"seconds": 0.5})
    body = running.wait(job["id"])
    assert body["status"] == "succeeded" and body["result"]["slept"] >= 0.5


def test_idempotency_key_runs_the_job_once(running: Cluster) -> None:
    first = running.client.submit("map_reduce", {"n": 3}, idempotency_key="order-42")
    again = running.client.submit("map_reduce", {"n": 3}, idempotency_key="order-42")
    assert again["id"] == first["id"]
    running.wait(first["id"])
    assert [j["id"] for j in running.client.jobs(type="map_reduce")["jobs"]] == [first["id"]]
    assert running.client.job(first["id"])["progress"]["total"] == 3


def test_cancel_stops_the_running_task_and_cancels_pending_ones(running: Cluster, pg_url: str) -> None:
    job = running.client.submit("long_haul", {"tasks": 4, "seconds": 120})
    wait_until(lambda: running.client.job(job["id"])["progress"].get("running", 0) >= 2, 30, "tasks running")
    cancelled = running.client.cancel(job["id"])
    assert cancelled["status"] == "cancelled"
    assert running.wait(job["id"])["status"] == "cancelled"
    # every task ends cancelled: the running ones were stopped, not left to run for two minutes
    wait_until(lambda: running.client.job(job["id"])["progress"].get("cancelled") == 4, 30, "tasks cancelled")
    # and the workers are free again
    echo = running.client.submit("echo", {"message": "after"})
    assert running.wait(echo["id"], timeout=30)["result"] == "after"


def test_unknown_job_is_404_through_the_client(running: Cluster) -> None:
    with pytest.raises(NotFound):
        running.client.job("nope")


def test_rq_info_shows_our_queues_and_workers(running: Cluster, redis_url: str) -> None:
    running.wait(running.client.submit("echo", {"message": "x"})["id"])
    rq = [sys.executable, "-m", "rq.cli", "info", "--url", redis_url]
    out = subprocess.run(rq, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    assert "agentbus.cpu" in out.stdout
    assert "w1" in out.stdout and "w2" in out.stdout


def test_store_records_each_task_once(running: Cluster, pg_url: str) -> None:
    job = running.client.submit("map_reduce", {"n": 20})
    running.wait(job["id"])
    store = Repositories.from_url(pg_url)
    journal = store.steps.load_journal(job["id"])
    store.close()
    assert sorted(journal) == list(range(20))
    assert [journal[i].result for i in range(20)] == [i * i for i in range(20)]


def test_task_past_its_timeout_fails_with_task_timeout(running: Cluster) -> None:
    job = running.client.submit("stubborn", {"seconds": 30})
    body = running.wait(job["id"], timeout=30)
    assert body["status"] == "failed"
    assert body["error"]["type"] == "TaskTimeout"


def test_results_long_poll_returns_when_the_job_finishes(running: Cluster) -> None:
    job = running.client.submit("long_haul", {"tasks": 1, "seconds": 1})
    done, body = running.client.results(job["id"], wait=20)
    assert done and body["result"] == [1.0]
