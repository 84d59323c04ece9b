"""Streamed output latency: ``ctx.emit`` in a task → a ``task.output`` event at an SSE client.

    python -m bench.emit [--redis-url redis://127.0.0.1:6379/14] [--jobs 20] [--tokens 100] [--write-docs]

Starts the roles (API, orchestrator, 2 CPU workers), submits ``--jobs`` jobs of the example
task ``chatter`` (an ``async def`` task that emits ``--tokens`` tokens ``--every`` seconds
apart after a short delay) and follows every job's ``GET /jobs/{id}/events`` at once from one
asyncio client. An output's latency is the time it reached the client minus the time the
task emitted it (its ``at``: both clocks are this machine's). Target (issue 11): p50 ≤ 50 ms
at 20 concurrent streaming jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import statistics
import time
import uuid
from pathlib import Path

import httpx
import redis

from agentbus.client import AsyncClient
from bench._docs import write_section
from bench._roles import Roles, fresh_database

ROOT = Path(__file__).resolve().parent.parent


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def follow(client: AsyncClient, job_id: str, latencies: list[float]) -> int:
    got = 0
    async for event in client.events(job_id, timeout=120):
        if event.event == "task.output":
            latencies.append(time.time() - float(event.data["at"]))
            got += 1
    return got


async def measure(url: str, key: str, jobs: int, tokens: int, every: float) -> tuple[list[float], int]:
    latencies: list[float] = []
    async with AsyncClient(url, api_key=key, timeout=60) as client:
        warm = await client.submit("chatter", {"n": 5, "every": 0.01})  # every role warm, a stream open once
        await follow(client, warm["id"], [])
        submitted = [await client.submit("chatter", {"n": tokens, "every": every, "delay": 1.0}) for _ in range(jobs)]
        # the streams open during the tasks' delay: every output is measured live, not from the buffer
        counts = await asyncio.gather(*(follow(client, j["id"], latencies) for j in submitted))
    return latencies, sum(counts)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--pg-admin-url", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--redis-url", default=os.environ.get("AGENTBUS_TEST_REDIS", "redis://127.0.0.1:6379/14"))
    ap.add_argument("--port", type=int, default=8767)
    ap.add_argument("--jobs", type=int, default=20)
    ap.add_argument("--tokens", type=int, default=100)
    ap.add_argument("--every", type=float, default=0.02)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()

    redis.Redis.from_url(args.redis_url).flushdb()
    db_url = fresh_database(args.pg_admin_url, "agentbus_bench_emit")
    env = {
        **os.environ,
        "AGENTBUS_DATABASE_URL": db_url,
        "AGENTBUS_REDIS_URL": args.redis_url,
        "AGENTBUS_APP": "agentbus.examples:app",
        "AGENTBUS_RATE_READ": "100000/s:100000",
        "AGENTBUS_RATE_WRITE": "100000/s:100000",
    }
    roles = Roles(env, ROOT / ".agentbus" / "bench-logs" / f"emit-{uuid.uuid4().hex[:6]}")
    try:
        roles.start("orchestrator", "--role", "orchestrator")
        for i in range(2):
            roles.start(f"worker{i}", "--role", "worker-cpu", "--name", f"emit-w{i}")
        roles.api(args.port)
        url = f"http://127.0.0.1:{args.port}"
        httpx.get(f"{url}/readyz", timeout=5).raise_for_status()
        latencies, received = asyncio.run(measure(url, roles.key, args.jobs, args.tokens, args.every))
    finally:
        roles.stop()

    expected = args.jobs * args.tokens
    ms = [v * 1000 for v in latencies]
    row = (
        f"{args.jobs} concurrent streaming jobs x {args.tokens} tokens ({args.every * 1000:g} ms apart)",
        f"p50 {statistics.median(ms):.1f} ms (target ≤ 50 ms), p90 {pct(ms, 0.9):.1f} ms, "
        f"p99 {pct(ms, 0.99):.1f} ms, max {max(ms):.1f} ms; {received:,} of {expected:,} outputs received",
    )
    print(f"\nctx.emit → SSE client latency\n{row[0]}: {row[1]}")
    if args.write_docs:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        path = write_section(
            "Streamed output (bench/emit.py)",
            f"`python -m bench.emit` on {machine}; PostgreSQL, Redis and every role local (API, "
            f"orchestrator, 2 CPU workers), {time.strftime('%Y-%m-%d')}. Latency: an output's arrival "
            "at the SSE client minus its `ctx.emit` in the task (one machine, one clock).\n\n"
            f"| measure | result |\n|---|---|\n| {row[0]} | {row[1]} |\n",
        )
        print(f"written to {path}")


if __name__ == "__main__":
    main()
