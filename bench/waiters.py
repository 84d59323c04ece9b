"""Waiting clients cost no thread: /healthz and POST /jobs latency with many long-polls and SSE streams open.

    python -m bench.waiters [--long-polls 1000] [--streams 200] [--samples 200]

One API process (no orchestrator: the jobs stay open, so every waiter waits its whole time).
First the latencies with nothing waiting, then with the waiters open. Prints p50/p99 of
GET /healthz and POST /jobs, and the API process's thread count.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
from pathlib import Path

import httpx
import redis

from bench._roles import Roles, fresh_database

ROOT = Path(__file__).resolve().parent.parent
UNLIMITED = "1000000/s:1000000"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


async def measure(base: str, headers: dict[str, str], samples: int) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {"GET /healthz": [], "POST /jobs": []}
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        for i in range(samples):
            t0 = time.perf_counter()
            r = await client.get("/healthz")
            out["GET /healthz"].append(time.perf_counter() - t0)
            assert r.status_code == 200, r.text
            t0 = time.perf_counter()
            r = await client.post("/jobs", json={"type": "echo", "input": {"message": f"m{i}"}})
            out["POST /jobs"].append(time.perf_counter() - t0)
            assert r.status_code == 201, r.text
    return out


async def open_waiter(port: int, key: str, path: str) -> asyncio.StreamWriter:
    _, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(f"GET {path} HTTP/1.1\r\nHost: api\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
    await writer.drain()
    return writer


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    return -1


def report(title: str, figures: dict[str, list[float]], threads: int) -> None:
    print(f"{title} (API threads: {threads})")
    for name, values in figures.items():
        print(f"  {name:14s} p50 {statistics.median(values) * 1000:7.2f} ms   p99 {pct(values, 0.99):7.2f} ms")


async def run(args: argparse.Namespace, roles: Roles, port: int) -> None:
    base = f"http://127.0.0.1:{port}"
    pid = roles.procs["api"].pid
    report("nothing waiting", await measure(base, roles.headers, args.samples), threads_of(pid))
    async with httpx.AsyncClient(base_url=base, headers=roles.headers, timeout=30) as client:
        jobs = [
            (await client.post("/jobs", json={"type": "echo", "input": {"message": "w"}})).json()["id"]
            for _ in range(50)
        ]
    t0 = time.perf_counter()
    writers = await asyncio.gather(
        *[open_waiter(port, roles.key, f"/jobs/{jobs[i % 50]}/results?wait=60") for i in range(args.long_polls)],
        *[open_waiter(port, roles.key, f"/jobs/{jobs[i % 50]}/events") for i in range(args.streams)],
    )
    await asyncio.sleep(2.0)  # let the server take every one in
    print(f"opened {args.long_polls} long-polls and {args.streams} SSE streams in {time.perf_counter() - t0:.1f}s")
    report("with the waiters open", await measure(base, roles.headers, args.samples), threads_of(pid))
    for w in writers:
        w.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--pg-admin-url", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--redis-url", default=os.environ.get("AGENTBUS_TEST_REDIS", "redis://127.0.0.1:6379/12"))
    ap.add_argument("--long-polls", type=int, default=1000)
    ap.add_argument("--streams", type=int, default=200)
    ap.add_argument("--samples", type=int, default=200)
    ap.add_argument("--port", type=int, default=8766)
    args = ap.parse_args()
    redis.Redis.from_url(args.redis_url).flushdb()
    db_url = fresh_database(args.pg_admin_url, "agentbus_waiters")
    env = {
        **os.environ,
        "AGENTBUS_DATABASE_URL": db_url,
        "AGENTBUS_REDIS_URL": args.redis_url,
        "AGENTBUS_RATE_READ": UNLIMITED,
        "AGENTBUS_RATE_WRITE": UNLIMITED,
    }
    roles = Roles(env, ROOT / ".agentbus" / "bench-logs" / f"waiters-{uuid.uuid4().hex[:6]}")
    try:
        roles.api(args.port)
        asyncio.run(run(args, roles, args.port))
    finally:
        roles.stop()


if __name__ == "__main__":
    main()
