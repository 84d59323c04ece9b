"""What one job costs each role: CPU time, PostgreSQL statements and Redis round trips.

    python -m bench.costs [--jobs 200] [--fanout 2000] [--idle 5] [--write-docs]

Starts the API, one orchestrator and one CPU worker as processes on a fresh PostgreSQL database
and a Redis database, with ``bench/_counting`` on PYTHONPATH: its ``sitecustomize`` counts, in each
role, every statement sent to PostgreSQL (a psycopg2 ``execute``/``executemany``) and every Redis
round trip (one send: a pipeline is one), and the process's CPU time. Then it measures
(1) idle: nothing submitted for ``--idle`` seconds (the polling every role does anyway);
(2) ``--jobs`` one-task jobs (``echo``), one after another, submitted and long-polled over HTTP;
(3) one map job over ``--fanout`` no-op tasks.
Each figure is the role's counter difference over the phase minus the idle rate times the phase's
duration, divided by jobs (or tasks). Polling is not free and not per job: the idle line says what
it is.
"""

from __future__ import annotations

import argparse
import json
import os
import time
import uuid
from pathlib import Path

import httpx
import redis

from bench._docs import write_section
from bench._roles import Roles, fresh_database
from bench.throughput import run_job

ROOT = Path(__file__).resolve().parent.parent
ROLES = ("api", "orchestrator", "worker-cpu")
KEYS = ("cpu_s", "pg_statements", "redis_round_trips")


def snapshot(folder: Path) -> dict[str, dict[str, float]]:
    """Sum over each role's processes (read twice 0.3 s apart would be steadier; the dump is every 0.2 s)."""
    time.sleep(0.5)  # let every process write a fresh dump
    out = {r: dict.fromkeys(KEYS, 0.0) for r in ROLES}
    for f in folder.glob("*.json"):
        role = f.name.rsplit("-", 1)[0]
        if role in out:
            data = json.loads(f.read_text())
            for k in KEYS:
                out[role][k] += float(data[k])
    return out


def diff(a: dict[str, dict[str, float]], b: dict[str, dict[str, float]]) -> dict[str, dict[str, float]]:
    return {r: {k: b[r][k] - a[r][k] for k in KEYS} for r in ROLES}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=200)
    ap.add_argument("--fanout", type=int, default=2000)
    ap.add_argument("--idle", type=float, default=5.0)
    ap.add_argument("--pg", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--redis-url", default=os.environ.get("AGENTBUS_TEST_REDIS", "redis://127.0.0.1:6379/13"))
    ap.add_argument("--port", type=int, default=8767)
    ap.add_argument("--write-docs", action="store_true")
    a = ap.parse_args()

    redis.Redis.from_url(a.redis_url).flushdb()
    counts = ROOT / ".agentbus" / "bench-costs" / uuid.uuid4().hex[:6]
    counts.mkdir(parents=True)
    env = {
        **os.environ,
        "AGENTBUS_DATABASE_URL": fresh_database(a.pg, "agentbus_bench_costs"),
        "AGENTBUS_REDIS_URL": a.redis_url,
        "AGENTBUS_APP": "agentbus.examples:app",
        "AGENTBUS_RATE_READ": "100000/s:100000",
        "AGENTBUS_RATE_WRITE": "100000/s:100000",
        "AGENTBUS_BENCH_COUNT_DIR": str(counts),
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "bench" / "_counting"), os.environ.get("PYTHONPATH")])),
    }
    roles = Roles(env, counts / "logs")
    phases: dict[str, tuple[dict[str, dict[str, float]], float, int]] = {}
    try:
        roles.start("orchestrator", "--role", "orchestrator")
        roles.start("worker", "--role", "worker-cpu", "--name", "costs-w0")
        roles.api(a.port)
        with httpx.Client(base_url=f"http://127.0.0.1:{a.port}", timeout=60, headers=roles.headers) as http:
            run_job(http, "map_reduce", {"n": 20}, 0.01)  # warm every role up
            s0, t0 = snapshot(counts), time.monotonic()
            time.sleep(a.idle)
            s1, t1 = snapshot(counts), time.monotonic()
            phases["idle"] = (diff(s0, s1), t1 - t0, 1)
            for _ in range(a.jobs):
                run_job(http, "echo", {"message": "x"}, 0)
            s2, t2 = snapshot(counts), time.monotonic()
            phases["job"] = (diff(s1, s2), t2 - t1, a.jobs)
            run_job(http, "noop_map", {"n": a.fanout}, 0)
            s3, t3 = snapshot(counts), time.monotonic()
            phases["task"] = (diff(s2, s3), t3 - t2, a.fanout)
    finally:
        roles.stop()

    idle, idle_s, _ = phases["idle"]
    rate = {r: {k: idle[r][k] / idle_s for k in KEYS} for r in ROLES}
    rows = []
    for r in ROLES:
        rows.append((f"{r}, idle (per second)", *(f"{rate[r][k] * (1000 if k == 'cpu_s' else 1):.1f}" for k in KEYS)))
    for label, phase in (("per one-task job", "job"), (f"per task of a {a.fanout:,}-task map", "task")):
        d, secs, n = phases[phase]
        for r in ROLES:
            net = {k: max(0.0, d[r][k] - rate[r][k] * secs) / n for k in KEYS}
            rows.append(
                (
                    f"{r}, {label}",
                    f"{net['cpu_s'] * 1000:.2f}",
                    f"{net['pg_statements']:.2f}",
                    f"{net['redis_round_trips']:.2f}",
                )
            )
    header = "| role, what | CPU ms | PostgreSQL statements | Redis round trips |\n|---|---:|---:|---:|\n"
    table = header + "\n".join(f"| {' | '.join(row)} |" for row in rows)
    print(table)
    if a.write_docs:
        body = (
            f"`python -m bench.costs --jobs {a.jobs} --fanout {a.fanout} --idle {a.idle:g}`, local PostgreSQL and "
            f"Redis, one API, one orchestrator, one CPU worker, {time.strftime('%Y-%m-%d')}.\n\n{table}\n\n"
            "Counted inside each role (bench/_counting/sitecustomize.py): a PostgreSQL statement is one psycopg2 "
            "`execute`/`executemany` (BEGIN and COMMIT included); a Redis round trip is one send (a pipeline is one, "
            "a blocking read that times out is one). Per-job lines have the idle polling over the same time "
            "taken out, so they are the cost a job adds; on a busy system the polling is shared by many jobs. "
            "Single run on a shared 2-core VM: CPU figures move ±20 % between runs."
        )
        print(f"wrote {write_section('Cost per job and per task', body)}")


if __name__ == "__main__":
    main()
