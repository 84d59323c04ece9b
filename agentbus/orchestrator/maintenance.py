"""Timers, the reconciler and the reaper: what makes the bus lose nothing.

* timers: retries whose backoff has passed go back to their queue; ``ctx.sleep`` steps fire;
  approvals past their deadline get their ``on_timeout`` policy, and ``ctx.wait_for`` waits past
  theirs fail with ``SignalTimeout`` (stored in PostgreSQL, so a deadline fires once across
  restarts and failovers).
* reconciler (outbox): jobs whose ``job.submitted`` or ``job.advance`` message was lost, signals
  kept for an open wait that nobody handed over,
  and queued tasks whose RQ message is gone (a FLUSHALL, a crashed dispatch) are re-emitted.
* reaper: running tasks of a worker that stopped heartbeating go back to a queue under a new
  attempt (a late result of the old attempt is discarded), so do running tasks that a live
  worker's heartbeats have stopped listing (it lost them: a failed write, a bug) for
  ``orphan_grace_s``, and calls that overran their timeout are failed.
* retention: finished jobs older than ``AGENTBUS_RETENTION`` go, with everything that hangs off
  them, a batch at a time (``store/retention.py``; the rule is ``domain/retention.py``).

All of it spans the deployment, whatever ``AGENTBUS_SHARDS``: it runs in the orchestrator that
holds shard 0 (``service.py``), whose ``advance`` hands a job of a shard held elsewhere to that
shard's holder as a ``job.advance`` event instead of advancing it here.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Callable, Iterable

from agentbus.bus.routing import BUILD_SEP
from agentbus.config import Settings
from agentbus.domain import ErrorInfo, JobState, TaskState
from agentbus.domain.messages import Heartbeat
from agentbus.domain.retention import cutoff as retention_cutoff
from agentbus.domain.retry import after_failure
from agentbus.observability import metrics
from agentbus.orchestrator.admission import Admission
from agentbus.orchestrator.ports import Approvals, Jobs, Purger, Queues, Signals, Steps, Timers, Workers
from agentbus.store import PurgeCounts, StepRow, TaskOutcome

log = logging.getLogger("agentbus.orchestrator")

_RQ_DONE = {"finished", "failed", "stopped", "canceled"}


class Maintenance:
    def __init__(
        self,
        settings: Settings,
        *,
        jobs: Jobs,
        steps: Steps,
        approvals: Approvals,
        signals: Signals,
        queues: Queues,
        workers: Workers,
        retention: Purger,
        due: Timers,
        admission: Admission,
        advance: Callable[[str], None],
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.jobs = jobs
        self.steps = steps
        self.approvals = approvals
        self.signals = signals
        self.queues = queues
        self.fleet = workers
        self.retention = retention
        self.due = due
        self.admission = admission
        self.advance = advance
        """Replays a job whose steps moved (``Driver.advance``)."""
        self.clock = clock
        self._missing_since: dict[str, float] = {}
        self._known: dict[str, Heartbeat] = {}
        self._unlisted_since: dict[tuple[str, int], float] = {}

    def timers(self) -> None:
        now = self.clock()
        due = self.due.due(now)  # one statement; a pass with nothing due is skipped
        if due.retries and (retrying := self.steps.tasks_in_state(TaskState.RETRYING, due_before=now)):
            self.admission.redispatch(retrying, [TaskState.RETRYING], new_attempt=True)
        if due.sleeps:
            for job_id in self.steps.fire_timers(now):
                self.advance(job_id)
        if due.approvals:
            expired = self.approvals.expire_due(now)
            metrics.approvals_expired(len(expired))
            for job_id in expired:
                self.advance(job_id)
        if due.signals:
            for job_id in self.signals.expire_due(now):
                self.advance(job_id)
        if due.pending:
            self.admission.dispatch_pending()

    def purge(self) -> PurgeCounts:
        """One batch of what is old enough to delete; the loop calls again soon while a batch came back full."""
        if self.settings.retention_s <= 0:
            return PurgeCounts()
        now = self.clock()
        before = retention_cutoff(now, self.settings.retention_s)
        got = self.retention.purge_batch(before, now, self.settings.retention_batch)
        if got.total:
            log.info("retention: deleted %s", got)
        return got

    def reconcile(self) -> None:
        cutoff = self.clock() - self.settings.reconcile_after_s
        stuck = self.jobs.jobs_older_than([JobState.SUBMITTED, JobState.RUNNING], cutoff)
        metrics.reconciled("job_advanced", len(stuck))
        for job_id in stuck:
            self.advance(job_id)
        for job_id in self.signals.deliver_waiting():
            self.advance(job_id)
        for child_id in self.steps.unsettled_children(cutoff):  # advancing a finished child settles its parent
            self.advance(child_id)
        self.steps.sweep_orphans()
        stale = self.steps.tasks_in_state(TaskState.QUEUED, older_than=cutoff, limit=20_000)
        if not stale:
            return
        statuses = self.queues.statuses([r.dispatch_id or "" for r in stale])
        lost_workers = {w for (st, w) in statuses.values() if st == "started" and w}
        alive = self.fleet.alive(sorted(lost_workers))
        lost = []
        for r in stale:
            status, worker = statuses.get(r.dispatch_id or "", (None, None))
            if status is None or status in _RQ_DONE or (status == "started" and not alive.get(worker or "", False)):
                lost.append(r)
            elif (
                status == "queued"
                and BUILD_SEP in (r.queue or "")
                and not self.admission.router.listening(r.queue or "")
            ):
                lost.append(r)  # in the queue of a build none of whose workers is live any more: routed afresh
        if lost:
            n = self.admission.redispatch(lost, [TaskState.QUEUED], new_attempt=False)
            metrics.reconciled("call_redispatched", n)
            log.warning("re-dispatched %d queued tasks whose queue message was lost", n)

    def _watch_fleet(self) -> dict[str, Heartbeat]:
        """A worker seen last time and gone now is marked lost (its calls are the reaper's)."""
        live = {h.id: h for h in self.fleet.heartbeats()}
        for worker_id, hb in self._known.items():
            if worker_id not in live and not hb.draining:
                self.fleet.mark_lost(worker_id, hb.to_dict())
                metrics.reaped("worker_lost")
                log.warning("worker %s went silent: marked lost", worker_id)
        self._known = live
        return live

    def reap(self) -> None:
        live = self._watch_fleet()
        now = self.clock()
        running = self.steps.tasks_in_state(TaskState.RUNNING, limit=20_000)
        by_worker = defaultdict(list)
        for r in running:
            by_worker[r.worker or ""].append(r)
        alive = self.fleet.alive([w for w in by_worker if w])
        lost = []
        for worker, rows in by_worker.items():
            if alive.get(worker, False):
                self._missing_since.pop(worker, None)
                hb = live.get(worker)
                if hb is not None:
                    lost.extend(self._unlisted(hb, rows, now))
                continue
            first = self._missing_since.setdefault(worker, now)
            # Missing twice, a heartbeat interval apart: not just a flushed key being rewritten.
            if now - first >= 2 * self.settings.heartbeat_interval_s:
                lost.extend(rows)
        for worker in [w for w in self._missing_since if w not in by_worker]:
            del self._missing_since[worker]
        still = {(r.id, r.attempt) for r in running}
        for key in [k for k in self._unlisted_since if k not in still]:
            del self._unlisted_since[key]
        if lost:
            n = self.admission.redispatch(lost, [TaskState.RUNNING], new_attempt=True)
            metrics.reaped("call_recovered", n)
            log.warning("recovered %d tasks from lost workers", n)
        self._enforce_timeouts(live.values(), now)

    def _unlisted(self, hb: Heartbeat, rows: list[StepRow], now: float) -> list[StepRow]:
        """Running calls of a live worker that its heartbeats no longer list, for ``orphan_grace_s``:
        the worker lost them (issue 17.4), so they run again under a new attempt."""
        listed = {c.task_id for c in hb.calls}
        grace = self.settings.orphan_grace_s
        out = []
        for r in rows:
            key = (r.id, r.attempt)
            if r.id in listed or (r.started_at or now) > now - grace:
                self._unlisted_since.pop(key, None)
                continue
            first = self._unlisted_since.setdefault(key, now)
            # unlisted in a heartbeat written after we first noticed, and for the whole grace
            if hb.seen > first and now - first >= grace:
                out.append(r)
        if out:
            log.warning("worker %s is live but no longer lists %d running calls: running them again", hb.id, len(out))
        return out

    def _enforce_timeouts(self, workers: Iterable[Heartbeat], now: float) -> None:
        for w in workers:
            for cur in w.calls:
                if cur.started is None:
                    continue  # waiting there for a slot: its clock has not started
                overrun = now - cur.started - cur.timeout
                if overrun < self.settings.timeout_grace_s:
                    continue
                err = ErrorInfo("TaskTimeout", f"task ran past its timeout of {cur.timeout}s")
                then = after_failure(cur.attempt, cur.retries, cur.backoff, now)
                out = TaskOutcome(cur.task_id, cur.attempt, then.state, error=err, not_before=then.not_before)
                if self.steps.record_outcomes([out]):
                    metrics.reaped("call_timed_out")
                    self.queues.cancel_call(w.id, cur.task_id)
                    self.advance(cur.job_id)
