"""Advancing jobs: replay each, record what it did, then send what it asks for.

The parts it drives: ``Planner`` (replay and plan, ``plan.py``), ``Sender`` (dispatches,
``dispatch.py``), ``Admission`` (calls that wait, ``admission.py``), ``Canceller``
(``cancel.py``). Every write is a compare-and-set in the record first; what goes to Redis
(calls, children's events, outputs, notices) follows only a replay that counted.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

from agentbus.domain import (
    App,
    ConfigError,
    ControlEvent,
    Emitted,
    ErrorInfo,
    JobState,
    NotFound,
    TaskState,
    Unavailable,
)
from agentbus.domain.app import JobType
from agentbus.domain.messages import JobEnd
from agentbus.domain.output import Output
from agentbus.domain.replay import StepRecord
from agentbus.domain.states import JOB_NOT_DUE
from agentbus.observability import bind, metrics, tracing
from agentbus.orchestrator.admission import Admission
from agentbus.orchestrator.cancel import Canceller
from agentbus.orchestrator.dispatch import Sender
from agentbus.orchestrator.plan import Call, Planner, outcome_of, simple
from agentbus.orchestrator.ports import Events, Jobs, Notices, Outputs, Steps
from agentbus.store import JobRecord, Replayed

log = logging.getLogger("agentbus.orchestrator")

_STEP_OF_CHILD = {
    JobState.SUCCEEDED: TaskState.SUCCEEDED,
    JobState.FAILED: TaskState.FAILED,
    JobState.CANCELLED: TaskState.CANCELLED,
}


class Driver:
    def __init__(
        self,
        app: App,
        *,
        jobs: Jobs,
        steps: Steps,
        events: Events,
        notices: Notices,
        outputs: Outputs,
        planner: Planner,
        sender: Sender,
        admission: Admission,
        canceller: Canceller,
    ) -> None:
        self.app = app
        self.jobs = jobs
        self.steps = steps
        self.events = events
        self.notices = notices
        self.outputs = outputs
        self.planner = planner
        self.sender = sender
        self.admission = admission
        self.canceller = canceller
        self._resumable: dict[str, None] = {}
        """Jobs whose last replay spent its budget of new calls: replayed again after the next events."""

    def cancel(self, job_id: str) -> None:
        self.canceller.cancel(job_id)

    def advance(self, job_id: str, *, resume: bool = False) -> None:
        """Replay the job once its open steps have finished (``resume``: now, to build more of a fan-out)."""
        try:
            job, waiting, journal = self.jobs.job_to_replay(job_id, resume=resume)
        except NotFound:
            log.warning("event for unknown job %s dropped", job_id)
            return
        bind(tenant=job.tenant)
        if job.state.terminal:
            self._ended(job, waiting)
            return
        if job.state in JOB_NOT_DUE:  # the due-job sweep submits it when its time comes
            return
        if waiting and not resume:  # not waiting: no step open, or a wait_any may be over (``early``)
            return
        try:
            job_type = self.app.job_type(job.type)
        except NotFound as exc:
            self._fail(job, ErrorInfo("NotFound", str(exc)))
            return
        if journal is None:  # the store reads it with the job whenever the job is replayed here; this is a fallback
            journal = self.steps.load_journal(job_id)
        res = self.planner.replay(job, job_type, journal)
        try:
            plan = self.planner.plan(job, res.commands)
        except ConfigError as exc:  # e.g. a concurrency_key its arguments cannot fill
            self._fail(job, ErrorInfo("ConfigError", str(exc)))
            return
        outcome, result, error = outcome_of(res)
        bundled = self.sender.bundle(plan.calls, {job_id: tracing.current()})  # each call's span: the replay's child
        for child in plan.children:
            self.jobs.create_job(child)
            metrics.job_submitted(child.type)
        steps = [*plan.steps, *bundled.steps[job_id]]
        if not self.steps.record_replay(
            job_id, steps, outcome, result=result, error=error, asks=plan.asks, early=res.early
        ):
            return
        if outcome is not None and res.unfinished:  # steps the agent started and never waited for end with it
            self.cancel(job_id)
        if res.outputs:  # after the record: a replay that did not count sends nothing (at most once)
            self._send_outputs(job_id, job.type, res.outputs)
        if plan.children:
            self.events.publish([ControlEvent("job.submitted", tuple(c.id for c in plan.children if c.id))])
        self.sender.send(bundled)
        if res.more:
            self._resumable[job_id] = None
        if plan.parks:
            self.admission.dispatch_pending()
        self._moved([(job, Replayed(job_id, steps, outcome, result, error))])
        if outcome is None and any(st.kind == "signal" for st in plan.steps):
            self.advance(job_id)  # a signal kept for a new wait was handed to it as the replay was recorded

    def advance_many(self, job_ids: Sequence[str]) -> list[str]:
        """Advance every job named in one read of the stream with a few statements in all.

        The jobs and their journals are read at once, every replay that only adds steps and
        moves its job is written in one transaction (compare-and-set per job, as ``advance``),
        and new calls of different jobs bound for the same queue share dispatches. A job whose
        replay needs more (children, questions for people, a routing error) is returned: the
        caller advances each of those alone (``advance``).
        """
        if len(job_ids) < 2:
            return list(job_ids)
        found = self.jobs.jobs_to_replay(job_ids)  # with the journals of the jobs to replay
        for job_id in job_ids:
            if job_id not in found:
                log.warning("event for unknown job %s dropped", job_id)
        ready: list[tuple[JobRecord, JobType, dict[int, StepRecord]]] = []
        alone: list[JobRecord] = []  # advanced one by one
        for job, waiting, journal in found.values():
            if job.state.terminal:
                self._ended(job, waiting)
            elif job.state in JOB_NOT_DUE:
                continue
            elif not waiting:  # (an early job is replayed here, then advanced alone: where its flag is kept)
                try:
                    job_type = self.app.job_type(job.type)
                    ready.append((job, job_type, self.steps.load_journal(job.id) if journal is None else journal))
                except NotFound:
                    alone.append(job)
        replays: dict[str, tuple[JobRecord, Replayed]] = {}
        calls: dict[str, list[Call]] = defaultdict(list)
        more: list[str] = []  # fan-outs built in parts: replayed again soon (see advance)
        traces: dict[str, str | None] = {}
        outputs: dict[str, tuple[Emitted, ...]] = {}
        parked: list[str] = []  # jobs with calls that wait as pending
        for job, job_type, journal in ready:
            with metrics.replay_timer(), tracing.advancing(job.id):
                res = self.planner.replay(job, job_type, journal)
                traces[job.id] = tracing.current()  # the replay's span: each call's span will be its child
            if res.early or res.unfinished or not simple(res.commands):
                alone.append(job)
                continue
            try:
                plan = self.planner.plan(job, res.commands)
            except ConfigError:
                alone.append(job)
                continue
            if res.more:
                more.append(job.id)
            if plan.parks:
                parked.append(job.id)
            for queue, items in plan.calls.items():
                calls[queue] += items
            replays[job.id] = (job, Replayed(job.id, plan.steps, *outcome_of(res)))
            if res.outputs:
                outputs[job.id] = res.outputs
        bundled = self.sender.bundle(calls, traces, spread=True)
        written = [
            (job, Replayed(r.job_id, [*r.steps, *bundled.steps.get(r.job_id, [])], r.outcome, r.result, r.error))
            for job, r in replays.values()
        ]
        moved = self.steps.record_replays([r for _, r in written])
        self._resumable.update((j, None) for j in more if j in moved)
        for job_id, emitted in outputs.items():  # after the record: a replay that did not count sends nothing
            if job_id in moved:
                self._send_outputs(job_id, replays[job_id][0].type, emitted)
        self.sender.send(bundled, moved)
        if any(j in moved for j in parked):
            self.admission.dispatch_pending()
        self._moved([(job, r) for job, r in written if r.job_id in moved])
        return [job.id for job in alone]

    def take_resumable(self) -> list[str]:
        """The jobs to ``advance(job_id, resume=True)`` next. Nothing is lost if that never happens (a
        crash): such a job is replayed anyway once the calls already sent have finished."""
        jobs, self._resumable = list(self._resumable), {}
        return jobs

    @property
    def resuming(self) -> bool:
        return bool(self._resumable)

    # -- endings ---------------------------------------------------------------------------------
    def _fail(self, job: JobRecord, error: ErrorInfo) -> None:
        """A job that cannot be replayed at all (unknown type, a bad concurrency key) fails."""
        if self.steps.record_replay(job.id, [], JobState.FAILED, error=error):
            self._moved([(job, Replayed(job.id, [], JobState.FAILED, None, error))])

    def _moved(self, done: Sequence[tuple[JobRecord, Replayed]]) -> None:
        """After replays that counted: wake the jobs' waiters, settle the parents of those that ended."""
        finished = [(job, r.outcome, r) for job, r in done if r.outcome is not None]
        for job, outcome, _ in finished:
            metrics.job_finished(job.type, outcome.value)
        going = [job.id for job, r in done if r.outcome is None]  # wakes the jobs' event streams (api/events.py)
        if finished or going:
            ends = [JobEnd(job.id, job.tenant, state, r.result, r.error) for job, state, r in finished]
            self.notices.notify(ends, going)
        for job, outcome, r in finished:
            if job.parent_id is not None and job.parent_seq is not None:
                self._settle_parent(job.parent_id, job.parent_seq, outcome, r.result, r.error)

    def _ended(self, job: JobRecord, waiting: bool) -> None:
        """An event for a finished job: cancel what it left open, and settle its parent's call of it.

        The parent is settled again here (a compare-and-set: a no-op once done) because the
        orchestrator that recorded the child's end may have stopped before it settled the parent;
        the entry it never acknowledged comes back to the shard's next holder, and the reconciler
        sends the ones it finds (``Steps.unsettled_children``).
        """
        if job.state == JobState.CANCELLED and waiting:
            self.cancel(job.id)
        if job.parent_id is not None and job.parent_seq is not None:
            self._settle_parent(job.parent_id, job.parent_seq, job.state, job.result, job.error)

    def _settle_parent(self, parent_id: str, seq: int, state: JobState, result: Any, error: ErrorInfo | None) -> None:
        if self.steps.settle_child_step(parent_id, seq, _STEP_OF_CHILD[state], result, error):
            self.advance(parent_id)

    def _send_outputs(self, job_id: str, name: str, emitted: Sequence[Emitted]) -> None:
        """An agent's new ``ctx.emit``s (task id: the job's own id); lost with a warning if Redis is away."""
        now = time.time()
        try:
            self.outputs.append([Output(job_id, job_id, name, 1, e.seq, e.data_json, now) for e in emitted])
        except Unavailable as exc:
            log.warning("dropped %d outputs of job %s: %s", len(emitted), job_id, exc)
