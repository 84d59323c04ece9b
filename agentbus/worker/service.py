"""The worker roles: an RQ worker over agentbus queues, heartbeating what it has and does."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid
from typing import Any

from agentbus.bus import AgentbusWorker, ControlStream, Dispatcher, Fleet, connect, run_worker
from agentbus.bus.routing import listen_order
from agentbus.config import Settings, keyrings
from agentbus.domain import App, Dispatch, TaskCall, TaskState, Unavailable
from agentbus.services import JobMemory, MemoryService
from agentbus.store import Store
from agentbus.worker.execute import Executor

log = logging.getLogger("agentbus.worker")


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
    store = Store.from_url(settings.database_url, max_connections=4)
    stream = ControlStream(conn, stream_ring)
    fleet = Fleet(conn, settings.worker_ttl_s)
    dispatcher = Dispatcher(conn, keyring)
    queues = listen_order(targets)
    device = device or {"kind": "cpu"}

    def hand_back(origin: str, calls: list[TaskCall]) -> None:
        """Calls this worker will not run (it is shutting down) go back to their queue, newly fenced."""
        did = "d" + uuid.uuid4().hex
        moved = store.requeue([c.task_id for c in calls], [TaskState.RUNNING], did, new_attempt=True)
        if moved:
            dispatcher.send(origin, [Dispatch(did, tuple(
                TaskCall(r.id, r.job_id, r.name, r.args, r.attempt, r.retries, r.timeout, r.backoff) for r in moved
            ))])  # fmt: skip
            log.warning("handed %d calls back to %s", len(moved), origin)

    memory = MemoryService(store, settings.embedder, settings.memory_max_batch, settings.max_memory_items)
    executor = Executor(
        app, store, stream.publish, worker_id, hand_back, "gpu" if device["kind"] == "gpu" else "cpu",
        settings.max_result_bytes, lambda job_id: JobMemory(memory, job_id),
    )  # fmt: skip
    executor.install_signals()

    def on_stop() -> None:
        executor.stopping = True
        if executor.busy:
            log.warning("stopping after the current call (at most %ss)", settings.shutdown_grace_s)
            timer = threading.Timer(settings.shutdown_grace_s, executor.interrupt)
            timer.daemon = True
            timer.start()

    worker = AgentbusWorker(
        queues, connection=conn, name=worker_id, executor=executor, keyring=keyring,
        on_cancel=executor.request_cancel, on_stop=on_stop, on_force_stop=executor.interrupt,
    )  # fmt: skip
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                fleet.heartbeat(
                    worker_id,
                    {"role": role, "queues": queues, "targets": targets, "device": device, "host": socket.gethostname(),
                     "pid": os.getpid(), "current": executor.current(), "done": executor.stats.done,
                     "failed": executor.stats.failed, "draining": executor.stopping, "rejected": worker.rejected},
                )  # fmt: skip
            except Unavailable as exc:
                log.warning("heartbeat failed: %s", exc)
            if stop.wait(settings.heartbeat_interval_s):
                return

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()
    log.warning("worker %s serving %s", worker_id, ", ".join(targets))
    try:
        run_worker(worker, burst=burst)
    finally:
        stop.set()
        try:
            fleet.forget(worker_id)
        except Unavailable:
            pass
        store.close()
