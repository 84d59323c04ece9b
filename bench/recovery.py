"""How long recovery takes with the default settings: a SIGKILLed worker, a SIGKILLed orchestrator.

    python -m bench.recovery [--write-docs]

(1) a task runs on worker A; A is SIGKILLed; seconds until the task runs again on worker B.
(2) orchestrator A holds the lease, B stands by; A is SIGKILLed; seconds until B holds the
lease, and until a job submitted right after the kill has finished.
"""

from __future__ import annotations

import argparse
import os
import time
import uuid
from pathlib import Path

import psycopg2
import redis

from agentbus.client import Client
from bench._docs import write_section
from bench._roles import Roles, fresh_database

ROOT = Path(__file__).resolve().parent.parent


def step(db_url: str, job_id: str) -> tuple[str, int, str | None, float | None] | None:
    with psycopg2.connect(db_url) as conn, conn.cursor() as cur:
        cur.execute("SELECT state, attempt, worker, started_at FROM ab_steps WHERE job_id = %s AND seq = 0", (job_id,))
        row = cur.fetchone()
    conn.close()
    return None if row is None else (row[0], row[1], row[2], row[3])


def until(check, timeout: float = 120.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = check()
        if v:
            return v
        time.sleep(0.05)
    raise RuntimeError("timed out")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--pg-admin-url", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--redis-url", default="redis://127.0.0.1:6379/12")
    ap.add_argument("--port", type=int, default=8766)
    ap.add_argument("--write-docs", action="store_true")
    args = ap.parse_args()
    conn = redis.Redis.from_url(args.redis_url)
    conn.flushdb()
    db_url = fresh_database(args.pg_admin_url, "agentbus_recovery")
    env = {**os.environ, "AGENTBUS_DATABASE_URL": db_url, "AGENTBUS_REDIS_URL": args.redis_url}
    roles = Roles(env, ROOT / ".agentbus" / "bench-logs" / f"recovery-{uuid.uuid4().hex[:6]}")
    rows = []
    try:
        roles.start("orch-a", "--role", "orchestrator", "--name", "orch-a")
        until(lambda: conn.get("agentbus:lease:orchestrator") == b"orch-a")
        roles.start("orch-b", "--role", "orchestrator", "--name", "orch-b")
        roles.start("worker-a", "--role", "worker-cpu", "--name", "worker-a")
        roles.api(args.port)
        client = Client(f"http://127.0.0.1:{args.port}", api_key=roles.key)

        job = client.submit("long_haul", {"tasks": 1, "seconds": 3})
        until(lambda: (s := step(db_url, job["id"])) is not None and s[0] == "running")
        roles.start("worker-b", "--role", "worker-cpu", "--name", "worker-b")
        time.sleep(1)
        killed = time.time()
        roles.kill("worker-a")
        rerun = until(lambda: (s := step(db_url, job["id"])) is not None and s[2] == "worker-b" and s[3] and s)
        assert client.wait(job["id"], timeout=60)["status"] == "succeeded"
        rows.append(("(1) SIGKILLed worker: its task starts again on another worker", f"{rerun[3] - killed:.1f} s"))

        killed = time.monotonic()
        roles.kill("orch-a")
        after = client.submit("echo", {"message": "after the kill"})
        until(lambda: conn.get("agentbus:lease:orchestrator") == b"orch-b")
        took_over = time.monotonic() - killed
        assert client.wait(after["id"], timeout=60)["result"] == "after the kill"
        finished = time.monotonic() - killed
        rows.append(("(2) SIGKILLed orchestrator: standby holds the lease", f"{took_over:.1f} s"))
        rows.append(("(2) ... and a job submitted after the kill has finished", f"{finished:.1f} s"))
    finally:
        roles.stop()
    for k, v in rows:
        print(f"{k:70s} {v}")
    if args.write_docs:
        table = "| measure | seconds |\n|---|---|\n" + "\n".join(f"| {k} | {v} |" for k, v in rows)
        write_section(
            "Recovery",
            "`python -m bench.recovery`, default settings (lease 10 s, worker TTL 10 s, "
            f"reconciler every 2 s), {time.strftime('%Y-%m-%d')}.\n\n{table}",
        )


if __name__ == "__main__":
    main()
