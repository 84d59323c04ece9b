"""Retention at scale: purge ~1M rows of old finished jobs and steps, in batches, while a writer keeps writing.

    python -m bench.retention [--jobs 200000] [--steps 4] [--batch 1000] [--write-docs]

Fills a fresh PostgreSQL database with bulk SQL (``generate_series``): ``--jobs`` finished jobs,
90 % of them finished 40 days ago and 10 % yesterday, each with ``--steps`` steps and one event
(200,000 jobs x (1 + 4 steps) = 1,000,000 job and step rows, plus 200,000 events). Then runs the
purge the orchestrator runs (``Retention.purge_batch`` until nothing is left, 30-day retention)
while another thread writes to the jobs table every 10 ms, as the API and the orchestrator do.
Prints the purge's duration, rows per second, the slowest batch, and the writer's worst latency:
the measure of "no long locks".
"""

from __future__ import annotations

import argparse
import os
import statistics
import threading
import time

import psycopg2

from bench._docs import write_section
from bench._roles import fresh_database

DAY = 86_400.0


def fill(url: str, jobs: int, steps: int) -> None:
    old = jobs * 9 // 10
    conn = psycopg2.connect(url)
    conn.autocommit = True
    with conn.cursor() as cur:
        # epoch seconds, as the store writes them; job g finished 40 days ago if g <= old, else yesterday
        finished = f"extract(epoch from now()) - CASE WHEN g <= {old} THEN 40 ELSE 1 END * {DAY}"
        cur.execute(
            "INSERT INTO ab_jobs (id, type, state, input, result, priority, created_at, started_at, finished_at,"
            " updated_at, tenant) "
            f"SELECT 'job-' || g, 'bench', 'succeeded', '{{}}', '1', 0, f - 60, f - 60, f, f, 'default' "
            f"FROM (SELECT g, {finished} AS f FROM generate_series(1, %s) g) x",
            (jobs,),
        )
        cur.execute(
            "INSERT INTO ab_steps (id, job_id, seq, kind, name, args, state, result, attempt, retries, backoff,"
            " created_at, started_at, finished_at, updated_at, priority, queue) "
            "SELECT j.id || '-' || s, j.id, s, 'task', 'noop', '{}', 'succeeded', '1', 1, 0, 0.5,"
            " j.created_at, j.started_at, j.finished_at, j.finished_at, 0, 'cpu' "
            "FROM ab_jobs j, generate_series(0, %s - 1) s",
            (steps,),
        )
        cur.execute(
            "INSERT INTO ab_job_events (job_id, at, kind, data) "
            "SELECT id, finished_at, 'job', '{\"status\": \"succeeded\"}' FROM ab_jobs"
        )
        cur.execute("VACUUM ANALYZE")
    conn.close()


class Writer(threading.Thread):
    """Writes a row every 10 ms (a new job, then its update) and keeps each write's latency."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.stop = threading.Event()
        self.latencies: list[float] = []

    def run(self) -> None:
        conn = psycopg2.connect(self.url)
        conn.autocommit = True
        i = 0
        with conn.cursor() as cur:
            while not self.stop.wait(0.01):
                i += 1
                now = time.time()
                t0 = time.perf_counter()
                cur.execute(
                    "INSERT INTO ab_jobs (id, type, state, input, priority, created_at, updated_at, tenant) "
                    "VALUES (%s, 'live', 'running', '{}', 0, %s, %s, 'default')",
                    (f"live-{i}", now, now),
                )
                cur.execute("UPDATE ab_jobs SET updated_at = %s WHERE id = %s", (now, f"live-{i}"))
                self.latencies.append(time.perf_counter() - t0)
        conn.close()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--jobs", type=int, default=200_000)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--pg", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres"))
    ap.add_argument("--write-docs", action="store_true")
    a = ap.parse_args()

    from agentbus.domain.retention import cutoff
    from agentbus.store import PurgeCounts, Repositories, Retention

    url = fresh_database(a.pg, "agentbus_bench_retention")
    store = Repositories.from_url(url)
    store.migrate()
    t0 = time.perf_counter()
    fill(url, a.jobs, a.steps)
    filled = time.perf_counter() - t0
    rows = a.jobs * (1 + a.steps)
    print(f"filled {a.jobs:,} jobs + {a.jobs * a.steps:,} steps ({rows:,} rows) + {a.jobs:,} events in {filled:.1f} s")

    retention = Retention(store.db)
    now = time.time()
    before = cutoff(now, 30 * DAY)
    expected = retention.count(before, now)
    print(f"to purge (dry run): {expected}")

    writer = Writer(url)
    writer.start()
    total = PurgeCounts()
    batches: list[float] = []
    t0 = time.perf_counter()
    while True:
        b0 = time.perf_counter()
        got = retention.purge_batch(before, now, a.batch)
        batches.append(time.perf_counter() - b0)
        total += got
        if got.jobs < a.batch:
            break
    took = time.perf_counter() - t0
    writer.stop.set()
    writer.join()
    left = retention.count(before, now)
    store.close()

    purged_rows = total.jobs + total.steps + total.events
    lat = sorted(writer.latencies)
    p99 = lat[int(len(lat) * 0.99)] * 1000 if lat else 0.0
    lines = [
        ("rows filled (jobs + steps; plus one event per job)", f"{rows:,} (+{a.jobs:,}) in {filled:.1f} s"),
        ("deleted", f"{total.jobs:,} jobs, {total.steps:,} steps, {total.events:,} events"),
        ("purge, batches of " + f"{a.batch:,} jobs", f"{took:.1f} s, {purged_rows / took:,.0f} rows/s"),
        (
            "one batch (jobs + their steps and events, each table in transactions of ≤ batch rows)",
            f"median {statistics.median(batches) * 1000:.0f} ms, max {max(batches) * 1000:.0f} ms",
        ),
        (
            "a concurrent writer (INSERT + UPDATE on ab_jobs every 10 ms)",
            f"{len(lat)} writes, p50 {statistics.median(lat) * 1000:.1f} ms, p99 {p99:.1f} ms,"
            f" max {lat[-1] * 1000:.1f} ms"
            if lat
            else "no writes",
        ),
        ("left after the purge (should be 0)", f"{left.jobs} jobs"),
    ]
    for k, v in lines:
        print(f"{k}: {v}")
    if a.write_docs:
        body = (
            f"`python -m bench.retention --jobs {a.jobs} --steps {a.steps} --batch {a.batch}`, local PostgreSQL, "
            f"{time.strftime('%Y-%m-%d')}.\n\n| measure | result |\n|---|---|\n"
            + "\n".join(f"| {k} | {v} |" for k, v in lines)
            + "\n\n90 % of the jobs finished 40 days ago (deleted), 10 % yesterday (kept). The purge is what the "
            "orchestrator runs every `AGENTBUS_RETENTION_INTERVAL` (one batch per call; while batches come back "
            "full, the next one after AGENTBUS_RECONCILE_INTERVAL, 2 s); no transaction holds more than one "
            "batch of row locks, so the writer's latency is the measure of what the purge costs everyone else. "
            "Single run on a shared 2-core VM."
        )
        print(f"wrote {write_section('Retention', body)}")


if __name__ == "__main__":
    main()
