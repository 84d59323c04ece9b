"""The orchestrator role: holds shard leases (one shard: active/standby) and consumes their control streams."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

from agentbus.bus import (
    ControlStream,
    Entry,
    Fleet,
    Lease,
    Roster,
    free_leases,
    lease_name,
    ping,
    queue_depths,
    renew_all,
)
from agentbus.config import Settings, keyrings
from agentbus.domain import App, ControlEvent, Unavailable
from agentbus.domain.shards import fair_share, rebalance, shard_of
from agentbus.observability import MetricsServer, Readiness, log_context, metrics, probe, tracing
from agentbus.orchestrator.compose import compose_over
from agentbus.orchestrator.schedules import SWEEP_S, Scheduler
from agentbus.orchestrator.webhooks import WebhookSender
from agentbus.store import Jobs, Repositories

log = logging.getLogger("agentbus.orchestrator")


class Orchestrator:
    """Holds a fair share of the K shard leases (K = ``AGENTBUS_SHARDS``) and advances their jobs.

    K = 1 is active/standby: one holds the lease, the others wait for it. With K > 1 each live
    orchestrator holds at most ceil(K / live) shards (``domain/shards.py``), so several are
    active, and a shard whose holder dies is taken by another once its lease expires. The work
    that spans the whole deployment (timers, reconciler, reaper, retention, webhooks, pending
    dispatches, jobs for later and schedule ticks) runs under shard 0's lease only; it hands jobs
    of other shards to their holders as ``job.advance`` events. Compare-and-set transitions keep a
    job safe in the moments when two orchestrators both think they hold its shard.
    """

    def __init__(self, settings: Settings, app: App, repos: Repositories, conn: Any, name: str | None = None):
        self.settings = settings
        self.id = name or f"orch-{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        self.shards = settings.shards
        self.stream = ControlStream(conn, keyrings(settings)[0], shards=settings.shards)
        self.fleet = Fleet(conn, settings.worker_ttl_s)
        parts = compose_over(app, settings, repos, conn, events=self.stream, workers=self.fleet)
        self.driver, self.maintenance = parts.driver, parts.maintenance
        # Deployment-wide work is shard 0's holder's: pending calls are dispatched there only (two
        # orchestrators would share out one concurrency slot twice), and a job that maintenance must
        # advance goes to its own shard's holder when that is another orchestrator.
        self.driver.admission.owns_pending = self.runs_maintenance
        self.maintenance.advance = self._advance_or_hand_over
        self.scheduler = Scheduler(app, jobs=repos.jobs, schedules=repos.schedules, advance=self._advance_or_hand_over)
        self._app_schedules_kept = False
        self._handover: list[str] = []
        self.conn = conn
        ttl_ms = int(settings.lease_ttl_s * 1000)
        self.leases = [Lease(conn, lease_name(k), self.id, ttl_ms) for k in range(self.shards)]
        self.roster = Roster(conn, self.id, ttl_ms)
        self.held: frozenset[int] = frozenset()
        """The shards whose leases this orchestrator holds; replaced whole by the lease thread only."""
        self.active = threading.Event()
        """Set while it holds any shard."""
        metrics.watch_lease(lambda: len(self.held))
        self.stop = threading.Event()
        self._foreign_warned = False
        self._taken: set[int] = set()
        """Shards acquired by the lease thread that the loop has not taken over yet (under ``_taken_lock``)."""
        self._taken_lock = threading.Lock()
        self._renewed = 0.0
        self._acquired = threading.Event()
        """Set by the lease thread when it takes shards: a standby's loop starts on them at once."""
        """When the held leases were last renewed (monotonic; the lease thread's own)."""
        secret = (settings.webhook_secret or settings.secret).encode()
        self.webhooks = WebhookSender(
            repos.webhooks,
            secret,
            settings.webhook_allow_private,
            max_attempts=settings.webhook_max_attempts,
            max_backoff_s=settings.webhook_max_backoff_s,
        )

    def runs_maintenance(self) -> bool:
        return 0 in self.held

    def owns(self, job_id: str) -> bool:
        return shard_of(job_id, self.shards) in self.held

    def _advance_or_hand_over(self, job_id: str) -> None:
        if self.owns(job_id):
            self.driver.advance(job_id)
        else:
            self._handover.append(job_id)

    def _maintain(self, work: Callable[[], object]) -> object:
        """Run one maintenance pass, then hand its jobs of other shards over in one message."""
        try:
            return work()
        finally:
            if self._handover:
                jobs, self._handover = tuple(self._handover), []
                self.stream.publish([ControlEvent("job.advance", jobs)])

    def _send_webhooks(self) -> None:
        """A thread of its own: a slow receiver never holds up the control loop."""
        while not self.stop.wait(0.5):
            if not self.runs_maintenance():
                continue
            try:
                self.webhooks.deliver_due()
            except Unavailable as exc:
                log.warning("webhook delivery paused: %s", exc)
            except Exception:
                log.exception("webhook delivery failed")

    # -- leases --------------------------------------------------------------------------------
    def _set_held(self, held: set[int]) -> None:
        if held != self.held:
            log.warning("%s holds shard(s) %s of %d", self.id, sorted(held) or "none", self.shards)
        self.held = frozenset(held)
        if held:
            self.active.set()
        else:
            self.active.clear()

    def _keep_leases(self) -> None:
        # Often enough that a standby takes a free shard within a second; renewals are spaced wider
        # (``_balance``).
        period = min(1.0, self.settings.lease_ttl_s / 5)
        while not self.stop.is_set():
            try:
                self._balance()
            except Unavailable as exc:
                log.warning("cannot renew the leases: %s; standing by", exc)
                self._set_held(set())
            except Exception:
                log.exception("lease loop error; standing by")
                self._set_held(set())
            self.stop.wait(period)

    def _balance(self) -> None:
        """Renew the held shards, then take free ones or give some up to hold a fair share."""
        mine, held = sorted(self.held), set(self.held)
        now = time.monotonic()
        # Renewed every quarter TTL, as the single lease always was: renewing each second would leave
        # a dead holder's lease ~9.5 s to run, not ~8.75 s, and a standby would take over ~1 s later.
        if mine and now - self._renewed >= self.settings.lease_ttl_s / 4:
            renewed = renew_all(self.conn, [self.leases[k] for k in mine])
            held = {k for k, ok in zip(mine, renewed, strict=True) if ok}
            self._renewed = now
        if held != self.held:
            log.warning("%s lost shard(s) %s", self.id, sorted(self.held - held))
        # One shard: the share is 1 however many are live, so nobody needs to count them.
        live = self.roster.beat() if self.shards > 1 else 1
        share = fair_share(self.shards, live)
        free: list[int] = []
        if len(held) < share:  # room for more: which are free
            free = [k for k, ok in enumerate(free_leases(self.conn, [lease.name for lease in self.leases])) if ok]
        take, give = rebalance(held, free, share)
        if give:
            held -= set(give)
            self._set_held(held)  # stop reading them before another may
            for k in give:
                self.leases[k].release()
        acquired = {k for k in take if self.leases[k].acquire()}
        self._set_held(held | acquired)
        with self._taken_lock:  # after they count as held: the loop takes over only shards still held
            self._taken |= acquired
        if acquired:
            if not mine:
                self._renewed = now  # an acquisition sets a full TTL: the next renewal is a quarter TTL on
            self._acquired.set()

    def _take_over(self) -> None:
        """Claim what predecessors left on the shards acquired since the last look: every acquisition,
        even of a shard this orchestrator held before (another may have held it in between)."""
        with self._taken_lock:
            taken, self._taken = self._taken, set()
        shards = taken & self.held
        if not shards:
            return
        try:
            self._claim(shards)
        except BaseException:
            with self._taken_lock:
                self._taken |= shards  # again on the next turn
            raise

    def _claim(self, shards: set[int]) -> None:
        self.stream.ensure_group(sorted(shards))
        # Entries read by a predecessor and never acknowledged are ours now.
        for k in sorted(shards):
            self._handle(self.stream.claim_stale(self.id, min_idle_ms=0, shard=k))
        if 0 in shards:
            self._maintain(self.maintenance.reconcile)

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
        self._check_partition(entries)
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
        self.stream.ack_entries(entries)

    def _check_partition(self, entries: list[Entry]) -> None:
        """A job on another shard's stream: a producer runs with another AGENTBUS_SHARDS. The job is
        advanced anyway (safe, compare-and-set), but say so once: the roles must agree on K."""
        if self._foreign_warned:
            return
        for e in entries:
            stray = [j for j in e.event.job_ids if shard_of(j, self.shards) != e.shard]
            if stray:
                self._foreign_warned = True
                log.warning(
                    "job %s arrived on shard %d's stream, not its own (%d of %d): "
                    "does every role run with AGENTBUS_SHARDS=%d?",
                    stray[0],
                    e.shard,
                    shard_of(stray[0], self.shards),
                    self.shards,
                    self.shards,
                )
                return

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
        leases = threading.Thread(target=self._keep_leases, name="lease", daemon=True)
        leases.start()
        threading.Thread(target=self._send_webhooks, name="webhooks", daemon=True).start()
        next_timers = next_reconcile = next_sweep = 0.0
        next_purge = time.monotonic() + self.settings.reconcile_interval_s
        while not self.stop.is_set():
            try:
                if not self._app_schedules_kept:  # at the start, and again until the database answers
                    self.scheduler.keep_app_schedules()
                    self._app_schedules_kept = True
                self._take_over()
                held = self.held
                if not held:
                    self._acquired.wait(min(1.0, self.settings.lease_ttl_s / 5))
                    self._acquired.clear()
                    continue
                # a fan-out being built in parts: poll, do not block, between its parts
                block_ms = 1 if self.driver.resuming else 100
                self._handle(self.stream.read(self.id, count=1000, block_ms=block_ms, shards=sorted(held)))
                for job_id in self.driver.take_resumable():
                    self._advance(job_id, resume=True)
                if 0 not in held:
                    continue
                now = time.monotonic()
                if now >= next_timers:
                    self._maintain(self.maintenance.timers)
                    next_timers = now + self.settings.timer_interval_s
                if now >= next_sweep:
                    self._maintain(self.scheduler.sweep)
                    next_sweep = now + SWEEP_S
                if now >= next_reconcile:
                    self._maintain(self.maintenance.reconcile)
                    self._maintain(self.maintenance.reap)
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
        leases.join(5)  # no renewal after the release below
        self._leave()

    def _leave(self) -> None:
        """Hand the shards back at once (a standby need not wait for the TTL)."""
        held = self.held
        self._set_held(set())
        try:
            for k in held:
                self.leases[k].release()
            if self.shards > 1:
                self.roster.leave()
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
        """Ready when Redis and PostgreSQL answer: holding shards, or a healthy standby."""
        checks = probe({"redis": lambda: ping(conn), "postgresql": lambda: _ping_store(repos.jobs)})
        ok = all(v == "ok" for v in checks.values())
        held = sorted(orch.held)
        lease = "held" if held else "standby"
        return Readiness(ok, {"lease": lease, "shards": held, "of": orch.shards, "id": orch.id, "checks": checks})

    server = MetricsServer(settings.metrics_port, readiness=readiness).start()

    def _stop(signum: int, frame: object) -> None:
        orch.stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    log.warning("orchestrator %s started over %d shard(s) (standby until it holds one)", orch.id, orch.shards)
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
