"""The worker roles: an RQ worker over agentbus queues, heartbeating what it has and does."""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
import uuid
from typing import Any

from agentbus.bus import AgentbusWorker, ControlStream, Dispatcher, Fleet, OutputStream, connect, ping, run_worker
from agentbus.bus.routing import build_target, listen_order
from agentbus.config import Settings, keyrings
from agentbus.domain import App, Dispatch, TaskCall, TaskState, Unavailable
from agentbus.domain.ids import new_dispatch_id
from agentbus.domain.messages import Heartbeat, build_of
from agentbus.observability import MetricsServer, Readiness, metrics, probe
from agentbus.services import JobMemory, MemoryService
from agentbus.store import Repositories, Steps
from agentbus.worker.execute import Executor

log = logging.getLogger("agentbus.worker")

EXIT_RESTART_ME = 75
"""Exit status of a worker that left because of too many abandoned threads (EX_TEMPFAIL)."""
CPU_CONCURRENCY = 100
GPU_CONCURRENCY = 1


def default_concurrency(settings: Settings, device_kind: str) -> int:
    """Calls in flight per process: ``--concurrency``/AGENTBUS_WORKER_CONCURRENCY, else 100 on a
    CPU worker (agent calls mostly wait) and 1 on a GPU worker (one kernel at a time per GPU)."""
    if settings.worker_concurrency > 0:
        return settings.worker_concurrency
    return GPU_CONCURRENCY if device_kind == "gpu" else CPU_CONCURRENCY


def not_here(steps: Steps, worker_id: str, calls: list[TaskCall]) -> int:
    """Calls for tasks this worker's App lacks (routed before the orchestrator saw this worker):
    back to pending under the same attempt, never marked running, so that the orchestrator routes
    them to a worker that has the task (docs/workers.md, "Two builds at once")."""
    names = ", ".join(sorted({c.name for c in calls}))
    reason = f"{worker_id} has no task {names}: routed again"
    n = steps.park([c.task_id for c in calls], [TaskState.QUEUED], reason, new_attempt=False)
    log.warning("handed back %d calls for tasks this worker does not have (%s)", n, names)
    return n


def run_worker_role(
    settings: Settings,
    app: App,
    role: str,
    targets: list[str],
    name: str | None = None,
    burst: bool = False,
    device: dict[str, Any] | None = None,
) -> None:
    """Serve ``targets`` (``cpu``, ``gpu``, ``gpu.8gb``, ...) at every priority level."""
    worker_id = name or f"{role}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    conn = connect(settings.redis_url)
    stream_ring, keyring = keyrings(settings)
    device = device or {"kind": "cpu"}
    concurrency = default_concurrency(settings, str(device.get("kind")))
    # the main loop, the outcome writer and sync calls that use memory each hold a connection a while
    repos = Repositories.from_url(settings.database_url, max_connections=16)
    stream = ControlStream(conn, stream_ring, shards=settings.shards)
    fleet = Fleet(conn, settings.worker_ttl_s)
    dispatcher = Dispatcher(conn, keyring)
    tasks = tuple(sorted(app.tasks))
    build = build_of(tasks)
    # the build's own queues take the calls for tasks that other live builds lack (a rolling deploy)
    queues = listen_order([*targets, *(build_target(t, build) for t in targets)])

    def hand_back(origin: str, calls: list[TaskCall]) -> None:
        """Calls this worker will not run (it is shutting down) go back to their queue, newly fenced."""
        did = new_dispatch_id()
        moved = repos.steps.requeue([c.task_id for c in calls], [TaskState.RUNNING], did, new_attempt=True)
        if moved:
            dispatcher.send(
                origin,
                [
                    Dispatch(
                        did,
                        tuple(r.call() for r in moved),
                    )
                ],
            )
            log.warning("handed %d calls back to %s", len(moved), origin)

    def release_connection() -> None:
        """After a sync call on a pool thread: give back the connection a memory call may have taken."""
        if not repos.db.is_closed():
            repos.db.close()

    memory = MemoryService.from_settings(repos.memory, settings)
    executor = Executor(
        app,
        repos.steps,
        stream.publish,
        worker_id,
        hand_back,
        "gpu" if device["kind"] == "gpu" else "cpu",
        settings.max_result_bytes,
        lambda job_id: JobMemory(memory, job_id, repos.jobs),
        concurrency=concurrency,
        max_abandoned=settings.worker_max_abandoned,
        after_sync_call=release_connection,
        outputs=OutputStream.from_url(settings.redis_url, settings.output_buffer, settings.output_ttl_s).append,
        output_buffer=settings.output_buffer,
        max_output_bytes=settings.output_max_bytes,
        not_here=lambda calls: not_here(repos.steps, worker_id, calls),
    )
    executor.start()
    worker = AgentbusWorker(
        queues,
        connection=conn,
        name=worker_id,
        executor=executor,
        keyring=keyring,
        on_cancel=executor.request_cancel,
        capacity=executor,
        should_stop=lambda: executor.exhausted,
        take_many=executor.take,
    )
    stop = threading.Event()
    last_beat = [0.0]  # monotonic time of the last heartbeat Redis took

    def beat() -> None:
        failing = False
        while True:
            hb = Heartbeat(
                id=worker_id,
                role=role,
                queues=tuple(queues),
                targets=tuple(targets),
                device=device,
                host=socket.gethostname(),
                pid=os.getpid(),
                concurrency=concurrency,
                calls=executor.calls(),
                done=executor.stats.done,
                failed=executor.stats.failed,
                draining=executor.stopping or worker.stopping,
                rejected=worker.rejected,
                abandoned=executor.stats.abandoned,
                seen=time.time(),
                tasks=tasks,
                build=build,
            )
            try:
                fleet.beat(hb)
                last_beat[0] = time.monotonic()
                if failing:
                    log.warning("heartbeats are back")
                failing = False
            except Unavailable as exc:
                if not failing:
                    log.warning("heartbeat failed (%s): retrying every %ss", exc, settings.heartbeat_interval_s)
                failing = True
            if stop.wait(settings.heartbeat_interval_s):
                return

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()

    def ping_store() -> None:
        try:
            repos.jobs.ping()
        finally:
            release_connection()

    def readiness() -> Readiness:
        """Ready when its heartbeat reached Redis within the worker TTL and Redis and PostgreSQL answer."""
        age = time.monotonic() - last_beat[0]
        checks = {"heartbeat": "ok" if age < settings.worker_ttl_s else f"none for {age:.1f}s"}
        checks.update(probe({"redis": lambda: ping(conn), "postgresql": ping_store}))
        ok = all(v == "ok" for v in checks.values())
        return Readiness(ok, {"id": worker_id, "draining": executor.stopping or worker.stopping, "checks": checks})

    metrics.watch_slots(lambda: len(executor.calls()), concurrency)
    server = MetricsServer(settings.metrics_port, readiness=readiness).start()
    log.warning("worker %s serving %s, %d calls at once", worker_id, ", ".join(targets), concurrency)
    try:
        run_worker(worker, burst=burst)
        if executor.busy:
            log.warning("draining: %d calls held (at most %ss)", len(executor.calls()), settings.shutdown_grace_s)
        executor.drain(settings.shutdown_grace_s, force=lambda: worker.stop_requests > 1)
    finally:
        stop.set()
        server.close()
        try:
            fleet.forget(worker_id)
        except Unavailable:
            pass
        repos.close()
    if executor.exhausted:
        log.error("exiting with status %d so that the supervisor restarts this worker", EXIT_RESTART_ME)
        sys.exit(EXIT_RESTART_ME)
