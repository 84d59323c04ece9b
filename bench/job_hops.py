"""Where one job's milliseconds go, hop by hop, from the rows a ``bench.jobs`` run left behind.

    python -m bench.jobs --one --n 300 --skip-baselines && python -m bench.job_hops [--last 300]

Each role stamps its writes with its own ``time.time()`` (one machine, one clock), so a one-task
job's path reads off ``ab_jobs`` and ``ab_steps``:

* submit → step recorded: the API's insert and commit, the control-stream entry, the
  orchestrator's read, replay and the transaction that records the step;
* → call started: that commit, the dispatch through RQ, the worker's take and ``mark_running``;
* → outcome written: the task itself, the hand-over to the outcome writer, its statement;
* → job done: the worker's commit, its ``job.advance`` entry, the orchestrator's read, replay and record.

The rest, job done → the client's answer, is the notice, the long-poll's wake-up and read, and
the response: ``bench.jobs`` prints the client's submit→result, and the difference is that hop.
"""

from __future__ import annotations

import argparse
import os

import psycopg2


def pct(values: list[float], q: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, round(q / 100 * (len(s) - 1)))] if s else float("nan")


HOPS = (
    ("submit → step recorded (API, stream, orchestrator replay 1)", 1, 0),
    ("step recorded → call started (dispatch, RQ, worker takes it)", 2, 1),
    ("call started → outcome written (task, outcome writer)", 3, 2),
    ("outcome written → job done (notify orchestrator, replay 2)", 4, 3),
    ("submit → job done (in the rows)", 4, 0),
)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--port", type=int, default=8767, help="the bench.jobs run's --port (its database)")
    ap.add_argument("--last", type=int, default=300, help="the last N jobs")
    ap.add_argument(
        "--pg-admin-url", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    args = ap.parse_args()
    url = args.pg_admin_url.rsplit("/", 1)[0] + f"/agentbus_bench_jobs_{args.port}"
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(
            """SELECT j.created_at, s.created_at, s.started_at, s.finished_at, j.finished_at
                 FROM ab_jobs j JOIN ab_steps s ON s.job_id = j.id AND s.kind = 'task'
                WHERE j.finished_at IS NOT NULL AND s.started_at IS NOT NULL
                ORDER BY j.created_at DESC LIMIT %s""",
            (args.last,),
        )
        rows = cur.fetchall()
    print(f"{len(rows)} jobs, ms: p50 / p90 / p99")
    for label, b, a in HOPS:
        d = [1000 * (r[b] - r[a]) for r in rows]
        print(f"  {label:62s} {pct(d, 50):7.2f} / {pct(d, 90):7.2f} / {pct(d, 99):7.2f}")


if __name__ == "__main__":
    main()
