"""The orchestrator role: active-passive, one consumer of the control stream."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from typing import Any

from agentbus.bus import ControlStream, Dispatcher, Entry, Fleet, JobNotifier, Lease, OutputStream, ping, queue_depths
from agentbus.config import Settings, keyrings
from agentbus.domain import App, Unavailable
from agentbus.observability import MetricsServer, Readiness, log_context, metrics, probe, tracing
from agentbus.orchestrator.compose import compose
from agentbus.orchestrator.webhooks import WebhookSender
from agentbus.store import Jobs, Repositories, Retention

log = logging.getLogger("agentbus.orchestrator")


class Orchestrator:
    def __init__(self, settings: Settings, app: App, repos: Repositories, conn: Any, name: str | None = None):
        self.settings = settings
        self.id = name or f"orch-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        stream_ring, dispatch_ring = keyrings(settings)
        self.stream = ControlStream(conn, stream_ring)
        self.fleet = Fleet(conn, settings.worker_ttl_s)
        parts = compose(
            app,
            settings,
            jobs=repos.jobs,
            steps=repos.steps,
            approvals=repos.approvals,
            queues=Dispatcher(conn, dispatch_ring),
            events=self.stream,
            workers=self.fleet,
            notices=JobNotifier(conn),
            outputs=OutputStream(conn, settings.output_buffer, settings.output_ttl_s),
            retention=Retention(repos.db),
        )
        self.driver, self.maintenance = parts.driver, parts.maintenance
        self.lease = Lease(conn, "orchestrator", self.id, int(settings.lease_ttl_s * 1000))
        self.active = threading.Event()
        metrics.watch_lease(self.active.is_set)
        self.stop = threading.Event()
        secret = (settings.webhook_secret or settings.secret).encode()
        self.webhooks = WebhookSender(repos.webhooks, secret, settings.webhook_allow_private)

    def _send_webhooks(self) -> None:
        """A thread of its own: a slow receiver never holds up the control loop."""
        while not self.stop.wait(0.5):
            if not self.active.is_set():
                continue
            try:
                self.webhooks.deliver_due()
            except Unavailable as exc:
                log.warning("webhook delivery paused: %s", exc)
            except Exception:
                log.exception("webhook delivery failed")

    # -- lease ---------------------------------------------------------------------------------
    def _keep_lease(self) -> None:
        period = self.settings.lease_ttl_s / 4
        while not self.stop.wait(period):
            if not self.active.is_set():
                continue
            try:
                held = self.lease.renew()
            except Unavailable as exc:
                log.warning("cannot renew the lease: %s", exc)
                held = False
            if not held:
                log.warning("%s lost the lease; standing by", self.id)
                self.active.clear()

    def _try_take_over(self) -> bool:
        try:
            if not self.lease.acquire():
                return False
        except Unavailable:
            return False
        log.warning("%s is the active orchestrator", self.id)
        self.active.set()
        self.stream.ensure_group()
        # Entries read by a dead predecessor and never acknowledged are ours now.
        self._handle(self.stream.claim_stale(self.id, min_idle_ms=0))
        self.maintenance.reconcile()
        return True

    # -- the loop ------------------------------------------------------------------------------
    def _handle(self, entries: list[Entry]) -> None:
        if not entries:
            return
        metrics.stream_lag(e.id for e in entries)
        cancels: dict[str, None] = {}
        others: dict[str, None] = {}
        for e in entries:
            target = cancels if e.event.kind == "job.cancel" else others
            for job_id in e.event.job_ids:
                target[job_id] = None
        for job_id in cancels:
            self.driver.cancel(job_id)
        try:
            alone = self.driver.advance_many(list(others))
        except Unavailable:
            raise
        except Exception:  # find the job at fault: the others go on one by one
            log.exception("advancing %d jobs together failed; advancing them one by one", len(others))
            alone = list(others)
        for job_id in alone:
            self._advance(job_id)
        self.stream.ack([e.id for e in entries])

    def _advance(self, job_id: str, resume: bool = False) -> None:
        try:
            with log_context(job_id=job_id, tenant=None), metrics.replay_timer(), tracing.advancing(job_id):
                self.driver.advance(job_id, resume=resume)
                log.debug("advanced job %s", job_id)
        except Unavailable:
            raise
        except Exception:
            log.exception("advancing job %s failed; the reconciler will retry", job_id)

    def run(self) -> None:
        threading.Thread(target=self._keep_lease, name="lease", daemon=True).start()
        threading.Thread(target=self._send_webhooks, name="webhooks", daemon=True).start()
        next_timers = next_reconcile = 0.0
        next_purge = time.monotonic() + self.settings.reconcile_interval_s
        while not self.stop.is_set():
            try:
                if not self.active.is_set():
                    if not self._try_take_over():
                        self.stop.wait(min(1.0, self.settings.lease_ttl_s / 5))
                    continue
                # a fan-out being built in parts: poll, do not block, between its parts
                self._handle(self.stream.read(self.id, count=1000, block_ms=1 if self.driver.resuming else 100))
                for job_id in self.driver.take_resumable():
                    self._advance(job_id, resume=True)
                now = time.monotonic()
                if now >= next_timers:
                    self.maintenance.timers()
                    next_timers = now + self.settings.timer_interval_s
                if now >= next_reconcile:
                    self.maintenance.reconcile()
                    self.maintenance.reap()
                    next_reconcile = now + self.settings.reconcile_interval_s
                if now >= next_purge:
                    # A full batch: more is waiting, the next in a reconcile interval (2 s), not at once: a batch
                    # takes ~0.25 s (docs/benchmarks.md), and jobs must not wait behind a backlog being drained.
                    full = self.maintenance.purge().jobs >= self.settings.retention_batch
                    wait = self.settings.reconcile_interval_s if full else self.settings.retention_interval_s
                    next_purge = now + wait
            except Unavailable as exc:
                log.warning("dependency unavailable: %s; retrying", exc)
                self.stop.wait(1.0)
            except Exception:
                log.exception("orchestrator loop error")
                self.stop.wait(1.0)
        if self.active.is_set():
            try:
                self.lease.release()
            except Unavailable:
                pass


def run_orchestrator(settings: Settings, app: App, name: str | None = None) -> None:
    import signal

    from agentbus.bus import connect

    repos = Repositories.from_url(settings.database_url)
    conn = connect(settings.redis_url)
    orch = Orchestrator(settings, app, repos, conn, name=name)
    metrics.watch_queues(lambda: queue_depths(conn))
    metrics.watch_jobs(repos.jobs.open_jobs_by_state, repos.approvals.pending_approvals)

    def readiness() -> Readiness:
        """Ready when Redis and PostgreSQL answer: holding the lease, or a healthy standby."""
        checks = probe({"redis": lambda: ping(conn), "postgresql": lambda: _ping_store(repos.jobs)})
        ok = all(v == "ok" for v in checks.values())
        return Readiness(ok, {"lease": "held" if orch.active.is_set() else "standby", "id": orch.id, "checks": checks})

    server = MetricsServer(settings.metrics_port, readiness=readiness).start()

    def _stop(signum: int, frame: object) -> None:
        orch.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.warning("orchestrator %s started (standby until it holds the lease)", orch.id)
    orch.run()
    server.close()
    repos.close()


def _ping_store(jobs: Jobs) -> None:
    """A probe on its own thread: the connection it takes goes back at once."""
    try:
        jobs.ping()
    finally:
        if not jobs.db.is_closed():
            jobs.db.close()
