"""Routing and the worker fleet on the real roles, GPU workers under numba's CUDA simulator."""

from __future__ import annotations

import signal
import time
from typing import Any

import numpy as np
import pytest

from _cluster import Cluster, wait_until

pytestmark = pytest.mark.e2e

A = [[1.0, 0.0, 2.0], [0.5, 0.5, 0.5], [3.0, 1.0, 0.0]]
B = [[1.0, 1.0, 1.0], [0.0, 2.0, 1.0]]


def reference() -> np.ndarray:
    a, b = np.array(A), np.array(B)
    return (a / np.linalg.norm(a, axis=1, keepdims=True)) @ (b / np.linalg.norm(b, axis=1, keepdims=True)).T


def first_task(c: Cluster, job_id: str) -> dict[str, Any]:
    """The job's first task (an empty dict until the orchestrator has recorded it)."""
    tasks: list[dict[str, Any]] = c.client.job(job_id)["tasks"]
    return tasks[0] if tasks else {}


def test_gpu_task_runs_on_a_gpu_worker_and_falls_back_to_cpu_without_one(cluster: Cluster) -> None:
    cluster.orchestrator()
    cluster.worker("cpu1")
    cluster.api()
    # no GPU worker: fallback="cpu" sends it to the CPU, and says why
    job = cluster.client.submit("similarity", {"a": A, "b": B})
    body = cluster.wait(job["id"])
    assert body["result"]["device"] == "cpu"
    assert np.allclose(body["result"]["matrix"], reference(), atol=1e-5)
    task = first_task(cluster, job["id"])
    assert task["queue"] == "cpu" and "fallback to CPU" in task["route_reason"]
    # with a (simulated) GPU worker it goes there; the CUDA kernel gives the same matrix
    cluster.gpu_worker("gpu1")
    job = cluster.client.submit("similarity", {"a": A, "b": B})
    body = cluster.wait(job["id"], timeout=120)
    assert body["result"]["device"] == "gpu"
    assert np.allclose(body["result"]["matrix"], reference(), atol=1e-5)
    task = first_task(cluster, job["id"])
    assert task["queue"] == "gpu" and task["worker"] == "gpu1" and "GPU worker" in task["route_reason"]
    (gpu,) = [w for w in cluster.client.workers() if w["id"] == "gpu1"]
    assert gpu["device"]["simulated"] is True and gpu["device"]["memory_total"] == 16 * 2**30
    assert "gpu.16gb" in gpu["targets"]


def test_without_fallback_a_gpu_task_waits_then_runs_when_a_gpu_worker_starts(cluster: Cluster) -> None:
    cluster.orchestrator()
    cluster.worker("cpu1")
    cluster.api()
    job = cluster.client.submit("gpu_only", {"x": 7})
    wait_until(lambda: first_task(cluster, job["id"]).get("state") == "pending", 30, "the task to wait")
    time.sleep(1.5)
    task = first_task(cluster, job["id"])
    assert task["state"] == "pending" and task["route_reason"] == "waiting for a GPU worker"
    assert cluster.client.job(job["id"])["status"] == "running"
    cluster.gpu_worker("gpu1")
    assert cluster.wait(job["id"], timeout=120)["result"] == {"device": "gpu", "x": 7}


def test_gpu_memory_requirement_routes_only_to_devices_that_have_it(cluster: Cluster) -> None:
    cluster.orchestrator()
    cluster.worker("cpu1")
    cluster.api()
    cluster.gpu_worker("small", memory="16GB")
    job = cluster.client.submit("big_model", {"x": 1})
    assert cluster.wait(job["id"], timeout=120)["result"]["device"] == "cpu"
    assert "24 GB" in first_task(cluster, job["id"])["route_reason"]
    cluster.gpu_worker("large", memory="40GB")
    job = cluster.client.submit("big_model", {"x": 2})
    assert cluster.wait(job["id"], timeout=120)["result"] == {"device": "gpu", "x": 2}
    task = first_task(cluster, job["id"])
    assert task["queue"] == "gpu.24gb" and task["worker"] == "large"
    # device="any" takes an idle GPU when one is live
    job = cluster.client.submit("anywhere", {"x": 3})
    assert cluster.wait(job["id"], timeout=120)["result"]["device"] == "gpu"


def test_higher_priority_jobs_are_taken_first_under_a_backlog(cluster: Cluster) -> None:
    cluster.orchestrator()
    cluster.api()
    low = cluster.client.submit("stamp", {"label": "low", "n": 6}, priority=-5)
    normal = cluster.client.submit("stamp", {"label": "normal", "n": 6})
    high = cluster.client.submit("stamp", {"label": "high", "n": 6}, priority=5)
    wait_until(
        lambda: all(cluster.client.job(j["id"])["progress"].get("queued") == 6 for j in (low, normal, high)),
        30,
        "the backlog",
    )
    cluster.worker("only")  # one worker, three queued jobs
    runs = {j["id"]: cluster.wait(j["id"])["result"] for j in (low, normal, high)}
    starts = {
        label: [r["start"] for r in runs[j["id"]]] for label, j in (("low", low), ("normal", normal), ("high", high))
    }
    assert max(starts["high"]) < min(starts["normal"])
    assert max(starts["normal"]) < min(starts["low"])


def test_concurrency_cap_is_never_exceeded(cluster: Cluster) -> None:
    cluster.orchestrator()
    for i in range(3):
        cluster.worker(f"w{i}")
    cluster.api()
    job = cluster.client.submit("batch_infer", {"model": "m1", "n": 8, "seconds": 0.3})
    runs = cluster.wait(job["id"], timeout=120)["result"]
    assert sorted(r["i"] for r in runs) == list(range(8))
    edges = sorted([(r["start"], 1) for r in runs] + [(r["end"], -1) for r in runs], key=lambda e: (e[0], e[1]))
    running, peak = 0, 0
    for _, delta in edges:
        running += delta
        peak = max(peak, running)
    assert peak <= 2
    assert peak == 2  # three workers, so the cap (not the fleet) is what held it


def test_sigterm_finishes_the_current_call_and_hands_the_rest_back(cluster: Cluster, pg_url: str) -> None:
    cluster.orchestrator()
    cluster.worker("leaving")
    cluster.api()
    job = cluster.client.submit("paced_map", {"n": 40, "seconds": 0.25})
    wait_until(lambda: cluster.client.job(job["id"])["progress"].get("succeeded", 0) >= 4, 60, "progress")
    proc = cluster.procs["leaving"]
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0  # finished its call, handed the others back, exited
    cluster.procs.pop("leaving")
    cluster.worker("staying")
    assert cluster.wait(job["id"], timeout=120)["result"] == {"n": 40, "sum": 40 * 39 // 2}


def test_a_second_sigterm_stops_the_call_at_once_and_it_runs_again_elsewhere(cluster: Cluster) -> None:
    cluster.orchestrator()
    cluster.worker("leaving")
    cluster.api()
    job = cluster.client.submit("long_haul", {"tasks": 1, "seconds": 6})
    wait_until(lambda: first_task(cluster, job["id"]).get("state") == "running", 30, "the call to start")
    proc = cluster.procs["leaving"]
    proc.send_signal(signal.SIGTERM)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    cluster.procs.pop("leaving")
    task = first_task(cluster, job["id"])
    assert task["state"] == "queued" and task["attempt"] == 2
    cluster.worker("staying")
    assert cluster.wait(job["id"], timeout=120)["result"] == [6.0]
    assert first_task(cluster, job["id"])["worker"] == "staying"


def test_workers_endpoint_shows_the_fleet_and_marks_the_silent_lost(cluster: Cluster) -> None:
    cluster.orchestrator()
    cluster.worker("w1")
    cluster.worker("doomed")
    cluster.api()
    wait_until(lambda: cluster.live("w1") and cluster.live("doomed"), 30, "two live workers")
    cluster.kill("doomed")
    wait_until(
        lambda: any(w["id"] == "doomed" and w["status"] == "lost" for w in cluster.client.workers()),
        60,
        "doomed to be marked lost",
    )
    assert cluster.live("w1")
