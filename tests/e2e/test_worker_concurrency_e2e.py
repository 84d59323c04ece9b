"""Workers that wait well (issue 11) and survive a bad day (issue 17.4, 17.9), on the real roles."""

from __future__ import annotations

import json
import shutil
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg2
import pytest

from agentbus.domain import Unavailable
from agentbus.store import Repositories
from agentbus.store.models import Step

from _cluster import Cluster, free_port, wait_until

pytestmark = pytest.mark.e2e


def steps(pg_url: str, job_id: str) -> list[tuple[str, str, int, str | None, Any]]:
    store = Repositories.from_url(pg_url)
    with store.db.connection_context():
        q = Step.select().where((Step.job_id == job_id) & (Step.kind == "task")).order_by(Step.seq)
        rows = [(r.id, r.state, r.attempt, r.worker, None if r.result is None else json.loads(r.result)) for r in q]
    store.close()
    return rows


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_waiting_calls_run_side_by_side_and_both_workers_take_a_share(running: Cluster, pg_url: str, mode: str) -> None:
    job = running.client.submit("io_map", {"n": 200, "seconds": 0.5, "mode": mode})
    assert running.wait(job["id"], timeout=120)["result"] == {"n": 200, "sum": 200 * 199 // 2}
    rows = steps(pg_url, job["id"])
    assert len(rows) == 200 and {r[1] for r in rows} == {"succeeded"} and {r[2] for r in rows} == {1}
    by_worker = Counter(r[3] for r in rows)
    # a worker takes dispatches only while it has free slots (100 each): neither could take all 200
    assert set(by_worker) == {"w1", "w2"}, by_worker


def test_an_async_call_past_its_timeout_is_cancelled_and_fails_with_task_timeout(running: Cluster) -> None:
    body = running.wait(running.client.submit("dawdle", {"seconds": 30})["id"], timeout=30)
    assert body["status"] == "failed" and body["error"]["type"] == "TaskTimeout"
    # the worker is free again at once: nothing holds a slot
    assert running.wait(running.client.submit("echo", {"message": "next"})["id"], timeout=30)["result"] == "next"


def test_per_task_worker_cap_holds_on_one_worker(cluster: Cluster) -> None:
    cluster.orchestrator()
    cluster.worker("only")
    cluster.api()
    runs = cluster.wait(cluster.client.submit("narrow_map", {"n": 6, "seconds": 0.3})["id"], timeout=60)["result"]
    edges = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs], key=lambda e: (e[0], e[1]))
    level, peak = 0, 0
    for _, delta in edges:
        level += delta
        peak = max(peak, level)
    assert peak == 2


@pytest.mark.parametrize("mode", ["async", "sync"])
def test_cancel_reaches_running_async_and_sync_calls(running: Cluster, mode: str) -> None:
    job = running.client.submit("long_waits", {"tasks": 4, "seconds": 120, "mode": mode})
    wait_until(lambda: running.client.job(job["id"])["progress"].get("running", 0) == 4, 30, "calls running")
    assert running.client.cancel(job["id"])["status"] == "cancelled"
    wait_until(lambda: running.client.job(job["id"])["progress"].get("cancelled") == 4, 30, "calls cancelled")
    wait_until(lambda: all(w["busy"] == 0 for w in running.client.workers()), 30, "slots freed")


def test_sigkill_with_50_calls_in_flight_runs_each_again_once(cluster: Cluster, pg_url: str) -> None:
    cluster.orchestrator()
    cluster.worker("doomed")
    cluster.api()
    job = cluster.client.submit("io_map", {"n": 50, "seconds": 8, "mode": "async"})

    def doomed_row() -> dict[str, Any] | None:
        return next((w for w in cluster.client.workers() if w["id"] == "doomed" and w["busy"] == 50), None)

    row = wait_until(doomed_row, 60, "50 calls in flight on doomed")
    # the heartbeat lists every call, and GET /workers shows the slots
    assert row["free"] == 50 and row["concurrency"] == 100
    assert sorted(c["task_id"] for c in row["calls"]) == sorted(r[0] for r in steps(pg_url, job["id"]))
    assert all(r[1] == "running" and r[3] == "doomed" for r in steps(pg_url, job["id"]))
    cluster.kill("doomed")
    cluster.worker("rescuer")
    assert cluster.wait(job["id"], timeout=120)["result"] == {"n": 50, "sum": 50 * 49 // 2}
    rows = steps(pg_url, job["id"])
    assert [(r[1], r[2], r[3]) for r in rows] == [("succeeded", 2, "rescuer")] * 50
    assert [r[4] for r in rows] == list(range(50))


def test_sigterm_lets_async_calls_finish_and_hands_back_those_not_started(cluster: Cluster, pg_url: str) -> None:
    cluster.env["AGENTBUS_WORKER_CONCURRENCY"] = "10"
    cluster.orchestrator()
    cluster.worker("leaving")
    cluster.api()
    job = cluster.client.submit("io_map", {"n": 40, "seconds": 1.5, "mode": "async"})
    wait_until(lambda: cluster.client.job(job["id"])["progress"].get("running", 0) >= 10, 60, "calls running")
    proc = cluster.procs.pop("leaving")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0
    cluster.worker("staying")
    assert cluster.wait(job["id"], timeout=120)["result"] == {"n": 40, "sum": 40 * 39 // 2}
    done_by = Counter(r[3] for r in steps(pg_url, job["id"]))
    assert done_by["leaving"] >= 10 and done_by["staying"] >= 1  # it finished its calls, handed the rest on


def _terminate_connections(pg_url: str) -> int:
    conn = psycopg2.connect(pg_url)
    conn.autocommit = True
    with conn.cursor() as cur:
        cur.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
        (n,) = cur.fetchone()  # type: ignore[misc]
    conn.close()
    return int(n)


def _wait_through_503(c: Cluster, job_id: str) -> dict[str, Any] | None:
    try:
        return c.wait(job_id, timeout=10)
    except (Unavailable, TimeoutError):
        return None


def test_killed_postgresql_connections_mid_map_strand_no_call(running: Cluster, pg_url: str) -> None:
    """Issue 17.4: outcome writes are retried, so a PostgreSQL blip loses no call."""
    job = running.client.submit("paced_map", {"n": 600, "seconds": 0.01})
    wait_until(lambda: running.client.job(job["id"])["progress"].get("succeeded", 0) >= 50, 60, "progress")
    for _ in range(4):
        _terminate_connections(pg_url)
        time.sleep(0.3)
    # the API's own connections were killed too: a 503 while it reconnects is its business, not this test's
    body = wait_until(lambda: _wait_through_503(running, job["id"]), 120, "the job")
    assert body["result"] == {"n": 600, "sum": 600 * 599 // 2}
    rows = steps(pg_url, job["id"])
    assert len(rows) == 600 and {r[1] for r in rows} == {"succeeded"}
    assert [r[4] for r in rows] == list(range(600))


@pytest.fixture
def own_redis(tmp_path: Path) -> Any:
    """A Redis server of the test's own, on a free port, that the test may stop and restart."""
    exe = shutil.which("redis-server")
    if exe is None:
        pytest.skip("redis-server is not installed")
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []

    def start() -> None:
        procs.append(
            subprocess.Popen(
                [exe, "--port", str(port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
                stdout=subprocess.DEVNULL,
            )
        )
        wait_until(
            lambda: (
                subprocess.run(["redis-cli", "-p", str(port), "ping"], capture_output=True).stdout.strip() == b"PONG"
            ),
            10,
            "redis-server",
        )

    def stop() -> None:
        for p in procs:
            if p.poll() is None:
                p.terminate()
                p.wait(10)

    start()
    yield port, start, stop
    stop()


def test_a_worker_waits_for_redis_to_come_back(own_redis: Any, pg_url: str, tmp_path: Path) -> None:
    """Issue 17.9: Redis going away while a worker has calls running does not end the worker."""
    port, start_redis, stop_redis = own_redis
    cluster = Cluster(pg_url, f"redis://127.0.0.1:{port}/0", tmp_path)
    try:
        cluster.orchestrator()
        worker = cluster.worker("patient")
        cluster.api()
        job = cluster.client.submit("paced_map", {"n": 20, "seconds": 2.0})
        wait_until(lambda: cluster.client.job(job["id"])["progress"].get("running", 0) >= 1, 30, "calls running")
        stop_redis()
        time.sleep(8)  # the worker finishes calls meanwhile; it used to quit at its first Redis write
        assert worker.poll() is None, "the worker exited while Redis was down"
        start_redis()
        for name in ("orch", "api"):  # the other roles are not under test here: restart them if they left
            if cluster.procs[name].poll() is not None:
                cluster.procs.pop(name)
                cluster.orchestrator() if name == "orch" else cluster.api()
        wait_until(cluster._healthy, 30, "the API")
        assert cluster.wait(job["id"], timeout=90)["result"] == {"n": 20, "sum": 20 * 19 // 2}
        body = cluster.wait(cluster.client.submit("echo", {"message": "after the outage"})["id"], timeout=60)
        assert body["result"] == "after the outage"
        assert worker.poll() is None
        assert {r[3] for r in steps(pg_url, body["id"])} == {"patient"}
    finally:
        cluster.stop()


def test_a_worker_with_too_many_abandoned_threads_drains_and_exits_for_a_restart(cluster: Cluster) -> None:
    cluster.env["AGENTBUS_WORKER_MAX_ABANDONED"] = "1"
    cluster.orchestrator()
    worker = cluster.worker("stuck")
    cluster.api()
    jobs = [cluster.client.submit("stubborn", {"seconds": 60}) for _ in range(2)]  # sync, past a 1 s timeout
    for job in jobs:
        body = cluster.wait(job["id"], timeout=60)
        assert body["status"] == "failed" and body["error"]["type"] == "TaskTimeout"
    assert worker.wait(30) == 75  # its two threads still sleep: it left for its supervisor to restart it
    cluster.procs.pop("stuck")
    cluster.worker("fresh")
    assert cluster.wait(cluster.client.submit("echo", {"message": "fresh"})["id"], timeout=60)["result"] == "fresh"
