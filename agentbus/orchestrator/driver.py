"""Advancing a job: replay its agent, record what it did, dispatch what it asks for."""

from __future__ import annotations

import json
import logging
import math
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from agentbus.bus import ControlStream, Dispatcher, Fleet, JobNotifier, OutputStream, queue_name
from agentbus.config import Settings
from agentbus.domain import (
    App,
    AskHuman,
    ConfigError,
    ControlEvent,
    Dispatch,
    Emitted,
    ErrorInfo,
    JobState,
    NotFound,
    RecordValue,
    ScheduleTask,
    StartChild,
    StartTimer,
    TaskCall,
    TaskOptions,
    TaskState,
    Unavailable,
    replay,
)
from agentbus.domain.messages import Heartbeat
from agentbus.domain.output import Output
from agentbus.observability import bind, metrics, tracing
from agentbus.orchestrator.router import Route, route
from agentbus.store import Approvals, JobRecord, Jobs, NewJob, NewStep, Replayed, StepRow, Steps, step_id

log = logging.getLogger("agentbus.orchestrator")


def _hex_uuid() -> str:
    return uuid.uuid4().hex


def new_dispatch_id() -> str:
    return "d" + uuid.uuid4().hex


@dataclass
class _Bundled:
    """Dispatches by queue, and the queued steps they carry by job."""

    by_queue: dict[str, list[Dispatch]] = field(default_factory=dict)
    steps: defaultdict[str, list[NewStep]] = field(default_factory=lambda: defaultdict(list))


class Driver:
    def __init__(
        self,
        app: App,
        jobs: Jobs,
        steps: Steps,
        approvals: Approvals,
        dispatcher: Dispatcher,
        stream: ControlStream,
        fleet: Fleet,
        settings: Settings,
    ) -> None:
        self.app = app
        self.jobs = jobs
        self.steps = steps
        self.approvals = approvals
        self.dispatcher = dispatcher
        self.stream = stream
        self.fleet = fleet
        self.settings = settings
        self.notifier = JobNotifier(dispatcher.conn)
        self.outputs = OutputStream(dispatcher.conn, settings.output_buffer, settings.output_ttl_s)
        self._fleet_cache: tuple[float, list[Heartbeat]] = (0.0, [])
        self._resumable: dict[str, None] = {}
        """Jobs whose last replay spent its budget of new calls: replayed again after the next events."""

    # -- replay --------------------------------------------------------------------------------
    def advance(self, job_id: str, *, resume: bool = False) -> None:
        """Replay the job once its open steps have finished (``resume``: now, to build more of a fan-out)."""
        try:
            job, waiting = self.jobs.job_to_advance(job_id)
        except NotFound:
            log.warning("event for unknown job %s dropped", job_id)
            return
        bind(tenant=job.tenant)
        if job.state.terminal:
            if job.state == JobState.CANCELLED and waiting:
                self.cancel(job_id)
            return
        if waiting and not resume:
            return
        try:
            job_type = self.app.job_type(job.type)
        except NotFound as exc:
            err = ErrorInfo("NotFound", str(exc))
            self._finish(job_id, job.parent_id, job.parent_seq, JobState.FAILED, None, err, job.type)
            return
        journal = self.steps.load_journal(job_id)
        # The cap is enforced inside the replay, step by step: a job asking for millions of calls
        # fails at the first one past the cap instead of holding this loop (and every other
        # tenant's job) while its whole fan-out is built. A fan-out under the cap is built a
        # budget of calls at a time, with other jobs' events handled in between.
        s = self.settings
        res = replay(
            self.app,
            job_type,
            job.input,
            journal,
            job_id=job_id,
            clock=time.time,
            new_uuid=_hex_uuid,
            max_steps=s.max_tasks_per_job,
            max_new_calls=s.max_calls_per_replay,
            max_output_bytes=s.output_max_bytes,
        )
        try:
            steps, dispatches, children = self._plan(job_id, job.priority, res.commands, job.tenant)
        except ConfigError as exc:  # e.g. a concurrency_key its arguments cannot fill
            err = ErrorInfo("ConfigError", str(exc))
            self._finish(job_id, job.parent_id, job.parent_seq, JobState.FAILED, None, err, job.type)
            return
        asks = [(c.seq, c.request) for c in res.commands if isinstance(c, AskHuman)]
        outcome: JobState | None = None
        result, error = res.result, res.error
        if res.status == "completed":
            try:
                json.dumps(result)
                outcome = JobState.SUCCEEDED
            except (TypeError, ValueError) as exc:
                outcome, result, error = JobState.FAILED, None, ErrorInfo("TypeError", f"result is not JSON: {exc}")
        elif res.status == "failed":
            outcome = JobState.FAILED
        for child in children:
            self.jobs.create_job(child)
            metrics.job_submitted(child.type)
        if not self.steps.record_replay(job_id, steps, outcome, result=result, error=error, asks=asks):
            return
        if outcome is not None:
            metrics.job_finished(job.type, outcome.value)
        if res.outputs:  # after the record: a replay that did not count sends nothing (at most once)
            self._send_outputs(job_id, job.type, res.outputs)
        if children:
            self.stream.publish([ControlEvent("job.submitted", tuple(c.id for c in children if c.id))])
        for queue, batch in dispatches.items():
            self.dispatcher.send(queue, batch)
        if res.more:
            self._resumable[job_id] = None
        if any(st.state == TaskState.PENDING and st.kind == "task" for st in steps):
            self.dispatch_pending()
        if outcome is not None:
            self.notifier.finished([job_id])
            if job.parent_id is not None and job.parent_seq is not None:
                self._settle_parent(job.parent_id, job.parent_seq, outcome, result, error)
        else:
            self.notifier.changed([job_id])  # wakes the job's event streams (api/events.py)

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
        found = self.jobs.jobs_to_advance(job_ids)
        for job_id in job_ids:
            if job_id not in found:
                log.warning("event for unknown job %s dropped", job_id)
        ready: list[JobRecord] = []
        alone: list[JobRecord] = []  # advanced one by one
        types: dict[str, Any] = {}
        for job, waiting in found.values():
            if job.state.terminal:
                if job.state == JobState.CANCELLED and waiting:
                    self.cancel(job.id)
            elif not waiting:
                try:
                    types[job.id] = self.app.job_type(job.type)
                    ready.append(job)
                except NotFound:
                    alone.append(job)
        journals = self.steps.load_journals([j.id for j in ready])
        replays: list[Replayed] = []
        calls: dict[str, list[tuple[str, int, ScheduleTask, str]]] = defaultdict(list)
        parents: dict[str, JobRecord] = {}
        s = self.settings
        more: list[str] = []  # fan-outs built in parts: replayed again soon (see advance)
        traces: dict[str, str | None] = {}
        outputs: dict[str, Any] = {}
        for job in ready:
            journal = journals[job.id]
            with metrics.replay_timer(), tracing.advancing(job.id):
                res = replay(
                    self.app,
                    types[job.id],
                    job.input,
                    journal,
                    job_id=job.id,
                    clock=time.time,
                    new_uuid=_hex_uuid,
                    max_steps=s.max_tasks_per_job,
                    max_new_calls=s.max_calls_per_replay,
                    max_output_bytes=s.output_max_bytes,
                )
                traces[job.id] = tracing.current()  # the replay's span: each call's span will be its child
            if not all(isinstance(c, ScheduleTask | RecordValue | StartTimer) for c in res.commands):
                alone.append(job)
                continue
            if res.more:
                more.append(job.id)
            try:
                steps, queued = self._plan_steps(job.id, job.priority, res.commands)
            except ConfigError:
                alone.append(job)
                continue
            for queue, items in queued.items():
                calls[queue] += [(job.id, job.priority, c, reason) for c, reason in items]
            outcome, result, error = self._outcome_of(res)
            replays.append(Replayed(job.id, steps, outcome, result, error))
            parents[job.id] = job
            if res.outputs:
                outputs[job.id] = res.outputs
        dispatches = self._bundle(calls, traces)
        moved = self.steps.record_replays(
            [
                Replayed(r.job_id, [*r.steps, *dispatches.steps.get(r.job_id, [])], r.outcome, r.result, r.error)
                for r in replays
            ]
        )
        self._resumable.update((j, None) for j in more if j in moved)
        for job_id, emitted in outputs.items():  # after the record: a replay that did not count sends nothing
            if job_id in moved:
                self._send_outputs(job_id, parents[job_id].type, emitted)
        for queue, batch in dispatches.by_queue.items():
            kept = [Dispatch(d.dispatch_id, tuple(c for c in d.calls if c.job_id in moved)) for d in batch]
            self.dispatcher.send(queue, [d for d in kept if d.calls])
        if any(
            st.state == TaskState.PENDING and st.kind == "task" for r in replays if r.job_id in moved for st in r.steps
        ):
            self.dispatch_pending()
        finished = [r for r in replays if r.job_id in moved and r.outcome is not None]
        for r in finished:
            metrics.job_finished(parents[r.job_id].type, r.outcome.value if r.outcome else "")
        if finished:
            self.notifier.finished([r.job_id for r in finished])
        going = [r.job_id for r in replays if r.job_id in moved and r.outcome is None]
        if going:
            self.notifier.changed(going)  # wakes the jobs' event streams (api/events.py)
        for r in finished:
            job = parents[r.job_id]
            if job.parent_id is not None and job.parent_seq is not None and r.outcome is not None:
                self._settle_parent(job.parent_id, job.parent_seq, r.outcome, r.result, r.error)
        return [job.id for job in alone]

    @staticmethod
    def _outcome_of(res: Any) -> tuple[JobState | None, Any, ErrorInfo | None]:
        result, error = res.result, res.error
        if res.status == "completed":
            try:
                json.dumps(result)
                return JobState.SUCCEEDED, result, error
            except (TypeError, ValueError) as exc:
                return JobState.FAILED, None, ErrorInfo("TypeError", f"result is not JSON: {exc}")
        if res.status == "failed":
            return JobState.FAILED, result, error
        return None, result, error

    def _plan_steps(
        self, job_id: str, priority: int, commands: Sequence[Any]
    ) -> tuple[list[NewStep], dict[str, list[tuple[ScheduleTask, str]]]]:
        """A simple replay's steps, and its calls that can go to a queue now (by queue)."""
        steps: list[NewStep] = []
        by_queue: dict[str, list[tuple[ScheduleTask, str]]] = defaultdict(list)
        for cmd in commands:
            self._place(job_id, priority, cmd, steps, by_queue)
        return steps, by_queue

    def _place(
        self,
        job_id: str,
        priority: int,
        cmd: Any,
        steps: list[NewStep],
        by_queue: dict[str, list[tuple[ScheduleTask, str]]],
    ) -> bool:
        """A task call, a timer or a recorded value: its step (or its queue); False for other commands."""
        if isinstance(cmd, ScheduleTask):
            o = cmd.task.options
            key = o.concurrency_for(cmd.args)
            r = self._route(o, priority)
            if r.queue is None or key is not None:
                reason = r.reason if r.queue is None else "waiting for a concurrency slot"
                steps.append(
                    NewStep(
                        job_id,
                        cmd.seq,
                        "task",
                        cmd.task.name,
                        TaskState.PENDING,
                        args=cmd.args,
                        retries=o.retries,
                        timeout=o.timeout,
                        backoff=o.backoff,
                        queue=r.queue,
                        priority=priority,
                        concurrency_key=key,
                        route_reason=reason,
                    )
                )
            else:
                by_queue[r.queue].append((cmd, r.reason))
        elif isinstance(cmd, StartTimer):
            steps.append(NewStep(job_id, cmd.seq, "sleep", "sleep", TaskState.PENDING, not_before=cmd.fire_at))
        elif isinstance(cmd, RecordValue):
            steps.append(NewStep(job_id, cmd.seq, "value", cmd.name, TaskState.SUCCEEDED, result=cmd.value))
        else:
            return False
        return True

    def _bundle(
        self, calls: dict[str, list[tuple[str, int, ScheduleTask, str]]], traces: dict[str, str | None]
    ) -> _Bundled:
        """Calls of many jobs bound for one queue, in dispatches spread over that queue's workers."""
        out = _Bundled()
        for queue, items in calls.items():
            workers = sum(1 for hb in self._workers() if queue in hb.queues or queue_name(queue) in hb.queues)
            size = items[0][2].task.options.chunk or max(
                self._chunk_size(len(items)), math.ceil(len(items) / max(1, workers))
            )
            size = min(size, self.settings.dispatch_chunk)
            batch: list[Dispatch] = []
            for i in range(0, len(items), size):
                did = new_dispatch_id()
                tcs = []
                for job_id, priority, c, reason in items[i : i + size]:
                    o = c.task.options
                    out.steps[job_id].append(
                        NewStep(
                            job_id,
                            c.seq,
                            "task",
                            c.task.name,
                            TaskState.QUEUED,
                            args=c.args,
                            retries=o.retries,
                            timeout=o.timeout,
                            backoff=o.backoff,
                            queue=queue,
                            dispatch_id=did,
                            priority=priority,
                            route_reason=reason,
                        )
                    )
                    tcs.append(
                        TaskCall(
                            step_id(job_id, c.seq),
                            job_id,
                            c.task.name,
                            c.args,
                            1,
                            o.retries,
                            o.timeout,
                            o.backoff,
                            trace=traces.get(job_id),
                        )
                    )
                batch.append(Dispatch(did, tuple(tcs)))
            out.by_queue[queue] = batch
        return out

    def take_resumable(self) -> list[str]:
        """The jobs to ``advance(job_id, resume=True)`` next. Nothing is lost if that never happens (a
        crash): such a job is replayed anyway once the calls already sent have finished."""
        jobs, self._resumable = list(self._resumable), {}
        return jobs

    @property
    def resuming(self) -> bool:
        return bool(self._resumable)

    def _send_outputs(self, job_id: str, name: str, emitted: Sequence[Emitted]) -> None:
        """An agent's new ``ctx.emit``s (task id: the job's own id); lost with a warning if Redis is away."""
        now = time.time()
        try:
            self.outputs.append([Output(job_id, job_id, name, 1, e.seq, e.data_json, now) for e in emitted])
        except Unavailable as exc:
            log.warning("dropped %d outputs of job %s: %s", len(emitted), job_id, exc)

    def _plan(
        self, job_id: str, priority: int, commands: Sequence[Any], tenant: str = "default"
    ) -> tuple[list[NewStep], dict[str, list[Dispatch]], list[NewJob]]:
        steps: list[NewStep] = []
        children: list[NewJob] = []
        by_queue: dict[str, list[tuple[ScheduleTask, str]]] = defaultdict(list)
        for cmd in commands:
            if self._place(job_id, priority, cmd, steps, by_queue):
                continue
            if isinstance(cmd, StartChild):
                steps.append(NewStep(job_id, cmd.seq, "agent", cmd.agent, TaskState.RUNNING, args=cmd.input))
                children.append(
                    NewJob(
                        cmd.agent,
                        cmd.input,
                        priority=priority,
                        parent_id=job_id,
                        parent_seq=cmd.seq,
                        id=step_id(job_id, cmd.seq),
                        tenant=tenant,
                    )
                )
            elif isinstance(cmd, AskHuman):
                steps.append(
                    NewStep(job_id, cmd.seq, "human", "ask_human", TaskState.PENDING, args=cmd.request.to_dict())
                )
        dispatches: dict[str, list[Dispatch]] = {}
        traced = tracing.current()  # the replay's span: each call's span will be its child
        for queue, items in by_queue.items():
            size = items[0][0].task.options.chunk or self._chunk_size(len(items))
            batch: list[Dispatch] = []
            for i in range(0, len(items), size):
                did = new_dispatch_id()
                calls = []
                for c, reason in items[i : i + size]:
                    o = c.task.options
                    steps.append(
                        NewStep(
                            job_id,
                            c.seq,
                            "task",
                            c.task.name,
                            TaskState.QUEUED,
                            args=c.args,
                            retries=o.retries,
                            timeout=o.timeout,
                            backoff=o.backoff,
                            queue=queue,
                            dispatch_id=did,
                            priority=priority,
                            route_reason=reason,
                        )
                    )
                    calls.append(
                        TaskCall(
                            step_id(job_id, c.seq),
                            job_id,
                            c.task.name,
                            c.args,
                            1,
                            o.retries,
                            o.timeout,
                            o.backoff,
                            trace=traced,
                        )
                    )
                batch.append(Dispatch(did, tuple(calls)))
            dispatches[queue] = batch
        return steps, dispatches, children

    def _chunk_size(self, n: int) -> int:
        # Spread a fan-out over ~16 messages so every worker gets a share, batch it past that.
        return max(1, min(self.settings.dispatch_chunk, math.ceil(n / 16)))

    def _workers(self, fresh: bool = False) -> list[Heartbeat]:
        now = time.monotonic()
        if fresh or now - self._fleet_cache[0] > 1.0:
            self._fleet_cache = (now, self.fleet.heartbeats())
        return self._fleet_cache[1]

    def _route(self, options: TaskOptions, priority: int) -> Route:
        decided = route(options, self._workers(), priority)
        falling_back = options.device != "cpu" and not (decided.queue or "").startswith("gpu")
        if falling_back and time.monotonic() - self._fleet_cache[0] > 0.1:
            # make sure a GPU worker did not just appear (the fleet cache is up to 1 s old)
            decided = route(options, self._workers(fresh=True), priority)
        return decided

    # -- endings ---------------------------------------------------------------------------------
    def _finish(
        self,
        job_id: str,
        parent_id: str | None,
        parent_seq: int | None,
        state: JobState,
        result: Any,
        error: ErrorInfo | None,
        job_type: str = "unknown",
    ) -> None:
        if not self.steps.record_replay(job_id, [], state, result=result, error=error):
            return
        metrics.job_finished(job_type, state.value)
        if parent_id and parent_seq is not None:
            self._settle_parent(parent_id, parent_seq, state, result, error)

    def _settle_parent(self, parent_id: str, seq: int, state: JobState, result: Any, error: ErrorInfo | None) -> None:
        step_state = {
            JobState.SUCCEEDED: TaskState.SUCCEEDED,
            JobState.FAILED: TaskState.FAILED,
            JobState.CANCELLED: TaskState.CANCELLED,
        }[state]
        if self.steps.settle_child_step(parent_id, seq, step_state, result, error):
            self.advance(parent_id)

    def cancel(self, job_id: str) -> None:
        """Cancel a job's open steps and approvals, stop its running calls, cancel its children."""
        self.approvals.cancel_approvals(job_id)
        for row in self.steps.cancel_open_steps(job_id):
            if row.worker:
                self.dispatcher.cancel_call(row.worker, row.id)
        for child in self.jobs.children(job_id):
            try:
                self.jobs.cancel_job(child)
            except Exception:  # already finished: nothing to cancel
                continue
            self.cancel(child)

    # -- re-dispatch (retries, lost messages, lost workers) and pending tasks ---------------------
    def redispatch(self, rows: Sequence[StepRow], from_states: Sequence[TaskState], *, new_attempt: bool) -> int:
        """Send tasks again, routed afresh: one that cannot go anywhere now, or that needs a
        concurrency slot, waits as pending instead."""
        by_queue: dict[tuple[str, str], list[StepRow]] = defaultdict(list)
        parked: dict[str, list[str]] = defaultdict(list)
        for r in rows:
            td = self.app.tasks.get(r.name)
            if td is None:
                by_queue[(r.queue or "cpu", r.route_reason or "")].append(r)
                continue
            rt = self._route(td.options, r.priority)
            if rt.queue is None or r.concurrency_key is not None:
                parked[rt.reason if rt.queue is None else "waiting for a concurrency slot"].append(r.id)
            else:
                by_queue[(rt.queue, rt.reason)].append(r)
        for reason, ids in parked.items():
            self.steps.park(ids, from_states, reason, new_attempt=new_attempt)
        sent = self._send_rows(by_queue, from_states, new_attempt=new_attempt)
        if parked:
            self.dispatch_pending()
        return sent

    def _send_rows(
        self, by_queue: dict[tuple[str, str], list[StepRow]], from_states: Sequence[TaskState], *, new_attempt: bool
    ) -> int:
        sent = 0
        for (queue, reason), group in by_queue.items():
            size = self._chunk_size(len(group))
            batch = []
            for i in range(0, len(group), size):
                did = new_dispatch_id()
                moved = self.steps.requeue(
                    [r.id for r in group[i : i + size]],
                    from_states,
                    did,
                    new_attempt=new_attempt,
                    queue=queue,
                    reason=reason or None,
                )
                if moved:
                    batch.append(
                        Dispatch(
                            did,
                            tuple(
                                TaskCall(
                                    r.id,
                                    r.job_id,
                                    r.name,
                                    r.args,
                                    r.attempt,
                                    r.retries,
                                    r.timeout,
                                    r.backoff,
                                    trace=tracing.current() or tracing.for_job(r.job_id),
                                )
                                for r in moved
                            ),
                        )
                    )
                    sent += len(moved)
            self.dispatcher.send(queue, batch)
        return sent

    def dispatch_pending(self) -> int:
        """Dispatch pending tasks that can go now: a GPU worker appeared, a concurrency slot freed."""
        rows = self.steps.pending_tasks()
        if not rows:
            return 0
        used = self.steps.slots_used(sorted({r.concurrency_key for r in rows if r.concurrency_key}))
        by_queue: dict[tuple[str, str], list[StepRow]] = defaultdict(list)
        reasons: dict[str, list[str]] = defaultdict(list)
        for r in rows:
            td = self.app.tasks.get(r.name)
            if td is None:
                continue
            rt = self._route(td.options, r.priority)
            if rt.queue is None:
                if r.route_reason != rt.reason:
                    reasons[rt.reason].append(r.id)
                continue
            key, cap = r.concurrency_key, td.options.max_concurrency
            if key is not None and cap is not None:
                if used.get(key, 0) >= cap:
                    reason = f"waiting for a concurrency slot ({key!r}: {cap} of {cap} in use)"
                    if r.route_reason != reason:
                        reasons[reason].append(r.id)
                    continue
                used[key] = used.get(key, 0) + 1
            by_queue[(rt.queue, rt.reason)].append(r)
        for reason, ids in reasons.items():
            self.steps.set_route_reason(ids, reason)
        return self._send_rows(by_queue, [TaskState.PENDING], new_attempt=False)
