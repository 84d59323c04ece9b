"""Many independent one-task jobs at once: agentbus beside Celery, arq and raw RQ, in one run.

    python -m bench.jobs [--clients 32] [--n 5000] [--submit-only] [--profile DIR] [--soak SECONDS]
                         [--orchestrators N] [--shards K] [--skip-baselines] [--write-docs]

Each of C clients submits a one-task job (``POST /jobs`` of ``echo``) and long-polls its result
(``GET /jobs/{id}/results?wait=30``), then the next, until N jobs are done; the API, one
orchestrator and 2 CPU workers run as processes on local PostgreSQL and Redis. Printed:
completed jobs/s, p50/p99 submit→result, p50/p99 of ``POST /jobs``, errors; per role, its CPU
milliseconds, PostgreSQL statements and Redis round trips per job (counted inside each role by
``bench/_counted.py``), PostgreSQL commits and rows per job (``pg_stat_database``), and the CPU of the
local PostgreSQL and Redis processes per job.
The same C clients then drive Celery (2 solo-pool workers, Redis broker and result backend,
``send_task().get()``), arq (2 workers, ``enqueue_job`` then ``result()``) and raw RQ
(2 SimpleWorkers, ``enqueue`` then polling the job's status) on a no-op.

``--submit-only``: 50 clients only submit (one API process, no orchestrator or workers): the
accept rate of ``POST /jobs``. ``--get PATH``: the same, with ``GET PATH`` instead (``/healthz``: no
key, no store, the HTTP stack and middlewares alone; ``/jobs?limit=1``: a keyed read).
``--one``: one client, one job at a time. ``--profile DIR``:
py-spy records every role during the measured window (collapsed stacks in DIR, and the top
frames printed). ``--async-commit``: the roles connect with ``synchronous_commit=off``
(docs/benchmarks.md says what a crash can lose). ``--soak S``: run for S seconds instead of N
jobs and report resident memory of each role over time and PostgreSQL table growth per job.
``--orchestrators N --shards K``: N orchestrators share K control-stream shards (every role runs
with ``AGENTBUS_SHARDS=K``); the measured window starts once the shards are shared out, and each
orchestrator's CPU per job is printed on its own line (docs/scaling.md).

The load client is one asyncio loop with a keep-alive HTTP/1.1 connection per client, written
by hand (``_Conn``: httpx cost three times the API's CPU per request); its own CPU use is
printed (``client CPU``): near 100 % of a core it would be the bottleneck.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg2
import redis

from bench._baselines import _env as baseline_env
from bench._baselines import _Workers
from bench._counted import read_counts
from bench._docs import write_section
from bench._roles import Roles, fresh_database

ROOT = Path(__file__).resolve().parent.parent
ROLES_RUN = ("api", "orchestrator", "worker0", "worker1")


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


@dataclass
class Load:
    """What a load run measured (milliseconds)."""

    seconds: float = 0.0
    done: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    total: list[float] = field(default_factory=list)
    submit: list[float] = field(default_factory=list)
    client_cpu: float = 0.0
    load_avg: float = 0.0
    label: str = "POST /jobs"  # what ``submit`` timed

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        out = (
            f"{self.rate:,.0f} jobs/s ({self.done:,} in {self.seconds:.1f} s), submit→result p50 "
            f"{pct(self.total, 50):.1f} ms p99 {pct(self.total, 99):.1f} ms"
        )
        if self.submit:
            out += f"; {self.label} p50 {pct(self.submit, 50):.1f} ms p99 {pct(self.submit, 99):.1f} ms"
        errors = sum(self.errors.values())
        out += f"; errors {errors}" + (f" {dict(self.errors)}" if errors else "")
        return out


def _load_avg() -> float:
    return os.getloadavg()[0]


class _Conn:
    """One keep-alive HTTP/1.1 connection of the load client, written by hand.

    httpx.AsyncClient spent ~4 CPU ms per request here (measured: 84 % of a core for 199
    POST/s), three times what the API spent answering it, on a machine where client and
    server share 2 cores; this spends a fraction of that. It speaks only what the API answers
    with (a Content-Length body; no chunking, no redirects).
    """

    def __init__(self, host: str, port: int, headers: dict[str, str]) -> None:
        self.host, self.port = host, port
        self.head = "".join(f"{k}: {v}\r\n" for k, v in {"host": f"{host}:{port}", **headers}.items())
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        extra = f"content-type: application/json\r\ncontent-length: {len(body)}\r\n" if body else ""
        self.writer.write(f"{method} {path} HTTP/1.1\r\n{self.head}{extra}\r\n".encode() + body)
        try:
            head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), 60)
            status = int(head[9:12])
            lower = head.lower()
            at = lower.find(b"\r\ncontent-length:")
            if at < 0:
                raise ConnectionError("an answer without Content-Length")
            length = int(lower[at + 17 : lower.index(b"\r\n", at + 2)])
            return status, await self.reader.readexactly(length)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


LOAD_ERRORS = (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError)
SUBMIT_BODY = json.dumps({"type": "echo", "input": {"message": "x"}}).encode()


async def _agentbus_load(
    base: str,
    headers: dict[str, str],
    clients: int,
    n: int,
    seconds: float | None,
    submit_only: bool,
    get: str,
    rate: float = 0.0,
) -> Load:
    out = Load(label=f"GET {get}") if get else Load()
    issued = 0
    stop_at = None if seconds is None else time.monotonic() + seconds
    url = urlsplit(base)
    host, port = url.hostname or "127.0.0.1", url.port or 80

    def take() -> float | None:
        """When the next job is due (now, unless ``rate`` paces them); None: no more."""
        nonlocal issued
        if stop_at is not None and time.monotonic() >= stop_at:
            return None
        if stop_at is None and issued >= n:
            return None
        issued += 1
        return started + (issued - 1) / rate if rate else time.perf_counter()

    async def client() -> None:
        http = _Conn(host, port, headers)
        try:
            while (due := take()) is not None:
                # Paced: a job is timed from when it was due, not from when this client got round to
                # it, so a server that falls behind shows as latency (no coordinated omission).
                if (wait := due - time.perf_counter()) > 0:
                    await asyncio.sleep(wait)
                t0 = due
                try:
                    if get:
                        status, body = await http.request("GET", get)
                        if status != 200:
                            out.errors[f"GET {status}"] += 1
                            continue
                        out.submit.append((time.perf_counter() - t0) * 1000)
                        out.done += 1
                        continue
                    status, body = await http.request("POST", "/jobs", SUBMIT_BODY)
                    t1 = time.perf_counter()
                    if status != 201:
                        out.errors[f"POST {status}"] += 1
                        continue
                    out.submit.append((t1 - t0) * 1000)
                    if submit_only:
                        out.done += 1
                        continue
                    job_id = json.loads(body)["id"]
                    while True:
                        status, body = await http.request("GET", f"/jobs/{job_id}/results?wait=30")
                        if status != 202:
                            break
                    answer = json.loads(body)
                    if status != 200 or answer["status"] != "succeeded":
                        out.errors[f"GET {status} {answer.get('status')}"] += 1
                        continue
                    out.total.append((time.perf_counter() - t0) * 1000)
                    out.done += 1
                except LOAD_ERRORS as exc:
                    out.errors[type(exc).__name__] += 1
        finally:
            http.close()

    cpu0, t0 = time.process_time(), time.perf_counter()
    started = t0  # when the first paced job is due (``take``)
    await asyncio.gather(*(client() for _ in range(clients)))
    out.seconds = time.perf_counter() - t0
    out.client_cpu = (time.process_time() - cpu0) / out.seconds
    out.load_avg = _load_avg()
    return out


def agentbus_load(
    base: str,
    headers: dict[str, str],
    clients: int,
    n: int,
    seconds: float | None = None,
    submit_only: bool = False,
    get: str = "",
    rate: float = 0.0,
) -> Load:
    return asyncio.run(_agentbus_load(base, headers, clients, n, seconds, submit_only, get, rate))


# -- what each role spends ----------------------------------------------------------------------
def _cpu_s(pid: int) -> float:
    parts = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _servers_cpu_s() -> dict[str, float]:
    """CPU seconds so far of the local PostgreSQL and Redis processes (their backends included): the
    servers' share of a job, which the roles' own counts leave out. Backends that ended during the
    window are not counted (a role's pooled connections live through it)."""
    out = {"PostgreSQL": 0.0, "Redis": 0.0}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            comm = (entry / "comm").read_text().strip()
            cpu = _cpu_s(int(entry.name))
        except (OSError, ValueError):
            continue
        if comm.startswith("postgres"):
            out["PostgreSQL"] += cpu
        elif comm.startswith("redis-server"):
            out["Redis"] += cpu
    return out


PG_TABLES = ("ab_jobs", "ab_steps", "ab_job_events")


def _pg_stats(db_url: str) -> dict[str, float]:
    conn = psycopg2.connect(db_url)
    try:
        with conn.cursor() as cur:
            cur.execute(
                "SELECT xact_commit, tup_returned, tup_fetched, tup_inserted, tup_updated, tup_deleted "
                "FROM pg_stat_database WHERE datname = current_database()"
            )
            row = cur.fetchone()
            assert row is not None
            out = dict(
                zip(("commits", "returned", "fetched", "inserted", "updated", "deleted"), map(float, row), strict=True)
            )
            for t in PG_TABLES:
                cur.execute("SELECT pg_table_size(%s), pg_indexes_size(%s)", (t, t))
                size = cur.fetchone()
                assert size is not None
                out[f"{t} table"], out[f"{t} indexes"] = float(size[0]), float(size[1])
    finally:
        conn.close()
    return out


class CountedRoles(Roles):
    """Roles started through bench/_counted.py, so each counts its statements and round trips."""

    def start(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.logs / f"{name}.log", "wb")  # noqa: SIM115 - lives as long as the process
        counts = self.logs / f"{name}.counts.json"
        argv = [sys.executable, "-m", "bench._counted", str(counts), "run", *args]
        proc = subprocess.Popen(argv, env=self.env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs[name] = proc
        return proc

    def snapshot(self) -> dict[str, dict[str, float]]:
        time.sleep(0.5)  # the counters are written every 0.2 s
        out: dict[str, dict[str, float]] = {}
        for name, proc in self.procs.items():
            raw = read_counts(self.logs / f"{name}.counts.json")
            kinds = raw.pop("kinds", {})
            counts: dict[str, float] = {k: float(v) for k, v in raw.items()}
            counts.update({f"kind:{k}": float(v) for k, v in kinds.items()})
            counts["cpu_ms"] = _cpu_s(proc.pid) * 1000
            out[name] = counts
        return out


class Profiler:
    """py-spy record on every role for the measured window (collapsed stacks)."""

    def __init__(self, roles: CountedRoles, out_dir: Path, tag: str) -> None:
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.files: dict[str, Path] = {}
        out_dir.mkdir(parents=True, exist_ok=True)
        spy = str(Path(sys.executable).parent / "py-spy")
        for name, proc in roles.procs.items():
            f = out_dir / f"{tag}-{name}.txt"
            self.files[name] = f
            self.procs[name] = subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(proc.pid),
                    "--format",
                    "raw",
                    "--rate",
                    "200",
                    "--threads",
                    "--nonblocking",
                    "-o",
                    str(f),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

    def stop(self) -> dict[str, list[tuple[str, float]]]:
        for p in self.procs.values():
            p.send_signal(signal.SIGINT)
        for p in self.procs.values():
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        return {name: top_frames(f) for name, f in self.files.items()}


def top_frames(path: Path, n: int = 12) -> list[tuple[str, float]]:
    """Share of busy samples under each agentbus/peewee/psycopg2/redis frame ("inclusive"), top n."""
    if not path.exists():
        return []
    inclusive: Counter[str] = Counter()
    busy = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not count.isdigit():
            continue
        frames = stack.split(";")
        leaf = frames[-1]
        if any(w in leaf for w in ("select", "epoll", "poll (", "wait (", "_wait_for_tstate_lock", "recv_into")):
            continue  # idle: waiting on a socket or a lock
        k = int(count)
        busy += k
        for fr in set(frames[1:]):
            name = fr.split(" (")[0]
            where = fr.split("(")[-1]
            if any(m in where for m in ("agentbus/", "peewee", "psycopg2", "redis/", "rq/", "starlette", "uvicorn")):
                inclusive[f"{name} ({where.split('/')[-1].rstrip(')')})"] += k
    return [(f, 100.0 * c / busy) for f, c in inclusive.most_common(n)] if busy else []


# -- agentbus ---------------------------------------------------------------------------------------
def start_agentbus(args: argparse.Namespace, db_name: str, api_only: bool = False) -> tuple[CountedRoles, str]:
    redis.Redis.from_url(args.redis_url).flushdb()
    db_url = fresh_database(args.pg_admin_url, db_name)
    role_url = db_url + ("?options=-c%20synchronous_commit%3Doff" if args.async_commit else "")
    env = {
        **os.environ,
        "AGENTBUS_DATABASE_URL": role_url,
        "AGENTBUS_REDIS_URL": args.redis_url,
        "AGENTBUS_APP": "agentbus.examples:app",
        "PYTHONPATH": str(ROOT),
        "AGENTBUS_RATE_READ": "100000/s:100000",
        "AGENTBUS_RATE_WRITE": "100000/s:100000",
        "AGENTBUS_SHARDS": str(args.shards),  # every role publishes by the same K
    }
    roles = CountedRoles(env, ROOT / ".agentbus" / "bench-logs" / f"jobs-{uuid.uuid4().hex[:6]}")
    if not api_only:
        for i in range(args.orchestrators):
            name = "orchestrator" if i == 0 else f"orchestrator{i}"
            roles.start(name, "--role", "orchestrator", "--name", f"jobs-orch{i}", "--shards", str(args.shards))
        _wait_shared(args.redis_url, args.shards, min(args.orchestrators, args.shards))
        for i in range(2):
            roles.start(f"worker{i}", "--role", "worker-cpu", "--name", f"jobs-w{i}")
    roles.api(args.port)
    return roles, db_url


def _wait_shared(redis_url: str, shards: int, holders: int, timeout: float = 60.0) -> None:
    """Until every shard is held, by ``holders`` orchestrators: a measured window never includes the sharing out."""
    conn = redis.Redis.from_url(redis_url)
    keys = ["agentbus:lease:orchestrator"] + [f"agentbus:lease:orchestrator.{k}" for k in range(1, shards)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        owners = conn.mget(keys)
        if None not in owners and len(set(owners)) >= holders:
            return
        time.sleep(0.1)
    raise RuntimeError(f"the {shards} shards were not shared by {holders} orchestrators within {timeout:.0f} s")


def per_job(before: dict[str, dict[str, float]], after: dict[str, dict[str, float]], jobs: int) -> list[str]:
    lines = []
    for name in after:
        d = {k: (after[name].get(k, 0) - before.get(name, {}).get(k, 0)) / max(1, jobs) for k in after[name]}
        lines.append(
            f"{name}: {d['cpu_ms']:.2f} CPU ms, {d['sql']:.2f} SQL statements, "
            f"{d['redis_round_trips']:.2f} Redis round trips ({d['redis_commands']:.2f} commands) per job; "
            f"garbage collector {d['gc_ms']:.3f} ms per job, {d['gc_over_10ms'] * jobs:.0f} pauses of 10 ms or more"
        )
        kinds = sorted(((v, k[5:]) for k, v in d.items() if k.startswith("kind:") and v >= 0.05), reverse=True)
        lines.append(f"{name} per job: " + "; ".join(f"{k} x{v:.2f}" for v, k in kinds))
    return lines


def agentbus_run(args: argparse.Namespace) -> tuple[list[tuple[str, str]], list[str], Load]:
    rows: list[tuple[str, str]] = []
    notes: list[str] = []
    # one database per port: two runs at once (on different ports) never drop each other's
    api_only = args.submit_only or bool(args.get)
    roles, db_url = start_agentbus(args, f"agentbus_bench_jobs_{args.port}", api_only=api_only)
    base = f"http://127.0.0.1:{args.port}"
    try:
        clients = 50 if api_only and args.clients == 32 else args.clients
        warm_up = min(200, args.n)
        agentbus_load(base, roles.headers, clients, warm_up, submit_only=args.submit_only, get=args.get)
        before, pg0, servers0 = roles.snapshot(), _pg_stats(db_url), _servers_cpu_s()
        rss0 = {name: _rss_mb(p.pid) for name, p in roles.procs.items()}
        prof = Profiler(roles, Path(args.profile), args.tag) if args.profile else None
        sampler = _RssSampler(roles) if args.soak else None
        if args.one:
            clients = 1
        load = agentbus_load(
            base, roles.headers, clients, args.n, args.soak or None, args.submit_only, args.get, args.rate
        )
        tops = prof.stop() if prof else {}
        after, pg1, servers1 = roles.snapshot(), _pg_stats(db_url), _servers_cpu_s()
        what = f"GET {args.get} only" if args.get else "submit only" if args.submit_only else "submit → result"
        if args.rate:
            what += f", paced at {args.rate:,.0f}/s"
        if not api_only and (args.orchestrators, args.shards) != (1, 1):
            what += f", {args.orchestrators} orchestrator(s) over {args.shards} shard(s)"
        rows.append((f"agentbus, {clients} clients, {what}", load.line()))
        notes.append(f"load client CPU {100 * load.client_cpu:.0f} % of one core; load average {load.load_avg:.1f}")
        notes += per_job(before, after, load.done)
        dj = max(1, load.done)
        notes.append(
            "PostgreSQL per job: "
            + ", ".join(f"{(pg1[k] - pg0[k]) / dj:.1f} {k}" for k in ("commits", "inserted", "updated", "fetched"))
        )
        notes.append(
            "servers' CPU per job (local processes): "
            + ", ".join(f"{k} {1000 * (servers1[k] - servers0[k]) / dj:.2f} ms" for k in servers1)
        )
        size = {k: pg1[k] - pg0[k] for k in pg1}
        growth = {t: size[f"{t} table"] + size[f"{t} indexes"] for t in PG_TABLES}
        notes.append("PostgreSQL growth per job: " + ", ".join(f"{t} {b / dj:.0f} B" for t, b in growth.items()))
        if sampler is not None:
            notes += sampler.stop(rss0)
        for name, frames in tops.items():
            notes.append(f"profile {name}: " + "; ".join(f"{f} {p:.0f}%" for f, p in frames))
    finally:
        roles.stop()
    return rows, notes, load


class _RssSampler:
    """Resident memory of each role every 10 s (the soak)."""

    def __init__(self, roles: CountedRoles) -> None:
        self.roles = roles
        self.samples: list[tuple[float, dict[str, float]]] = []
        self._stop = threading.Event()
        self._t0 = time.monotonic()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(10):
            self.samples.append((time.monotonic() - self._t0, {n: _rss_mb(p.pid) for n, p in self.roles.procs.items()}))

    def stop(self, start: dict[str, float]) -> list[str]:
        self._stop.set()
        self._thread.join()
        if len(self.samples) < 3:
            return ["soak too short for an RSS trend"]
        warm = self.samples[max(0, len(self.samples) // 10)]  # after the first tenth
        last = self.samples[-1]
        return [
            f"RSS {n}: start {start.get(n, 0):.0f} MB, after warm-up ({warm[0]:.0f} s) {warm[1][n]:.0f} MB, "
            f"end ({last[0]:.0f} s) {last[1][n]:.0f} MB ({100 * (last[1][n] / warm[1][n] - 1):+.1f} %), "
            f"peak {max(s[1][n] for s in self.samples):.0f} MB"
            for n in last[1]
        ]


# -- baselines -----------------------------------------------------------------------------------
def _threads_load(clients: int, n: int, one: Any) -> Load:
    out = Load()
    lock = threading.Lock()
    left = [n]

    def client() -> None:
        while True:
            with lock:
                if left[0] <= 0:
                    return
                left[0] -= 1
            t0 = time.perf_counter()
            try:
                one()
                with lock:
                    out.total.append((time.perf_counter() - t0) * 1000)
                    out.done += 1
            except Exception as exc:
                with lock:
                    out.errors[type(exc).__name__] += 1

    cpu0, t0 = time.process_time(), time.perf_counter()
    threads = [threading.Thread(target=client) for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    out.seconds = time.perf_counter() - t0
    out.client_cpu = (time.process_time() - cpu0) / out.seconds
    out.load_avg = _load_avg()
    return out


def celery_jobs(url: str, clients: int, n: int) -> Load:
    redis.Redis.from_url(url).flushdb()
    workers = _Workers("celery")
    try:
        for i in range(2):
            workers.start(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "bench._io_celery",
                    "worker",
                    "--pool",
                    "solo",
                    "--loglevel",
                    "WARNING",
                    "-n",
                    f"jobs{i}@%h",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                ],
                {**baseline_env(), "BENCH_IO_REDIS": url},
            )
        os.environ["BENCH_IO_REDIS"] = url
        from bench._io_celery import app

        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=1.0) or []) < 2:
            workers.check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError("the Celery workers did not come up")

        # An AsyncResult freed by the cycle collector inside the result consumer's pub/sub call
        # re-enters it from __del__ and deadlocks the client (seen: the run hung for good), so
        # every result stays referenced until the run ends.
        kept: list[Any] = []

        def one() -> None:
            result = app.send_task("bench_io.wait", args=[0])
            kept.append(result)
            result.get(timeout=30)

        _threads_load(clients, min(200, n), one)  # warm up
        return _threads_load(clients, n, one)
    finally:
        workers.stop()


def arq_jobs(url: str, clients: int, n: int) -> Load:
    redis.Redis.from_url(url).flushdb()
    workers = _Workers("arq")
    arq = str(Path(sys.executable).parent / "arq")
    try:
        for _ in range(2):
            workers.start([arq, "bench._io_arq.WorkerSettings"], {**baseline_env(), "BENCH_IO_REDIS": url})
        from arq.connections import RedisSettings, create_pool

        async def go(count: int) -> Load:
            pool = await create_pool(RedisSettings.from_dsn(url))
            out = Load()
            left = [count]

            async def client() -> None:
                while left[0] > 0:
                    left[0] -= 1
                    t0 = time.perf_counter()
                    try:
                        job = await pool.enqueue_job("wait", 0)
                        assert job is not None
                        await job.result(timeout=30, poll_delay=0.005)
                        out.total.append((time.perf_counter() - t0) * 1000)
                        out.done += 1
                    except Exception as exc:
                        out.errors[type(exc).__name__] += 1

            cpu0, t0 = time.process_time(), time.perf_counter()
            await asyncio.gather(*(client() for _ in range(clients)))
            out.seconds = time.perf_counter() - t0
            out.client_cpu = (time.process_time() - cpu0) / out.seconds
            out.load_avg = _load_avg()
            await pool.aclose()
            return out

        time.sleep(2)  # the workers connect
        asyncio.run(go(min(200, n)))
        return asyncio.run(go(n))
    finally:
        workers.stop()


def rq_jobs(url: str, clients: int, n: int) -> Load:
    from rq import Queue
    from rq.job import JobStatus
    from rq.serializers import JSONSerializer

    conn = redis.Redis.from_url(url)
    conn.flushdb()
    name = f"agentbus-bench-jobs-{uuid.uuid4().hex[:6]}"
    workers = _Workers("rq")
    try:
        for i in range(2):
            workers.start(
                [
                    sys.executable,
                    "-m",
                    "rq.cli",
                    "worker",
                    "--url",
                    url,
                    "--worker-class",
                    "rq.worker.SimpleWorker",
                    "--serializer",
                    "rq.serializers.JSONSerializer",
                    "--logging_level",
                    "WARNING",
                    "--name",
                    f"{name}-w{i}",
                    "--path",
                    str(ROOT),
                    name,
                ],
                baseline_env(),
            )
        time.sleep(2)
        q = Queue(name, connection=conn, serializer=JSONSerializer)

        def one() -> None:
            job = q.enqueue("bench._baselines.noop", result_ttl=600)
            while True:
                status = job.get_status(refresh=True)
                if status == JobStatus.FINISHED:
                    return
                if status == JobStatus.FAILED:
                    raise RuntimeError("rq job failed")
                time.sleep(0.005)

        _threads_load(clients, min(200, n), one)
        return _threads_load(clients, n, one)
    finally:
        workers.stop()
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--n", type=int, default=5000)
    ap.add_argument("--submit-only", action="store_true")
    ap.add_argument("--get", default="", help="API alone, 50 clients GET this path (per job = per request)")
    ap.add_argument("--one", action="store_true", help="one client, one job at a time")
    ap.add_argument(
        "--rate",
        type=float,
        default=0.0,
        help="offer this many jobs/s, spread over the clients (each timed from when it was due); 0: flat out",
    )
    ap.add_argument("--soak", type=float, default=0.0, help="run for this many seconds instead of --n jobs")
    ap.add_argument(
        "--async-commit",
        action="store_true",
        help="the opt-in faster durability mode: synchronous_commit=off in the roles' database URL",
    )
    ap.add_argument("--profile", default="", help="directory for py-spy's collapsed stacks of each role")
    ap.add_argument("--tag", default="run", help="prefix of the profile files")
    ap.add_argument(
        "--pg-admin-url", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--redis-url", default=os.environ.get("AGENTBUS_TEST_REDIS", "redis://127.0.0.1:6379/14"))
    ap.add_argument("--port", type=int, default=8767)
    ap.add_argument("--orchestrators", type=int, default=1, help="orchestrators sharing --shards (docs/scaling.md)")
    ap.add_argument("--shards", type=int, default=1, help="control-stream shards (AGENTBUS_SHARDS) of every role")
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()

    rows, notes, ours = agentbus_run(args)
    if not (args.skip_baselines or args.submit_only or args.get or args.soak or args.one):
        for label, fn in (
            ("Celery, 2 solo workers, Redis results, send_task().get()", celery_jobs),
            ("arq, 2 workers, enqueue_job + result()", arq_jobs),
            ("raw RQ, 2 SimpleWorkers, enqueue + poll status", rq_jobs),
        ):
            try:
                r = fn(args.redis_url, args.clients, args.n)
                rows.append((f"{label}, {args.clients} clients", r.line()))
                rows.append((f"agentbus ÷ {label.split(',')[0]}", f"{ours.rate / r.rate:.2f}x"))
                notes.append(f"{label.split(',')[0]}: client CPU {100 * r.client_cpu:.0f} %, load avg {r.load_avg:.1f}")
            except Exception as exc:  # a baseline that cannot run is reported, not hidden
                rows.append((label, f"not measured: {exc}"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure'.ljust(width)} | result")
    print("-" * width + "-+-" + "-" * 40)
    for k, v in rows:
        print(f"{k.ljust(width)} | {v}")
    print()
    for line in notes:
        print("-", line)
    if args.write_docs:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        table = "| measure | result |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        cmd = " ".join(["python -m bench.jobs", *sys.argv[1:]])
        # not the hand-written "Many jobs at once (bench/jobs.py)" section, which holds the profile story
        title = "Many jobs at once: latest run" + (" — " + args.tag if args.tag != "run" else "")
        path = write_section(
            title,
            f"`{cmd}` on {machine}, {time.strftime('%Y-%m-%d %H:%M')}; PostgreSQL, "
            f"Redis, every role and the load client on the same machine.\n\n{table}\n\n"
            + "\n".join(f"- {n}" for n in notes)
            + "\n",
        )
        print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
