"""The worker roles: an RQ worker over agentbus queues, heartbeating its state."""

from __future__ import annotations

import logging
import os
import socket
import threading
import uuid

from agentbus.bus import AgentbusWorker, ControlStream, Fleet, connect, run_worker
from agentbus.config import Settings
from agentbus.domain import App, Unavailable
from agentbus.security import Keyring
from agentbus.store import Store
from agentbus.worker.execute import Executor

log = logging.getLogger("agentbus.worker")


def run_worker_role(
    settings: Settings, app: App, role: str, queues: list[str], name: str | None = None, burst: bool = False
) -> None:
    worker_id = name or f"{role}-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    conn = connect(settings.redis_url)
    keyring = Keyring.parse(settings.secret)
    store = Store.from_url(settings.database_url, max_connections=4)
    stream = ControlStream(conn, keyring)
    fleet = Fleet(conn, settings.worker_ttl_s)
    executor = Executor(app, store, stream.publish, worker_id)
    executor.install_signals()
    worker = AgentbusWorker(
        queues, connection=conn, name=worker_id, executor=executor, keyring=keyring, on_cancel=executor.request_cancel
    )
    stop = threading.Event()

    def beat() -> None:
        while True:
            try:
                fleet.heartbeat(
                    worker_id,
                    {"role": role, "queues": queues, "host": socket.gethostname(), "pid": os.getpid(),
                     "current": executor.current(), "done": executor.stats.done, "failed": executor.stats.failed},
                )  # fmt: skip
            except Unavailable as exc:
                log.warning("heartbeat failed: %s", exc)
            if stop.wait(settings.heartbeat_interval_s):
                return

    threading.Thread(target=beat, name="heartbeat", daemon=True).start()
    log.warning("worker %s serving queues %s", worker_id, ", ".join(queues))
    try:
        run_worker(worker, burst=burst)
    finally:
        stop.set()
        try:
            fleet.forget(worker_id)
        except Unavailable:
            pass
        store.close()
