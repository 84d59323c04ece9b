"""What metrics (and traces) cost: bench/throughput.py's (a) with them off and on, in one run.

    python -m bench.observability_cost [--tasks 5000] [--workers 2] [--rounds 2] [--tracing] [--write-docs]

"off" starts every role with ``--metrics-port 0`` (nothing recorded, nothing served); "metrics"
gives each role a metrics port and scrapes them all once a second while the job runs (a scraper
far busier than Prometheus' 15 s); with ``--tracing``, "metrics+tracing" also traces every job
and call (``AGENTBUS_TRACING=console``: batched, written to each role's log). Each round starts
fresh roles for each mode, each mode leading a round in turn, so that drift on a shared machine
falls on all.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import threading
import time
import uuid
from pathlib import Path

import httpx
import redis

from bench._docs import write_section
from bench._roles import Roles, fresh_database
from bench.throughput import run_job

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def measure(env: dict[str, str], tasks: int, workers: int, port: int, mode: str) -> tuple[float, int]:
    """tasks/s of one map agent over ``tasks`` no-ops, and how many scrapes answered meanwhile."""
    metrics = mode != "off"
    env = {**env, "AGENTBUS_TRACING": "console" if mode == "metrics+tracing" else ""}
    roles = Roles(env, ROOT / ".agentbus" / "bench-logs" / uuid.uuid4().hex[:6])
    ports = [free_port() if metrics else 0 for _ in range(workers + 2)]
    stop = threading.Event()
    scrapes = 0

    def scrape() -> None:
        nonlocal scrapes
        while not stop.wait(1.0):
            for p in ports:
                try:
                    httpx.get(f"http://127.0.0.1:{p}/metrics", timeout=2).raise_for_status()
                    scrapes += 1
                except httpx.HTTPError:
                    pass

    try:
        roles.start("orchestrator", "--role", "orchestrator", "--metrics-port", str(ports[0]))
        for i in range(workers):
            roles.start(
                f"worker{i}", "--role", "worker-cpu", "--name", f"obs-w{i}", "--metrics-port", str(ports[i + 2])
            )
        roles.start("api", "--role", "api", "--port", str(port), "--metrics-port", str(ports[1]))
        _wait_api(port)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60, headers=roles.headers) as http:
            run_job(http, "map_reduce", {"n": 50}, 0.01)  # warm up every role
            scraper = threading.Thread(target=scrape, daemon=True)
            if metrics:
                scraper.start()
            elapsed, result = run_job(http, "noop_map", {"n": tasks}, 0)
            stop.set()
            assert result == tasks
    finally:
        stop.set()
        roles.stop()
    return tasks / elapsed, scrapes


def _wait_api(port: int) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise RuntimeError("the API did not become ready")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tasks", type=int, default=5000)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument(
        "--pg-admin-url", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--redis-url", default=os.environ.get("AGENTBUS_TEST_REDIS", "redis://127.0.0.1:6379/13"))
    ap.add_argument("--port", type=int, default=8766)
    ap.add_argument("--tracing", action="store_true", help="also a third mode: metrics and tracing on")
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()

    env = {
        **os.environ,
        "AGENTBUS_REDIS_URL": args.redis_url,
        "AGENTBUS_APP": "agentbus.examples:app",
        "AGENTBUS_RATE_READ": "100000/s:100000",
        "AGENTBUS_RATE_WRITE": "100000/s:100000",
    }
    modes = ["off", "metrics", "metrics+tracing"] if args.tracing else ["off", "metrics"]
    results: dict[str, list[float]] = {m: [] for m in modes}
    for r in range(args.rounds):
        for mode in modes[r % len(modes) :] + modes[: r % len(modes)]:  # each mode leads a round in turn
            redis.Redis.from_url(args.redis_url).flushdb()
            env["AGENTBUS_DATABASE_URL"] = fresh_database(args.pg_admin_url, "agentbus_bench_obs")
            rate, scrapes = measure(env, args.tasks, args.workers, args.port, mode)
            results[mode].append(rate)
            print(f"round {r + 1}, {mode}: {rate:,.0f} tasks/s ({scrapes} scrapes)")
    off = statistics.median(results["off"])
    rows = [
        (f"metrics off: map agent over {args.tasks:,} no-op tasks (median of {args.rounds})", f"{off:,.0f} tasks/s")
    ]
    for mode, label in (
        ("metrics", "metrics on, every role scraped once a second"),
        ("metrics+tracing", "metrics and tracing on (console exporter, batched)"),
    ):
        if mode in results:
            on = statistics.median(results[mode])
            rows.append((label, f"{on:,.0f} tasks/s, {(off - on) / off * 100:.1f} % lost"))
    width = max(len(k) for k, _ in rows)
    print()
    for k, v in rows:
        print(f"{k.ljust(width)} | {v}")
    if args.write_docs:
        machine = f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"
        cmd = f"python -m bench.observability_cost --tasks {args.tasks} --workers {args.workers} --rounds {args.rounds}"
        cmd += " --tracing" if args.tracing else ""
        table = "| measure | result |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        path = write_section(
            "What metrics cost",
            f"`{cmd}` on {machine}, {time.strftime('%Y-%m-%d')}.\n\n{table}\n\n{__doc__.split(chr(10) * 2, 2)[2]}",
        )
        print(f"\nwritten to {path}")


if __name__ == "__main__":
    main()
