"""Throughput and latency of agentbus, raw RQ and Celery on this machine, in one run.

    python -m bench.throughput [--tasks 10000] [--workers 2] [--latency-jobs 200] [--write-docs]

(a) a map agent over N no-op tasks, end to end (submit → result) with the API, one
orchestrator and W CPU workers as processes on local PostgreSQL and Redis;
(b) raw RQ with W SimpleWorker processes and (c) Celery (solo pool) with W worker
processes, on the same N no-ops; (d) one-task job latency, submit → result available,
over sequential jobs.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import redis

from bench._docs import write_section
from bench._roles import Roles, fresh_database

ROOT = Path(__file__).resolve().parent.parent


METHOD = """\
How each is timed. (a) is end to end as a client sees it: from `POST /jobs` of one map agent
to the result being available (`GET /jobs/{id}/results?wait=30`), so it includes the API, the
agent's replays, writing 10,000 steps to PostgreSQL, dispatch, execution and the final replay.
(b) and (c) time only warm workers draining a full queue (enqueue and worker start-up
excluded; done = a per-task completion record in Redis): more generous to the baselines than
(a) is to agentbus. Where agentbus gets its lead: a fan-out is dispatched as ~16 RQ jobs each
carrying a batch of calls, calls run in-process, and state changes are written in one
statement per batch (`docs/architecture.md`). (d) submits 200 one-task jobs one after another
and long-polls each result. Single runs on a shared 2-core VM: expect ±20 % between runs.
"""


def run_job(
    http: httpx.Client, type_: str, input_: dict[str, Any], poll: float, timeout: float = 600
) -> tuple[float, Any]:
    t0 = time.perf_counter()
    r = http.post("/jobs", json={"type": type_, "input": input_})
    r.raise_for_status()
    job_id = r.json()["id"]
    deadline = time.monotonic() + timeout
    while True:
        r = http.get(f"/jobs/{job_id}/results", params={"wait": 30} if poll == 0 else None)
        if r.status_code == 200:
            elapsed = time.perf_counter() - t0
            body = r.json()
            if body["status"] != "succeeded":
                raise RuntimeError(f"{type_} job ended {body}")
            return elapsed, body["result"]
        if time.monotonic() > deadline:
            raise RuntimeError(f"{type_} job did not finish in {timeout}s")
        if poll:
            time.sleep(poll)


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=10_000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--latency-jobs", type=int, default=200)
    ap.add_argument(
        "--pg-admin-url", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/13")
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--skip-baselines", action="store_true")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()

    redis.Redis.from_url(args.redis_url).flushdb()
    db_url = fresh_database(args.pg_admin_url, "agentbus_bench")
    env = {
        **os.environ,
        "AGENTBUS_DATABASE_URL": db_url,
        "AGENTBUS_REDIS_URL": args.redis_url,
        "AGENTBUS_APP": "agentbus.examples:app",
        # the limiter runs on every request, but with limits this benchmark never reaches
        "AGENTBUS_RATE_READ": "100000/s:100000",
        "AGENTBUS_RATE_WRITE": "100000/s:100000",
    }
    rows: list[tuple[str, str]] = []
    roles = Roles(env, ROOT / ".agentbus" / "bench-logs" / uuid.uuid4().hex[:6])
    try:
        roles.start("orchestrator", "--role", "orchestrator")
        for i in range(args.workers):
            roles.start(f"worker{i}", "--role", "worker-cpu", "--name", f"bench-w{i}")
        roles.api(args.port)
        with httpx.Client(base_url=f"http://127.0.0.1:{args.port}", timeout=60, headers=roles.headers) as http:
            run_job(http, "map_reduce", {"n": 50}, 0.01)  # warm up every role
            elapsed, result = run_job(http, "noop_map", {"n": args.tasks}, 0)
            assert result == args.tasks
            ours = args.tasks / elapsed
            rows.append(
                (
                    f"(a) agentbus: map agent over {args.tasks:,} no-op tasks, end to end",
                    f"{ours:,.0f} tasks/s ({elapsed:.2f} s)",
                )
            )
            # the client long-polls GET /jobs/{id}/results?wait=30: the answer comes when the job finishes
            lat = [run_job(http, "echo", {"message": "x"}, 0)[0] * 1000 for _ in range(args.latency_jobs)]
            rows.append(
                (
                    f"(d) agentbus: one-task job latency, submit → result, {args.latency_jobs} jobs",
                    f"p50 {pct(lat, 50):.1f} ms, p99 {pct(lat, 99):.1f} ms, mean {statistics.mean(lat):.1f} ms",
                )
            )
    finally:
        roles.stop()

    if not args.skip_baselines:
        from bench._baselines import measure_celery, measure_rq

        for label, fn in (
            ("(b) raw RQ, SimpleWorker", measure_rq),
            ("(c) Celery, Redis broker, solo pool", measure_celery),
        ):
            redis.Redis.from_url(args.redis_url).flushdb()
            try:
                r = fn(args.redis_url, n_tasks=args.tasks, n_workers=args.workers)
                rows.append(
                    (f"{label}: {args.tasks:,} no-op tasks", f"{r['tasks_per_s']:,.0f} tasks/s ({r['seconds']:.2f} s)")
                )
                rows.append((f"agentbus ÷ {label.split(',')[0][4:]}", f"{ours / r['tasks_per_s']:.2f}x"))
            except Exception as exc:  # a baseline that cannot run is reported, not hidden
                rows.append((label, f"not measured: {exc}"))
    width = max(len(r[0]) for r in rows)
    print(f"\n{'measure'.ljust(width)} | result")
    print("-" * width + "-+-" + "-" * 40)
    for k, v in rows:
        print(f"{k.ljust(width)} | {v}")
    if args.write_docs:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        table = "| measure | result |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        cmd = (
            f"python -m bench.throughput --tasks {args.tasks} --workers {args.workers} "
            f"--latency-jobs {args.latency_jobs}"
        )
        path = write_section(
            "Throughput and latency",
            f"`{cmd}` on {machine}; PostgreSQL, Redis and every "
            f"role local ({args.workers} CPU workers), {time.strftime('%Y-%m-%d')}.\n\n{table}\n\n{METHOD}",
        )
        print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
