"""Security across processes: forged queue messages, circuit breakers, limits across API replicas."""

from __future__ import annotations

import json
import pickle
import re
import socket
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from rq import Queue
from rq.serializers import JSONSerializer

from agentbus.bus.queues import CHUNK_FUNC, queue_name

from _cluster import Cluster, free_port, wait_until

pytestmark = pytest.mark.e2e


def test_forged_messages_written_straight_into_redis_run_nothing(
    running: Cluster, redis_url: str, tmp_path: Path
) -> None:
    canary = tmp_path / "canary"
    conn = redis.Redis.from_url(redis_url)
    q = Queue(queue_name("cpu"), connection=conn, serializer=JSONSerializer)
    # 1. a job whose function is os.system
    q.enqueue("os.system", f"touch {canary}")
    # 2. a pickle payload under RQ's default serializer
    Queue(queue_name("cpu"), connection=conn).enqueue("os.system", f"touch {canary}")
    conn.rpush(
        "rq:queue:" + queue_name("cpu"), b"forged-" + pickle.dumps(("os.system", f"touch {canary}")).hex().encode()
    )
    # 3. a signed dispatch whose arguments were tampered with after signing
    job = running.client.submit("echo", {"message": "genuine"})
    assert running.wait(job["id"])["result"] == "genuine"
    # agentbus dispatch ids are "d" + 32 hex digits (RQ's own ids are dashed uuids, which may start with d too)
    dispatch_ids = [
        k.decode()[len("rq:job:") :] for k in conn.keys("rq:job:d*") if re.fullmatch(rb"rq:job:d[0-9a-f]{32}", k)
    ]
    assert dispatch_ids, "the genuine job went through RQ"
    genuine = conn.hget(f"rq:job:{dispatch_ids[0]}", "data")
    assert genuine is not None
    _func, _instance, args, _kwargs = json.loads(zlib.decompress(genuine))  # RQ stores job data compressed
    envelope = json.loads(args[0])
    body = json.loads(envelope["body"])
    body["calls"][0]["args"] = {"message": f"$(touch {canary})"}
    envelope["body"] = json.dumps(body)
    q.enqueue(CHUNK_FUNC, json.dumps(envelope), job_id="dtampered")
    # 4. the genuine, validly signed dispatch replayed: the same RQ job pushed again
    conn.rpush("rq:queue:" + queue_name("cpu"), dispatch_ids[0].encode())

    def rejected() -> int:
        return sum(int(w.get("rejected", 0)) for w in running.client.workers())

    try:
        wait_until(lambda: rejected() >= 4, 30, "the workers to refuse the forged messages")
    finally:
        print("rejected:", rejected(), [(w["id"], w.get("rejected")) for w in running.client.workers()])
    time.sleep(1)
    assert not canary.exists()
    # nothing ran twice, and the workers are still serving
    assert running.client.job(job["id"])["progress"] == {"done": 1, "total": 1, "succeeded": 1}
    again = running.client.submit("echo", {"message": "still serving"})
    assert running.wait(again["id"])["result"] == "still serving"


class TcpProxy:
    """A loopback TCP proxy to stand in for a dependency that goes down and comes back."""

    def __init__(self, target_port: int) -> None:
        self.target = target_port
        self.port = free_port()
        self.conns: list[socket.socket] = []
        self.server: socket.socket | None = None

    def start(self) -> None:
        server = socket.socket()
        server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        server.bind(("127.0.0.1", self.port))
        server.listen(64)
        self.server = server
        threading.Thread(target=self._accept, args=(server,), daemon=True).start()

    def _accept(self, server: socket.socket) -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.target))
            self.conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.close()
                except OSError:
                    pass

    def stop(self) -> None:
        if self.server is not None:
            try:
                self.server.shutdown(socket.SHUT_RDWR)  # wakes the accept() blocked in its thread
            except OSError:
                pass
            self.server.close()
            self.server = None
        for c in self.conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
                c.close()
            except OSError:
                pass
        self.conns = []


def test_api_fails_fast_while_postgresql_is_down_and_recovers(cluster: Cluster, pg_url: str) -> None:
    proxy = TcpProxy(5432)
    proxy.start()
    through_proxy = pg_url.replace(":5432/", f":{proxy.port}/")
    cluster.orchestrator()
    cluster.worker("w1")
    cluster.env["AGENTBUS_DATABASE_URL"] = through_proxy  # only the API goes through the proxy
    cluster.api()
    assert cluster.wait(cluster.client.submit("echo", {"message": "up"})["id"])["result"] == "up"
    proxy.stop()
    headers = {"Authorization": f"Bearer {cluster.key}"}
    timings: list[tuple[int, float, str | None]] = []
    for _ in range(8):
        t0 = time.monotonic()
        r = httpx.get(f"http://127.0.0.1:{cluster.port}/jobs", headers=headers, timeout=30)
        timings.append((r.status_code, time.monotonic() - t0, r.headers.get("Retry-After")))
    assert all(code == 503 and retry for code, _, retry in timings), timings
    assert all(seconds < 1.0 for _, seconds, _ in timings[4:]), timings  # the breaker is open: no waiting
    proxy.start()
    url = f"http://127.0.0.1:{cluster.port}/jobs"
    wait_until(lambda: httpx.get(url, headers=headers, timeout=30).status_code == 200, 30, "the API to recover")
    assert cluster.wait(cluster.client.submit("echo", {"message": "back"})["id"])["result"] == "back"


def test_rate_limits_hold_across_two_api_replicas(cluster: Cluster) -> None:
    cluster.env["AGENTBUS_RATE_READ"] = "1/m:6"  # refills once a minute: none during the test
    cluster.env["AGENTBUS_TENANT_RATE_FACTOR"] = "10"
    cluster.orchestrator()
    cluster.api()
    second = free_port()
    cluster.start("api2", "--role", "api", "--port", str(second))
    wait_until(lambda: _up(second), 30, "the second replica")
    headers = {"Authorization": f"Bearer {cluster.key}"}
    codes: list[int] = []
    for i in range(12):
        port = cluster.port if i % 2 == 0 else second
        codes.append(httpx.get(f"http://127.0.0.1:{port}/jobs", headers=headers, timeout=10).status_code)
    assert codes.count(200) == 6 and codes.count(429) == 6  # one bucket of 6, not 6 per replica


def _up(port: int) -> Any:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200
    except httpx.TransportError:
        return False


def test_a_job_over_the_task_cap_fails_and_an_oversized_result_fails_its_task(cluster: Cluster) -> None:
    cluster.env["AGENTBUS_MAX_TASKS_PER_JOB"] = "5"
    cluster.env["AGENTBUS_MAX_RESULT_BYTES"] = "1024"
    cluster.orchestrator()
    cluster.worker("w1")
    cluster.api()
    big = cluster.wait(cluster.client.submit("map_reduce", {"n": 10})["id"])
    assert big["status"] == "failed" and big["error"]["type"] == "TooManyTasks"
    assert cluster.client.job(big["id"])["progress"]["total"] == 0  # nothing was dispatched
    small = cluster.wait(cluster.client.submit("map_reduce", {"n": 5})["id"])
    assert small["status"] == "succeeded"
    huge = cluster.wait(cluster.client.submit("echo", {"message": "x" * 2000})["id"])
    assert huge["status"] == "failed" and huge["error"]["type"] == "ResultTooLarge"


def test_while_redis_is_cut_off_the_api_still_accepts_jobs_fast_and_none_is_lost(
    cluster: Cluster, redis_url: str
) -> None:
    proxy = TcpProxy(6379)
    proxy.start()
    cluster.orchestrator()
    cluster.worker("w1")
    cluster.env["AGENTBUS_REDIS_URL"] = redis_url.replace(":6379/", f":{proxy.port}/")  # only the API's Redis
    cluster.api()
    assert cluster.wait(cluster.client.submit("echo", {"message": "before"})["id"])["result"] == "before"
    proxy.stop()
    base = f"http://127.0.0.1:{cluster.port}"
    headers = {"Authorization": f"Bearer {cluster.key}"}
    accepted, took = [], []
    for i in range(6):
        t0 = time.monotonic()
        r = httpx.post(
            f"{base}/jobs", json={"type": "echo", "input": {"message": f"during {i}"}}, headers=headers, timeout=30
        )
        took.append(time.monotonic() - t0)
        assert r.status_code == 201, r.text  # PostgreSQL is the record: the job is accepted
        accepted.append(r.json()["id"])
    assert all(t < 1.0 for t in took[3:]), took  # the breaker is open: no waiting on a dead connection
    assert httpx.get(f"{base}/readyz", timeout=10).status_code == 503
    # the orchestrator (on the real Redis) never heard of them: its reconciler finds them in PostgreSQL
    for job_id in accepted:
        assert cluster.wait(job_id, timeout=60)["status"] == "succeeded"
    proxy.start()
    wait_until(lambda: httpx.get(f"{base}/readyz", timeout=10).status_code == 200, 30, "the API's Redis to recover")
