"""The API process on a bad day: bursts, crowds of waiters, half-open connections, forged headers."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor

import httpx

from _cluster import Cluster

UNLIMITED = {"AGENTBUS_RATE_READ": "100000/s:100000", "AGENTBUS_RATE_WRITE": "100000/s:100000"}


def _base(cluster: Cluster) -> str:
    return f"http://127.0.0.1:{cluster.port}"


def _auth(cluster: Cluster) -> dict[str, str]:
    return {"Authorization": f"Bearer {cluster.key}"}


def _submit(cluster: Cluster) -> str:
    r = httpx.post(
        f"{_base(cluster)}/jobs", json={"type": "echo", "input": {"message": "x"}}, headers=_auth(cluster), timeout=30
    )
    assert r.status_code == 201, r.text
    job_id: str = r.json()["id"]
    return job_id


def test_a_burst_of_concurrent_reads_all_answer_and_the_api_stays_usable(cluster: Cluster) -> None:
    # More concurrent requests than the thread pool (40) and the connection pool (32) hold:
    # each answers (a 503 at worst, never a hang), and afterwards the API still works.
    cluster.env.update(UNLIMITED)
    cluster.api()
    job_id = _submit(cluster)

    def get(_: int) -> int | str:
        try:
            return httpx.get(f"{_base(cluster)}/jobs/{job_id}", headers=_auth(cluster), timeout=30).status_code
        except httpx.TimeoutException:
            return "timeout"

    for _ in range(2):
        with ThreadPoolExecutor(60) as pool:
            codes = list(pool.map(get, range(60)))
        assert set(codes) <= {200, 503}, codes
    assert [get(0) for _ in range(3)] == [200, 200, 200]
    assert httpx.get(f"{_base(cluster)}/readyz", timeout=10).status_code == 200


def _open(cluster: Cluster, path: str) -> socket.socket:
    """A request sent on a raw socket whose answer is never read (the client just waits)."""
    s = socket.create_connection(("127.0.0.1", cluster.port), timeout=10)
    s.sendall(f"GET {path} HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {cluster.key}\r\n\r\n".encode())
    return s


def test_hundreds_of_waiting_clients_do_not_starve_the_api(cluster: Cluster) -> None:
    cluster.env.update(UNLIMITED)
    cluster.api()  # no orchestrator: the jobs stay open, every waiter waits its whole time
    jobs = [_submit(cluster) for _ in range(20)]
    waiters = [_open(cluster, f"/jobs/{jobs[i % 20]}/results?wait=60") for i in range(300)]
    waiters += [_open(cluster, f"/jobs/{jobs[i % 20]}/events") for i in range(60)]
    try:
        time.sleep(1.0)  # let the server take them all in
        assert httpx.get(f"{_base(cluster)}/healthz", timeout=20).status_code == 200
        r = httpx.post(
            f"{_base(cluster)}/jobs",
            json={"type": "echo", "input": {"message": "y"}},
            headers=_auth(cluster),
            timeout=20,
        )
        assert r.status_code == 201, r.text
        assert httpx.get(f"{_base(cluster)}/jobs/{jobs[0]}", headers=_auth(cluster), timeout=20).status_code == 200
    finally:
        for s in waiters:
            s.close()
    # closing the waiting sockets frees what they held: the API keeps answering
    assert httpx.get(f"{_base(cluster)}/readyz", timeout=20).status_code == 200


def test_a_long_poll_answers_as_soon_as_its_job_finishes(running: Cluster) -> None:
    job_id = running.client.submit("echo", {"message": "hi"})["id"]
    r = httpx.get(f"{_base(running)}/jobs/{job_id}/results?wait=30", headers=_auth(running), timeout=40)
    assert r.status_code == 200 and r.json()["result"] == "hi"


def test_connections_that_never_finish_their_request_head_are_closed(cluster: Cluster) -> None:
    cluster.env["AGENTBUS_HTTP_HEADER_TIMEOUT"] = "1"
    cluster.api()
    half_open = []
    for i in range(200):
        s = socket.create_connection(("127.0.0.1", cluster.port), timeout=15)
        if i % 2:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: api\r\nX-Slow: ")  # half a head, then nothing
        half_open.append(s)
    try:
        closed, deadline = 0, time.monotonic() + 15
        for s in half_open:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                closed += s.recv(1024) == b""  # the server hung up
            except ConnectionResetError:
                closed += 1
            except TimeoutError:
                pass
        assert closed == len(half_open)
        assert httpx.get(f"{_base(cluster)}/healthz", timeout=10).status_code == 200
    finally:
        for s in half_open:
            s.close()


def test_rotating_forwarded_for_from_loopback_does_not_reset_the_failed_auth_limit(cluster: Cluster) -> None:
    cluster.env["AGENTBUS_AUTHFAIL_RATE"] = "1/m:3"
    cluster.api()
    bad = {"Authorization": f"Bearer ab_{'1' * 12}_{'y' * 43}"}
    codes = [
        httpx.get(
            f"{_base(cluster)}/jobs", headers={**bad, "X-Forwarded-For": f"203.0.113.{i}"}, timeout=10
        ).status_code
        for i in range(6)
    ]
    assert codes[:3] == [401] * 3 and set(codes[3:]) == {429}
    assert httpx.get(f"{_base(cluster)}/jobs", headers=_auth(cluster), timeout=10).status_code == 200
