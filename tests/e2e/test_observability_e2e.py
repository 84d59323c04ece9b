"""What an operator sees of the real roles: /metrics, /readyz, JSON logs, request ids, agentbus status."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from _cluster import Cluster, free_port, wait_until

pytestmark = pytest.mark.e2e

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(port: int) -> Samples:
    """Every sample a /metrics answer holds (the text must parse with prometheus-client's parser)."""
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    """The sum of the samples named ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def readyz(port: int) -> tuple[int, dict[str, Any]]:
    r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=10)
    return r.status_code, r.json()


def start_roles(cluster: Cluster, *extra: str) -> dict[str, int]:
    ports = {"api": free_port(), "orch": free_port(), "w1": free_port()}
    cluster.start("orch", "--role", "orchestrator", "--name", "orch", "--metrics-port", str(ports["orch"]), *extra)
    cluster.start("w1", "--role", "worker-cpu", "--name", "w1", "--metrics-port", str(ports["w1"]), *extra)
    cluster.start("api", "--role", "api", "--port", str(cluster.port), "--metrics-port", str(ports["api"]), *extra)
    wait_until(cluster._healthy, 30, "the API to answer")
    wait_until(lambda: cluster.live("w1"), 30, "the worker to heartbeat")
    return ports


def test_each_roles_metrics_move_with_a_job(cluster: Cluster) -> None:
    ports = start_roles(cluster)
    wait_until(lambda: readyz(ports["orch"])[1].get("lease") == "held", 30, "the orchestrator to hold the lease")
    before = {role: scrape(port) for role, port in ports.items()}

    job = cluster.client.submit("map_reduce", {"n": 5})
    assert cluster.wait(job.id).succeeded

    def moved() -> dict[str, Samples] | None:
        after = {role: scrape(port) for role, port in ports.items()}
        calls = value(after["w1"], "agentbus_task_calls_total", task="square", queue="cpu", outcome="succeeded")
        done = value(after["orch"], "agentbus_jobs_finished_total", type="map_reduce", status="succeeded")
        return after if calls - value(before["w1"], "agentbus_task_calls_total") >= 5 and done >= 1 else None

    after = wait_until(moved, 15, "the workers' and orchestrator's counters")
    api, orch, worker = after["api"], after["orch"], after["w1"]
    # the API: the submission, and the request by its route template and status, with its duration
    assert value(api, "agentbus_jobs_submitted_total", type="map_reduce") == 1
    assert value(api, "agentbus_http_requests_total", method="POST", route="/jobs", status="201") == 1
    assert value(api, "agentbus_http_request_duration_seconds_count", route="/jobs/{job_id}/results") >= 1
    assert not any("job_id" in dict(ls) or job.id in str(ls) for (_, ls) in api)  # no ids in labels
    # each role exports its own: no lease on the API or a worker, no slots on the orchestrator
    assert "agentbus_orchestrator_lease_held" not in {n for (n, _) in api} | {n for (n, _) in after["w1"]}
    assert "agentbus_worker_slots" not in {n for (n, _) in after["orch"]}
    # the orchestrator: it holds the lease, replayed the job, and reads queue depths from Redis
    assert value(orch, "agentbus_orchestrator_lease_held") == 1
    assert value(orch, "agentbus_replay_duration_seconds_count") > value(
        before["orch"], "agentbus_replay_duration_seconds_count"
    )
    depth = ("agentbus_queue_depth", frozenset({("queue", "cpu"), ("priority", "normal")}))
    wait_until(lambda: depth in scrape(ports["orch"]), 10, "the queue depth (read at most every 5 s)")
    assert "agentbus_jobs" in {n for (n, _) in orch}
    # the worker: five calls of square, each timed, and the dispatches' wait in the queue
    assert value(worker, "agentbus_task_call_duration_seconds_count", task="square") >= 5
    assert value(worker, "agentbus_queue_wait_seconds_count", queue="cpu", priority="normal") >= 1
    slots = value(worker, "agentbus_worker_slots", state="busy") + value(worker, "agentbus_worker_slots", state="free")
    assert slots == 100  # worker-cpu's default concurrency

    code, body = readyz(ports["w1"])
    assert code == 200 and body["checks"] == {"heartbeat": "ok", "redis": "ok", "postgresql": "ok"}

    # agentbus status: the same cluster on one screen, from the API
    status = cluster.client.status()
    assert status["orchestrator"]["lease_holder"] == "orch"
    assert any(w["id"] == "w1" and w["status"] == "live" and w["free"] == 100 for w in status["workers"])
    assert {"submitted", "running", "waiting_human"} <= set(status["jobs"])
    shown = subprocess.run([*cluster_cli(), "status"], env=cluster.env, capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "orch" in shown.stdout and "w1" in shown.stdout


def cluster_cli() -> list[str]:
    import sys

    return [sys.executable, "-m", "agentbus"]


def test_request_ids_are_echoed_and_json_logs_carry_the_ids(cluster: Cluster) -> None:
    start_roles(cluster, "--log-format", "json", "--log-level", "debug")
    headers = {"Authorization": f"Bearer {cluster.key}", "X-Request-ID": "req-42.a"}
    r = httpx.post(
        f"{cluster.env['AGENTBUS_API_URL']}/jobs", json={"type": "map_reduce", "input": {"n": 2}}, headers=headers
    )
    assert r.status_code == 201 and r.headers["x-request-id"] == "req-42.a"
    job_id = r.json()["id"]
    assert cluster.wait(job_id).succeeded
    bad = httpx.get(f"{cluster.env['AGENTBUS_API_URL']}/healthz", headers={"X-Request-ID": "no spaces allowed"})
    assert bad.headers["x-request-id"] != "no spaces allowed" and len(bad.headers["x-request-id"]) == 32

    def lines(name: str) -> list[dict[str, Any]]:
        out = []
        for raw in (cluster.logs / f"{name}.log").read_text().splitlines():
            if raw.startswith("{"):
                out.append(json.loads(raw))  # every JSON line parses
        return out

    def logged() -> bool:
        api, orch, worker = lines("api"), lines("orch"), lines("w1")
        return (
            any(e.get("request_id") == "req-42.a" and e.get("logger") == "agentbus.access" for e in api)
            and any(e.get("job_id") == job_id and e.get("role") == "orchestrator" for e in orch)
            and any(e.get("job_id") == job_id and e.get("task_id", "").startswith(job_id) for e in worker)
        )

    wait_until(logged, 10, "log lines carrying the ids")
    access = next(e for e in lines("api") if e.get("request_id") == "req-42.a")
    assert access["role"] == "api" and access["tenant"] == "default" and access["route"] == "/jobs"
    assert access["status"] == 201
    call = next(e for e in lines("w1") if e.get("job_id") == job_id and "task_id" in e)
    assert call["attempt"] == 1 and call["role"] == "worker-cpu"


def test_a_standby_orchestrator_is_ready_and_says_so(cluster: Cluster) -> None:
    a, b = free_port(), free_port()
    cluster.start("orch-a", "--role", "orchestrator", "--name", "orch-a", "--metrics-port", str(a))
    wait_until(lambda: _answers(a) and readyz(a)[1].get("lease") == "held", 30, "orch-a to take the lease")
    cluster.start("orch-b", "--role", "orchestrator", "--name", "orch-b", "--metrics-port", str(b))
    wait_until(lambda: _answers(b), 30, "orch-b's health port")
    code, body = readyz(b)
    assert code == 200 and body["lease"] == "standby" and body["checks"] == {"redis": "ok", "postgresql": "ok"}
    assert value(scrape(b), "agentbus_orchestrator_lease_held") == 0
    assert value(scrape(a), "agentbus_orchestrator_lease_held") == 1


def _answers(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_worker_whose_redis_is_cut_is_not_ready(cluster: Cluster, tmp_path: Path) -> None:
    redis_port, metrics_port = free_port(), free_port()
    server = subprocess.Popen(
        ["redis-server", "--port", str(redis_port), "--save", "", "--appendonly", "no", "--dir", str(tmp_path)],
        stdout=subprocess.DEVNULL,
    )
    try:
        cluster.env["AGENTBUS_REDIS_URL"] = f"redis://127.0.0.1:{redis_port}/0"
        cluster.start("w1", "--role", "worker-cpu", "--name", "w1", "--metrics-port", str(metrics_port))
        wait_until(lambda: _answers(metrics_port) and readyz(metrics_port)[0] == 200, 30, "the worker to be ready")
        server.terminate()
        server.wait(10)
        _, body = wait_until(lambda: (r := readyz(metrics_port))[0] == 503 and r, 30, "the worker to be unready")
        assert body["status"] == "unavailable" and body["checks"]["redis"] != "ok"
        assert body["checks"]["postgresql"] == "ok"
        assert cluster.procs["w1"].poll() is None  # not ready, but alive: it waits for Redis
    finally:
        if server.poll() is None:
            server.kill()
        server.wait(10)


def test_one_trace_per_job_from_the_api_through_the_orchestrator_to_the_workers(
    cluster: Cluster, tmp_path: Path
) -> None:
    spans_dir = tmp_path / "spans"
    cluster.env["AGENTBUS_TRACING"] = f"file:{spans_dir}"  # each process appends its spans to a file there
    start_roles(cluster)
    job = cluster.client.submit("map_reduce", {"n": 3})
    assert cluster.wait(job.id).succeeded

    def spans() -> list[dict[str, Any]]:
        return [json.loads(line) for f in spans_dir.glob("*.jsonl") for line in f.read_text().splitlines()]

    def of_job(name: str) -> list[dict[str, Any]]:
        attr = "agentbus.task_id" if name == "task.call" else "agentbus.job_id"
        return [s for s in spans() if s["name"] == name and str(s["attributes"].get(attr, "")).startswith(job.id)]

    wait_until(lambda: len(of_job("task.call")) >= 3 and len(of_job("job.advance")) >= 2, 15, "the job's spans")
    [root] = of_job("job.submit")
    advances, calls = of_job("job.advance"), of_job("task.call")
    trace_id = root["context"]["trace_id"]
    assert root["parent_id"] is None and root["resource"]["attributes"]["service.name"] == "agentbus-api"
    for s in advances:  # every replay, in the orchestrator, is a child of the API's span
        assert s["context"]["trace_id"] == trace_id and s["parent_id"] == root["context"]["span_id"]
        assert s["resource"]["attributes"]["service.name"] == "agentbus-orchestrator"
    replays = {s["context"]["span_id"] for s in advances}
    for s in calls:  # every call, on the worker, is a child of the replay that dispatched it
        assert s["context"]["trace_id"] == trace_id and s["parent_id"] in replays
        assert s["resource"]["attributes"]["service.name"] == "agentbus-worker-cpu"
        assert s["attributes"]["agentbus.outcome"] == "succeeded"
