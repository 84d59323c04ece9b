"""Calls that wait (agent work: model APIs, tools), agentbus beside Celery and arq, in one run.

    python -m bench.io [--redis-url redis://127.0.0.1:6379/14] [--skip-baselines] [--write-docs]

(a) 200 calls that each wait 0.5 s, ``async def`` (``await asyncio.sleep``) and sync
(``time.sleep``), over 2 worker processes with default settings: agentbus end to end (one
agent's ``ctx.map``: submit → result), Celery (threads pool, concurrency 100) and arq
(max_jobs 100) from the first enqueue to the last result; (b) 1,000 async calls that wait 1 s
on one agentbus worker started with ``--concurrency 1000`` (and arq with max_jobs 1000), with
the worker's peak resident memory. Targets (issue 11): (a) async ≤ 2 s, sync ≤ 3 s;
(b) ≤ 3 s and ≤ 300 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import redis

from bench._docs import write_section
from bench._roles import Roles, fresh_database
from bench.throughput import run_job

ROOT = Path(__file__).resolve().parent.parent
Row = tuple[str, str]


def peak_rss_mb(pid: int) -> tuple[float, float]:
    """(peak, current) resident memory of a process in MB, from /proc."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        k, _, v = line.partition(":")
        fields[k] = v.strip()
    return int(fields["VmHWM"].split()[0]) / 1024, int(fields["VmRSS"].split()[0]) / 1024


def agentbus_runs(args: argparse.Namespace) -> list[Row]:
    redis.Redis.from_url(args.redis_url).flushdb()
    db_url = fresh_database(args.pg_admin_url, "agentbus_bench_io")
    env = {
        **os.environ,
        "AGENTBUS_DATABASE_URL": db_url,
        "AGENTBUS_REDIS_URL": args.redis_url,
        "AGENTBUS_APP": "agentbus.examples:app",
        "AGENTBUS_RATE_READ": "100000/s:100000",
        "AGENTBUS_RATE_WRITE": "100000/s:100000",
    }
    rows: list[Row] = []
    roles = Roles(env, ROOT / ".agentbus" / "bench-logs" / f"io-{uuid.uuid4().hex[:6]}")
    try:
        roles.start("orchestrator", "--role", "orchestrator")
        for i in range(2):
            roles.start(f"worker{i}", "--role", "worker-cpu", "--name", f"io-w{i}")
        roles.api(args.port)
        with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=60, headers=roles.headers) as http:
            run_job(http, "map_reduce", {"n": 50}, 0.01)  # warm up every role
            for mode, target in (("async", 2.0), ("sync", 3.0)):
                elapsed, result = run_job(http, "io_map", {"n": 200, "seconds": 0.5, "mode": mode}, 0)
                assert result["n"] == 200
                rows.append(
                    (
                        f"(a) agentbus, 2 workers (default 100 slots each): 200 x 0.5 s {mode} calls",
                        f"{elapsed:.2f} s (target ≤ {target:g} s)",
                    )
                )
            for i in range(2):
                roles.kill(f"worker{i}")
            w = roles.start("big", "--role", "worker-cpu", "--name", "io-big", "--concurrency", "1000")
            run_job(http, "io_map", {"n": 100, "seconds": 0.1, "mode": "async"}, 0)  # the new worker is up
            elapsed, result = run_job(http, "io_map", {"n": 1000, "seconds": 1.0, "mode": "async"}, 0)
            assert result["n"] == 1000
            peak, now = peak_rss_mb(w.pid)
            rows.append(
                (
                    "(b) agentbus, 1 worker --concurrency 1000: 1,000 x 1 s async calls",
                    f"{elapsed:.2f} s (target ≤ 3 s); worker RSS peak {peak:.0f} MB, now {now:.0f} MB "
                    "(target ≤ 300 MB)",
                )
            )
    finally:
        roles.stop()
    return rows


class _Procs:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, argv: list[str]) -> subprocess.Popen[bytes]:
        p = subprocess.Popen(argv, cwd=ROOT, env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        return p

    def stop(self) -> None:
        for p in self.procs:
            p.terminate()
        for p in self.procs:
            try:
                p.wait(15)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()


def _env(url: str, **extra: str) -> dict[str, str]:
    env = {**os.environ, "BENCH_IO_REDIS": url, **extra}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    return env


def celery_run(url: str, n: int, seconds: float) -> float:
    redis.Redis.from_url(url).flushdb()
    procs = _Procs(_env(url))
    celery = shutil.which("celery", path=str(Path(sys.executable).parent)) or "celery"
    try:
        for i in range(2):
            argv = [celery, "-A", "bench._io_celery", "worker", "--pool", "threads", "--concurrency", "100"]
            procs.start([*argv, "--loglevel", "WARNING", "-n", f"io{i}@%h", "--without-gossip", "--without-mingle"])
        os.environ["BENCH_IO_REDIS"] = url
        from bench._io_celery import app

        deadline = time.monotonic() + 60
        while len(app.control.ping(timeout=1.0) or []) < 2:
            if time.monotonic() > deadline:
                raise RuntimeError("the Celery workers did not come up")
        [r.get(timeout=60) for r in [app.send_task("bench_io.wait", args=[0.05]) for _ in range(20)]]  # warm up
        t0 = time.perf_counter()
        results = [app.send_task("bench_io.wait", args=[seconds]) for _ in range(n)]
        for r in results:
            r.get(timeout=120)
        return time.perf_counter() - t0
    finally:
        procs.stop()


def arq_run(url: str, n: int, seconds: float, workers: int, max_jobs: int) -> tuple[float, float]:
    """(seconds, peak RSS MB of the first worker)."""
    redis.Redis.from_url(url).flushdb()
    procs = _Procs(_env(url, BENCH_IO_MAX_JOBS=str(max_jobs)))
    arq = shutil.which("arq", path=str(Path(sys.executable).parent)) or "arq"
    try:
        started = [procs.start([arq, "bench._io_arq.WorkerSettings"]) for _ in range(workers)]
        from arq.connections import RedisSettings, create_pool

        async def go() -> float:
            pool = await create_pool(RedisSettings.from_dsn(url))
            warm = [await pool.enqueue_job("wait", 0.05) for _ in range(20)]
            for j in warm:
                assert j is not None
                await j.result(timeout=60, poll_delay=0.05)
            t0 = time.perf_counter()
            jobs = [await pool.enqueue_job("wait", seconds) for _ in range(n)]
            for j in jobs:  # one after another: all run meanwhile, and one connection suffices
                assert j is not None
                await j.result(timeout=120, poll_delay=0.01)
            elapsed = time.perf_counter() - t0
            await pool.aclose()
            return elapsed

        time.sleep(2)  # the workers connect
        elapsed = asyncio.run(go())
        return elapsed, peak_rss_mb(started[0].pid)[0]
    finally:
        procs.stop()


def baseline_runs(args: argparse.Namespace) -> list[Row]:
    rows: list[Row] = []
    try:
        rows.append(
            (
                "(a) Celery, 2 workers, threads pool (100): 200 x 0.5 s sync calls",
                f"{celery_run(args.redis_url, 200, 0.5):.2f} s",
            )
        )
    except Exception as exc:  # a baseline that cannot run is reported, not hidden
        rows.append(("(a) Celery", f"not measured: {exc}"))
    try:
        elapsed, _ = arq_run(args.redis_url, 200, 0.5, workers=2, max_jobs=100)
        rows.append(("(a) arq, 2 workers, max_jobs 100: 200 x 0.5 s async calls", f"{elapsed:.2f} s"))
        elapsed, peak = arq_run(args.redis_url, 1000, 1.0, workers=1, max_jobs=1000)
        rows.append(
            (
                "(b) arq, 1 worker, max_jobs 1000: 1,000 x 1 s async calls",
                f"{elapsed:.2f} s; worker RSS peak {peak:.0f} MB",
            )
        )
    except Exception as exc:
        rows.append(("(a, b) arq", f"not measured: {exc}"))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--pg-admin-url", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/14")
    ap.add_argument("--port", type=int, default=8766)
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    rows = agentbus_runs(args)
    if not args.skip_baselines:
        rows += baseline_runs(args)
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure'.ljust(width)} | result")
    print("-" * width + "-+-" + "-" * 40)
    for k, v in rows:
        print(f"{k.ljust(width)} | {v}")
    if args.write_docs:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        table = "| measure | result |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        path = write_section(
            "Calls that wait (bench/io.py)",
            f"`python -m bench.io` on {machine}; PostgreSQL, Redis and every role local, "
            f"{time.strftime('%Y-%m-%d')}. agentbus is timed end to end (submit → result, through the API "
            f"and the orchestrator); Celery and arq from the first enqueue to the last result.\n\n{table}\n",
        )
        print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
