"""The chaos suite: break one thing at a time under load, then check that no accepted job was lost.

    python -m bench.chaos [SCENARIO ...] [--seconds 20] [--write-docs]
    nox -s chaos

Scenarios: bursts, waiters, pg-kill, redis-restart, worker-kill, orchestrator-kill, slow-clients.
Each starts its own stack (the real roles as subprocesses, through tests/e2e/_cluster.py) on a
fresh PostgreSQL database and a redis-server of its own on a free port (the shared Redis is never
touched), runs a load generator (threads submitting jobs through the API, to 127.0.0.1 only) for
``--seconds``, breaks something a few seconds in, and then checks in PostgreSQL that every accepted
job finished exactly once with the right result and that the API still answers. It prints jobs
accepted, lost, duplicated and the time to recover; the exit status is 1 if any scenario failed.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

import httpx
import psycopg2
import redis

from agentbus.store import Repositories
from bench._chaos import (
    DRAIN_S,
    ROOT,
    Cluster,
    Load,
    RedisServer,
    Stage,
    Verdict,
    check,
    count,
    latencies,
    probe,
    wait_until,
)
from bench._roles import fresh_database

DOC = ROOT / "docs" / "reliability.md"
LEAD_IN_S = 4.0
"""Seconds of load before the fault, so that it hits jobs in every state."""


# -- the faults ----------------------------------------------------------------------------------
def burst(url: str, key: str, path: str, n: int = 100) -> Counter[str]:
    """``n`` concurrent GETs; how they were answered."""
    codes: Counter[str] = Counter()
    lock = threading.Lock()

    def get() -> None:
        try:
            code = str(httpx.get(url + path, headers={"Authorization": f"Bearer {key}"}, timeout=15).status_code)
        except httpx.HTTPError as exc:
            code = type(exc).__name__
        with lock:
            codes[code] += 1

    threads = [threading.Thread(target=get, daemon=True) for _ in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    return codes


def bursts(stage: Stage) -> None:
    """Two bursts of 100 concurrent GETs, 11.5 s apart (past the idle time after which threads retire)."""
    url, key = stage.cluster.env["AGENTBUS_API_URL"], stage.key
    own = httpx.post(
        f"{url}/jobs",
        json={"type": "echo", "input": {"message": "burst"}},
        headers={"Authorization": f"Bearer {key}"},
        timeout=10,
    )
    for b in range(2):
        codes = burst(url, key, f"/jobs/{own.json()['id']}")
        stage.notes.append(f"burst {b + 1}: " + ", ".join(f"{n}x {c}" for c, n in codes.most_common()))
        if b == 0:
            time.sleep(11.5)


def waiters(stage: Stage) -> None:
    """100 long-polls (?wait=30) and 50 SSE streams on an unfinished job, held for 12 s."""
    url, key = stage.cluster.env["AGENTBUS_API_URL"], stage.key
    headers = {"Authorization": f"Bearer {key}"}
    slow = httpx.post(f"{url}/jobs", json={"type": "slow", "input": {"seconds": 30}}, headers=headers, timeout=10)
    job_id = slow.json()["id"]
    done = threading.Event()
    outcomes: Counter[str] = Counter()
    lock = threading.Lock()

    def long_poll() -> None:
        try:
            code = str(
                httpx.get(f"{url}/jobs/{job_id}/results", params={"wait": 30}, headers=headers, timeout=40).status_code
            )
        except httpx.HTTPError as exc:
            code = type(exc).__name__
        with lock:
            outcomes[f"long-poll {code}"] += 1

    def sse() -> None:
        try:
            with (
                httpx.Client(timeout=httpx.Timeout(5, read=40)) as c,
                c.stream("GET", f"{url}/jobs/{job_id}/events", headers=headers) as resp,
            ):
                for _ in resp.iter_lines():
                    if done.is_set():
                        break
                what = f"sse {resp.status_code}"
        except httpx.HTTPError as exc:
            what = f"sse {type(exc).__name__}"
        with lock:
            outcomes[what] += 1

    threads = [threading.Thread(target=long_poll, daemon=True) for _ in range(100)]
    threads += [threading.Thread(target=sse, daemon=True) for _ in range(50)]
    for th in threads:
        th.start()
    stage.notes.append(latencies(stage.http, 12))
    done.set()
    try:
        httpx.post(f"{url}/jobs/{job_id}/cancel", headers=headers, timeout=10)
    except httpx.HTTPError as exc:
        stage.notes.append(f"cancelling the waited-on job: {type(exc).__name__}")
    for th in threads:
        th.join(45)
    stage.notes.append("waiters: " + ", ".join(f"{n}x {c}" for c, n in outcomes.most_common()))


def pg_kill(stage: Stage) -> None:
    """Terminate every PostgreSQL connection of the stack, twice, 4 s apart."""
    for i in range(2):
        with psycopg2.connect(stage.admin_url) as conn, conn.cursor() as cur:
            cur.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (stage.db_name,),
            )
            row = cur.fetchone()
        conn.close()
        stage.notes.append(f"kill {i + 1}: {row[0] if row else 0} connections terminated")
        if i == 0:
            time.sleep(4)


def redis_restart(stage: Stage) -> None:
    """SIGKILL the stack's redis-server (no persistence: every message in it is lost), restart it 3 s later."""
    stage.redis.kill()
    time.sleep(3)
    stage.redis.start()
    stage.notes.append(f"redis-server on port {stage.redis.port} down 3 s, restarted empty")


def worker_kill(stage: Stage) -> None:
    """SIGKILL a worker with calls running; a replacement starts 2 s later, as a supervisor would."""

    def busy() -> int:
        return count(stage.db_url, "SELECT count(*) FROM ab_steps WHERE state = 'running' AND worker = 'w1'")

    deadline = time.monotonic() + 5
    while (running := busy()) == 0 and time.monotonic() < deadline:
        time.sleep(0.05)
    stage.cluster.kill("w1")
    stage.notes.append(f"w1 SIGKILLed with {running} calls running")
    time.sleep(2)
    stage.cluster.worker("w3")


def orchestrator_kill(stage: Stage) -> None:
    """SIGKILL the active orchestrator; the standby takes the lease."""
    stage.cluster.kill("orch-a")
    conn = redis.Redis.from_url(stage.redis.url)
    t0 = time.monotonic()
    try:
        wait_until(lambda: conn.get("agentbus:lease:orchestrator") == b"orch-b", 30, "the standby to take over")
        stage.notes.append(f"orch-a SIGKILLed; orch-b held the lease {time.monotonic() - t0:.1f} s later")
    except AssertionError:
        stage.notes.append("orch-a SIGKILLed; orch-b did not take the lease within 30 s")
    conn.close()


def slow_clients(stage: Stage) -> None:
    """100 sockets sending their headers a byte a second, 20 reading a response a little at a time, 12 s."""
    port = int(stage.cluster.port)
    key = stage.load.key  # its tenant has the load's jobs: a response long enough to be read slowly
    socks: list[socket.socket] = []
    for _ in range(100):
        s = socket.create_connection(("127.0.0.1", port), timeout=5)
        s.sendall(b"GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        socks.append(s)
    readers: list[socket.socket] = []
    for _ in range(20):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1024)
        s.settimeout(5)
        s.connect(("127.0.0.1", port))
        s.sendall(f"GET /jobs?limit=200 HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {key}\r\n\r\n".encode())
        readers.append(s)
    stop = threading.Event()

    def drip() -> None:
        while not stop.wait(1.0):
            for s in socks:
                try:
                    s.sendall(b"X")
                except OSError:
                    continue
            for s in readers:
                try:
                    s.recv(64)
                except OSError:
                    continue

    th = threading.Thread(target=drip, daemon=True)
    th.start()
    stage.notes.append(latencies(stage.http, 12))
    stop.set()
    th.join()

    def closed(s: socket.socket) -> bool:
        try:
            s.settimeout(0.01)
            return s.recv(1) == b""
        except OSError:
            return False

    dripped, read = sum(closed(s) for s in socks), sum(closed(s) for s in readers)
    for s in socks + readers:
        s.close()
    stage.notes.append(
        f"closed by the server after 12 s: {dripped} of {len(socks)} header-drip sockets, "
        f"{read} of {len(readers)} slow readers"
    )


SCENARIOS: dict[str, Callable[[Stage], None]] = {
    "bursts": bursts,
    "waiters": waiters,
    "pg-kill": pg_kill,
    "redis-restart": redis_restart,
    "worker-kill": worker_kill,
    "orchestrator-kill": orchestrator_kill,
    "slow-clients": slow_clients,
}


# -- running a scenario --------------------------------------------------------------------------
def run_scenario(name: str, args: argparse.Namespace) -> Verdict:
    v = Verdict(name)
    run_id = uuid.uuid4().hex[:6]
    logs = ROOT / ".agentbus" / "chaos-logs" / f"{name}-{run_id}"
    logs.mkdir(parents=True, exist_ok=True)
    db_name = f"agentbus_chaos_{name.replace('-', '_')}_{run_id}"
    db_url = fresh_database(args.pg_admin_url, db_name)
    store = Repositories.from_url(db_url)
    store.migrate()
    store.close()
    rs = RedisServer(logs)
    rs.start()
    cluster = Cluster(db_url, rs.url, logs)
    http = httpx.Client(
        base_url=cluster.env["AGENTBUS_API_URL"], headers={"Authorization": f"Bearer {cluster.key}"}, timeout=10
    )
    load = Load(
        cluster.env["AGENTBUS_API_URL"],
        cluster.new_key("load"),
        f"chaos-{run_id}",
        args.threads,
        args.max_jobs,
        args.seconds,
    )
    stage = Stage(
        name,
        cluster,
        rs,
        db_url,
        db_name,
        args.pg_admin_url,
        http,
        load,
        cluster.new_key("fault"),
        cluster.new_key("probe"),
    )
    try:
        conn = redis.Redis.from_url(rs.url)
        cluster.orchestrator("orch-a")
        wait_until(lambda: conn.get("agentbus:lease:orchestrator") == b"orch-a", 30, "orch-a to take the lease")
        if name == "orchestrator-kill":
            cluster.orchestrator("orch-b")
        conn.close()
        cluster.worker("w1")
        cluster.worker("w2")
        cluster.api()
        wait_until(lambda: cluster.live("w1") and cluster.live("w2"), 30, "the workers to heartbeat")
        cluster.wait(cluster.client.submit("echo", {"message": "warm"})["id"], timeout=30)

        load.start()
        time.sleep(LEAD_IN_S)
        since = time.monotonic()
        recovered: dict[str, float] = {}
        prober = threading.Thread(target=probe, args=(stage, since, recovered), daemon=True)
        prober.start()
        SCENARIOS[name](stage)
        time.sleep(max(0.0, args.seconds - (time.monotonic() - since) - LEAD_IN_S))
        load.finish()
        check(stage, v)
        prober.join(DRAIN_S)
        v.recover_s = recovered.get("recover_s")
    except Exception as exc:  # a scenario that breaks the harness is a failed scenario, not a crash
        v.error = f"{type(exc).__name__}: {exc}"
        load.finish()
    finally:
        v.notes = stage.notes + v.notes
        v.refused = ", ".join(f"{n}x {c}" for c, n in load.refused.most_common())
        http.close()
        cluster.stop()
        rs.kill()
        admin = psycopg2.connect(args.pg_admin_url)
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(f"DROP DATABASE IF EXISTS {db_name} WITH (FORCE)")
        admin.close()
        if v.ok and not args.keep_logs:
            shutil.rmtree(logs, ignore_errors=True)
        else:
            v.notes.append(f"logs: {logs.relative_to(ROOT)}")
    return v


def fmt_s(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f} s"


def table(verdicts: list[Verdict]) -> str:
    rows = [
        "| scenario | verdict | jobs accepted | lost | duplicated | failed | stranded calls | calls re-run | "
        "time to recover | drain after load | API answers |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for v in verdicts:
        rows.append(
            f"| {v.scenario} | {'ok' if v.ok else '**FAIL**'} | {v.accepted} | {v.lost} | {v.duplicated} | "
            f"{v.failed} | {v.stranded_calls} | {v.rerun_calls} | {fmt_s(v.recover_s)} | {fmt_s(v.drain_s)} | "
            f"{'yes' if v.api_ok else '**no**'} |"
        )
    return "\n".join(rows)


def write_docs(verdicts: list[Verdict], args: argparse.Namespace) -> None:
    begin, end = "<!-- chaos:begin -->", "<!-- chaos:end -->"
    notes = "\n".join(
        f"- **{v.scenario}**: " + "; ".join(([v.error] if v.error else []) + [n for n in v.notes if "logs:" not in n])
        for v in verdicts
    )
    body = (
        f"{begin}\n`python -m bench.chaos --seconds {args.seconds:g} --max-jobs {args.max_jobs}` "
        f"on {time.strftime('%Y-%m-%d')}, {os.cpu_count()} CPUs (shared), Python {sys.version.split()[0]}:\n\n"
        f"{table(verdicts)}\n\n{notes}\n{end}"
    )
    text = DOC.read_text()
    if begin in text and end in text:
        text = text[: text.index(begin)] + body + text[text.index(end) + len(end) :]
    else:
        text = text.rstrip() + "\n\n" + body + "\n"
    DOC.write_text(text)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"default: all of {', '.join(SCENARIOS)}")
    ap.add_argument("--seconds", type=float, default=20.0, help="load duration of each scenario")
    ap.add_argument("--threads", type=int, default=4, help="load generator threads")
    ap.add_argument("--max-jobs", type=int, default=200, help="at most this many jobs per scenario")
    ap.add_argument(
        "--pg-admin-url", default=os.environ.get("AGENTBUS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")
    )
    ap.add_argument("--keep-logs", action="store_true", help="keep the roles' logs of passing scenarios too")
    ap.add_argument("--write-docs", action="store_true", help="write the table into docs/reliability.md")
    args = ap.parse_args()
    unknown = [s for s in args.scenarios if s not in SCENARIOS]
    if unknown:
        ap.error(f"no such scenario: {', '.join(unknown)} (choose from {', '.join(SCENARIOS)})")
    verdicts = []
    for name in args.scenarios or list(SCENARIOS):
        t0 = time.monotonic()
        print(f"== {name}", flush=True)
        v = run_scenario(name, args)
        verdicts.append(v)
        print(
            f"   {'ok' if v.ok else 'FAIL'} in {time.monotonic() - t0:.0f} s: accepted {v.accepted}, lost {v.lost}, "
            f"duplicated {v.duplicated}, failed {v.failed}, wrong results {v.wrong}, stranded calls "
            f"{v.stranded_calls}, calls re-run {v.rerun_calls}, time to recover {fmt_s(v.recover_s)}, "
            f"drain {fmt_s(v.drain_s)}, API answers: {v.api_ok}",
            flush=True,
        )
        if v.refused:
            print(f"   submissions refused or retried: {v.refused}")
        for n in ([v.error] if v.error else []) + v.notes:
            print(f"   - {n}", flush=True)
    print()
    print(table(verdicts))
    if args.write_docs:
        write_docs(verdicts, args)
    sys.exit(0 if all(v.ok for v in verdicts) else 1)


if __name__ == "__main__":
    main()
