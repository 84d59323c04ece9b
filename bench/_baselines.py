"""Baselines for ``bench/throughput.py``: raw RQ and Celery on the same no-op workload as agentbus.

Workload (identical for both): ``n_tasks`` no-op tasks, ``n_workers`` separate single-process worker
processes, Redis as the only broker. A task counts as done when it has been executed *and* its
completion is recorded in Redis where the measuring process can see it:

- RQ: the job is in the queue's ``FinishedJobRegistry`` (RQ writes the job status, its (null) result
  and the registry entry in the worker; ``result_ttl`` is kept small, ``timeout + 60`` s, but must be
  > 0 or RQ keeps no record of the job at all).
- Celery: the task's result is in the Redis result backend (``celery-task-meta-<id>``). The result
  backend is the fair counterpart of RQ's finished record: each system writes one per-task completion
  record to Redis from the worker. Only the *workers* are configured with the backend; the enqueuing
  client has none, so it does not SUBSCRIBE to 10,000 result channels (which a Redis backend client
  does on every ``apply_async``) -- that would charge Celery for a client-side cost the RQ run does
  not have. Completion is polled with multi-key ``EXISTS`` on chunks of result keys.

Method: the workers are started first and the clock only runs while *warm* workers drain a *full*
queue, so neither worker start-up nor the client's enqueue cost is in ``seconds`` (both are reported
beside it, ``startup_seconds`` and ``enqueue_seconds``, for information):

- RQ: start the workers on an empty per-run queue and wait until all have registered for it; build
  all jobs with ``Queue.enqueue_many`` into one MULTI/EXEC pipeline (``JSONSerializer``), so they
  become visible to the workers at once when Redis runs the EXEC. The clock starts at the earliest
  ``started_at`` that the workers wrote on the first jobs (the instant the queue became non-empty;
  never earlier than the EXEC was sent) and stops when the ``FinishedJobRegistry`` holds all jobs.
- Celery: start the workers consuming only an idle placeholder queue and wait until all are ready
  (a ``worker_ready`` signal INCRs a Redis key); publish all tasks (``send_task``, JSON) to the real
  queue; the clock starts when ``control.add_consumer`` tells the workers to consume it (every worker
  must answer) and stops when all results are in the backend.

Both run with their defaults except: logging at WARNING in both (RQ logs two INFO lines per job by
default, Celery's worker default level is WARNING, so this equalises), JSON serialisation in both,
Celery's gossip/mingle/heartbeat off (single-host benchmark). Celery keeps its default prefetch
multiplier (4) and early ack. Workers are always terminated (SIGTERM, then SIGKILL after 10 s) in a
``finally``; every wait is bounded by ``timeout`` (default 300 s) and raises ``BaselineTimeout``.

The measuring functions do not FLUSHDB unless ``flush_db=True``: every run uses its own queue name, and
what it leaves behind expires after ``result_ttl``. Celery is imported lazily, inside
``measure_celery``; importing this module needs only ``redis`` and ``rq``.

Run: ``python -m bench._baselines --redis-url redis://127.0.0.1:6379/14 --flush``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

import redis

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"
DEFAULT_TIMEOUT_S = 300.0
POLL_INTERVAL_S = 0.02
STOP_GRACE_S = 10.0
RQ_TASK = "bench._baselines.noop"
CELERY_RESULT_PREFIX = "celery-task-meta-"  # Celery's Redis result backend key prefix (default)
CHUNK = 500


class BaselineError(RuntimeError):
    """A baseline could not be measured (a worker died, a task failed...)."""


class BaselineTimeout(BaselineError, TimeoutError):
    """A baseline did not finish within its time limit."""


def noop() -> None:
    """The RQ no-op task (referenced by name as ``bench._baselines.noop``)."""
    return None


class _Workers:
    """Worker subprocesses whose output goes to temporary files; always stopped by ``stop()``."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: list[IO[bytes]] = []

    def start(self, argv: Sequence[str], env: dict[str, str]) -> None:
        # Closed in stop(): the file outlives this method.
        log = tempfile.TemporaryFile(prefix=f"agentbus-bench-{self.label}-")  # noqa: SIM115
        self.logs.append(log)
        self.procs.append(
            subprocess.Popen(
                list(argv),
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # a Ctrl-C reaches us only; we stop them in order
            )
        )

    def check_alive(self) -> None:
        for i, proc in enumerate(self.procs):
            if proc.poll() is not None:
                raise BaselineError(
                    f"{self.label} worker {i} exited early with code {proc.returncode}:\n{self.tail(i)}"
                )

    def tail(self, i: int, limit: int = 4000) -> str:
        log = self.logs[i]
        log.flush()
        log.seek(0)
        return log.read().decode(errors="replace")[-limit:]

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_S
        for proc in self.procs:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        for log in self.logs:
            log.close()


def _env(**extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


def _wait(what: str, done: Any, workers: _Workers, deadline: float) -> None:
    """Poll ``done()`` until true; raise if a worker dies or ``deadline`` passes."""
    while not done():
        workers.check_alive()
        if time.monotonic() > deadline:
            raise BaselineTimeout(f"{workers.label}: timed out waiting for {what}")
        time.sleep(POLL_INTERVAL_S)


def _result(name: str, n_tasks: int, n_workers: int, seconds: float, **extra: float) -> dict[str, Any]:
    return {
        "name": name,
        "tasks": n_tasks,
        "workers": n_workers,
        "seconds": round(seconds, 3),
        "tasks_per_s": round(n_tasks / seconds, 1),
        **{k: round(v, 3) for k, v in extra.items()},
    }


def measure_rq(
    redis_url: str,
    n_tasks: int = 10_000,
    n_workers: int = 2,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    flush_db: bool = False,
) -> dict[str, Any]:
    """Raw RQ: ``n_workers`` ``rq worker --worker-class rq.worker.SimpleWorker`` processes.

    See the module docstring for the method; the clock runs from the first job's start (all jobs were
    queued at once) until the queue's ``FinishedJobRegistry`` holds ``n_tasks`` jobs.
    """
    from rq import Queue, Worker
    from rq.job import Job
    from rq.registry import FailedJobRegistry, FinishedJobRegistry
    from rq.serializers import JSONSerializer

    if n_tasks < 1 or n_workers < 1:
        raise ValueError("n_tasks and n_workers must be >= 1")
    started = time.monotonic()
    deadline = started + timeout
    conn = redis.Redis.from_url(redis_url)
    if flush_db:
        conn.flushdb()
    name = f"agentbus-bench-rq-{uuid.uuid4().hex[:8]}"
    queue = Queue(name, connection=conn, serializer=JSONSerializer)
    finished_key = FinishedJobRegistry(queue=queue).key
    failed_key = FailedJobRegistry(queue=queue).key
    ttl = int(timeout) + 60
    workers = _Workers("rq")
    try:
        for i in range(n_workers):
            workers.start(
                [
                    sys.executable,
                    "-m",
                    "rq.cli",
                    "worker",
                    "--url",
                    redis_url,
                    "--worker-class",
                    "rq.worker.SimpleWorker",
                    "--serializer",
                    "rq.serializers.JSONSerializer",
                    "--logging_level",
                    "WARNING",
                    "--disable-job-desc-logging",
                    "--max-idle-time",
                    str(int(timeout)),  # a safety net if we were killed
                    "--name",
                    f"{name}-w{i}",
                    "--path",
                    str(REPO_ROOT),
                    name,
                ],
                _env(),
            )
        _wait(
            f"{n_workers} RQ workers to register",
            lambda: Worker.count(connection=conn, queue=queue) >= n_workers,
            workers,
            deadline,
        )
        ready = time.monotonic()
        # Build the 10,000 jobs in memory first: nothing reaches Redis until the pipeline's EXEC, which
        # makes them all visible at once (MULTI/EXEC), so the workers start on a full queue.
        t_build = time.perf_counter()
        datas = [Queue.prepare_data(RQ_TASK, result_ttl=ttl, failure_ttl=ttl) for _ in range(n_tasks)]
        with conn.pipeline() as pipe:
            jobs = queue.enqueue_many(datas, pipeline=pipe)
            t_exec = time.time()
            pipe.execute()
        enqueue_seconds = time.perf_counter() - t_build

        def done() -> bool:
            with conn.pipeline(transaction=False) as pipe:
                pipe.zcard(finished_key)
                pipe.zcard(failed_key)
                n_finished, n_failed = pipe.execute()
            if n_failed:
                raise BaselineError(f"rq: {n_failed} jobs failed:\n{workers.tail(0)}")
            return int(n_finished) >= n_tasks

        _wait(f"{n_tasks} RQ jobs to finish", done, workers, deadline)
        t_done = time.time()
        # Clock start: the first job a worker started (its started_at, written by the worker), i.e. the
        # moment the EXEC made the queue non-empty -- not the client's send/parse of the pipeline.
        first = Job.fetch_many([job.id for job in jobs[: 2 * n_workers]], conn, serializer=JSONSerializer)
        starts = [job.started_at.timestamp() for job in first if job is not None and job.started_at]
        if not starts:
            raise BaselineError("rq: no started_at recorded on the first jobs")
        t_start = max(min(starts), t_exec)
        elapsed = t_done - t_start
    finally:
        workers.stop()
        try:
            queue.delete(delete_jobs=False)
        finally:
            conn.close()
    return _result(
        "rq",
        n_tasks,
        n_workers,
        elapsed,
        enqueue_seconds=enqueue_seconds,
        startup_seconds=ready - started,
    )


def measure_celery(
    redis_url: str,
    n_tasks: int = 10_000,
    n_workers: int = 2,
    *,
    timeout: float = DEFAULT_TIMEOUT_S,
    flush_db: bool = False,
) -> dict[str, Any]:
    """Celery: Redis broker and result backend, ``n_workers`` ``--pool=solo`` worker processes.

    See the module docstring for the method; the clock runs from ``add_consumer`` on the full queue
    until all ``n_tasks`` results are in the Redis result backend.
    """
    from celery import Celery  # lazy: celery is only needed for this baseline

    if n_tasks < 1 or n_workers < 1:
        raise ValueError("n_tasks and n_workers must be >= 1")
    started = time.monotonic()
    deadline = started + timeout
    conn = redis.Redis.from_url(redis_url)
    if flush_db:
        conn.flushdb()
    run = uuid.uuid4().hex[:8]
    queue = f"agentbus-bench-celery-{run}"
    ready_key = f"agentbus-bench:celery:{run}:ready"
    task_name = "bench.noop"  # bench._noop_tasks.TASK_NAME, not imported here: that would import celery
    env = _env(
        AGENTBUS_BENCH_REDIS_URL=redis_url,
        AGENTBUS_BENCH_QUEUE=queue,
        AGENTBUS_BENCH_READY_KEY=ready_key,
        AGENTBUS_BENCH_RESULT_TTL=str(int(timeout) + 60),
    )
    # No result backend on the sending side: see the module docstring.
    client = Celery("agentbus_bench_client", broker=redis_url)
    client.conf.update(
        task_default_queue=queue,
        task_serializer="json",
        accept_content=["json"],
        broker_connection_retry_on_startup=True,
    )
    nodes = [f"w{i}-{run}@{socket.gethostname()}" for i in range(n_workers)]
    workers = _Workers("celery")
    try:
        for i in range(n_workers):
            workers.start(
                [
                    sys.executable,
                    "-m",
                    "celery",
                    "-A",
                    "bench._noop_tasks",
                    "worker",
                    "--pool=solo",
                    "--concurrency=1",
                    "-n",
                    nodes[i],
                    "-Q",
                    f"{queue}-idle",
                    "--without-gossip",
                    "--without-mingle",
                    "--without-heartbeat",
                    "--loglevel=WARNING",
                ],
                env,
            )
        _wait(
            f"{n_workers} Celery workers to be ready",
            lambda: int(conn.get(ready_key) or 0) >= n_workers,
            workers,
            deadline,
        )
        ready = time.monotonic()
        ids = [str(uuid.uuid4()) for _ in range(n_tasks)]
        pending = [
            [f"{CELERY_RESULT_PREFIX}{task_id}" for task_id in ids[i : i + CHUNK]] for i in range(0, n_tasks, CHUNK)
        ]
        # Fill the real queue while the workers only listen on the idle one.
        t_send = time.perf_counter()
        with client.producer_or_acquire() as producer:
            for task_id in ids:
                client.send_task(task_name, task_id=task_id, queue=queue, producer=producer)
        enqueue_seconds = time.perf_counter() - t_send
        queued = int(conn.llen(queue))
        if queued != n_tasks:
            raise BaselineError(f"celery: {queued} messages in {queue!r} after sending {n_tasks}")

        # Clock start: tell the (ready) workers to consume the full queue.
        t0 = time.perf_counter()
        replies = client.control.add_consumer(queue, destination=nodes, reply=True, timeout=10.0)
        if len(replies) != n_workers:
            raise BaselineError(f"celery: add_consumer answered by {len(replies)} of {n_workers}: {replies}")

        def done() -> bool:
            # Tasks are consumed roughly in order, so chunks drop off the front and each poll is cheap.
            while pending:
                chunk = pending[0]
                if int(conn.exists(*chunk)) < len(chunk):
                    return False
                pending.pop(0)
            return True

        _wait(f"{n_tasks} Celery tasks to finish", done, workers, deadline)
        elapsed = time.perf_counter() - t0
        # Every result is in the backend; make sure they are all successes (after the clock stopped).
        failures = 0
        for i in range(0, n_tasks, CHUNK):
            keys = [f"{CELERY_RESULT_PREFIX}{task_id}" for task_id in ids[i : i + CHUNK]]
            failures += sum(1 for raw in conn.mget(keys) if raw is None or b'"SUCCESS"' not in raw)
        if failures:
            raise BaselineError(f"celery: {failures} of {n_tasks} tasks did not succeed")
    finally:
        workers.stop()
        try:
            conn.delete(ready_key)
        finally:
            client.close()
            conn.close()
    return _result(
        "celery",
        n_tasks,
        n_workers,
        elapsed,
        enqueue_seconds=enqueue_seconds,
        startup_seconds=ready - started,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="RQ and Celery throughput baselines (no-op tasks).")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--tasks", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds per baseline")
    parser.add_argument("--only", choices=["rq", "celery"], help="run one baseline only")
    parser.add_argument("--flush", action="store_true", help="FLUSHDB the Redis database before each run")
    args = parser.parse_args(argv)
    for name, measure in (("rq", measure_rq), ("celery", measure_celery)):
        if args.only in (None, name):
            result = measure(args.redis_url, args.tasks, args.workers, timeout=args.timeout, flush_db=args.flush)
            print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
