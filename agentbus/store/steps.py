"""The steps repository (the journal). The hot paths use one statement per batch."""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import peewee
from psycopg2.extras import execute_values

from agentbus.domain.hitl import HumanRequest
from agentbus.domain.ids import job_of
from agentbus.domain.replay import ErrorInfo, StepRecord
from agentbus.domain.states import (
    JOB_REPLAYABLE,
    JOB_TERMINAL,
    TASK_HOLDING_SLOT,
    TASK_NOT_STARTED,
    TASK_OPEN,
    TASK_REPORTABLE,
    TASK_STARTABLE,
    TASK_TERMINAL,
    JobState,
    TaskState,
    sql_values,
    state_after_replay,
)
from agentbus.store._repository import Repository
from agentbus.store.approvals import Approvals
from agentbus.store.db import translate_errors
from agentbus.store.events import Events
from agentbus.store.journals import read_journals
from agentbus.store.models import Job, Step
from agentbus.store.records import NewStep, StepRow, TaskOutcome, dumps, loads, step_id
from agentbus.store.signals import Signals

_OPEN = [s.value for s in TASK_OPEN]
_JOB_OPEN = [s.value for s in JOB_REPLAYABLE]  # a scheduled job is not replayed before its time


@dataclass(frozen=True)
class Replayed:
    """What one replay decided for its job: new steps, and the final state (None: it goes on)."""

    job_id: str
    steps: Sequence[NewStep]
    outcome: JobState | None
    result: Any = None
    error: ErrorInfo | None = None


_INSERT_CHUNK = 2000
_STARTABLE = sql_values(TASK_STARTABLE)
_REPORTABLE = sql_values(TASK_REPORTABLE)
_CANCELLED = JobState.CANCELLED.value


_STEP_COLUMNS = (
    "id, job_id, seq, kind, name, args, state, result, attempt, retries, timeout, backoff, "
    "queue, dispatch_id, not_before, created_at, queued_at, updated_at, finished_at, priority, "
    "concurrency_key, route_reason"
)
# Typed: a VALUES list under a SELECT does not take its columns' types from the table.
_STEP_TEMPLATE = (
    "(%s, %s, %s::int, %s, %s, %s::text, %s, %s::text, %s::int, %s::int, %s::double precision, "
    "%s::double precision, %s::varchar, %s::varchar, %s::double precision, %s::double precision, "
    "%s::double precision, %s::double precision, %s::double precision, %s::int, %s::varchar, %s::text)"
)


def _step_rows(steps: Sequence[NewStep], now: float) -> list[tuple[Any, ...]]:
    return [
        (
            s.id,
            s.job_id,
            s.seq,
            s.kind,
            s.name,
            None if s.args is None else dumps(s.args),
            s.state.value,
            None if s.result is None else dumps(s.result),
            1,
            s.retries,
            s.timeout,
            s.backoff,
            s.queue,
            s.dispatch_id,
            s.not_before,
            now,
            now if s.state == TaskState.QUEUED else None,
            now,
            now if s.state in TASK_TERMINAL else None,
            s.priority,
            s.concurrency_key,
            s.route_reason,
        )
        for s in steps
    ]


def _step_row(r: Step) -> StepRow:
    return StepRow(
        id=r.id,
        job_id=r.job_id,
        name=r.name,
        state=TaskState(r.state),
        args=loads(r.args) or {},
        attempt=r.attempt,
        retries=r.retries,
        timeout=r.timeout or 300.0,
        backoff=r.backoff,
        queue=r.queue,
        dispatch_id=r.dispatch_id,
        worker=r.worker,
        started_at=r.started_at,
        priority=r.priority,
        concurrency_key=r.concurrency_key,
        route_reason=r.route_reason,
    )


class Steps(Repository):
    """Steps (``ab_steps``), the journal of every job: recorded by replays, moved by workers,
    the reaper and the router, each move a compare-and-set on the state and the attempt.

    A replay that asks people questions records them through ``approvals`` in its own
    transaction; a replay's job moves and is logged here, in the same transaction as its steps.
    """

    def __init__(
        self, db: peewee.Database, events: Events, approvals: Approvals, signals: Signals | None = None
    ) -> None:
        super().__init__(db)
        self.events = events
        self.approvals = approvals
        self.signals = signals

    def load_journal(self, job_id: str) -> dict[int, StepRecord]:
        return self.load_journals([job_id])[job_id]

    @translate_errors
    def load_journals(self, job_ids: Sequence[str]) -> dict[str, dict[int, StepRecord]]:
        return read_journals(job_ids)

    @translate_errors
    def record_replays(self, replays: Sequence[Replayed]) -> set[str]:
        """``record_replay`` for many jobs in one statement (no approvals: those go one by one).

        Each job moves by compare-and-set from an open state, as in ``record_replay``; the steps
        and events of the jobs that moved are inserted, those of jobs no longer open (cancelled
        meanwhile) are not. Returns the ids of the jobs that moved.
        """
        if not replays:
            return set()
        if not self._pg():
            return {
                r.job_id
                for r in replays
                if self.record_replay(r.job_id, r.steps, r.outcome, result=r.result, error=r.error)
            }
        now = time.time()
        rows = []
        for r in replays:
            state = state_after_replay(r.outcome, asked=False).value
            rows.append(
                (
                    r.job_id,
                    state,
                    None if r.outcome is None or r.result is None else dumps(r.result),
                    r.error.type if r.outcome is not None and r.error else None,
                    r.error.message if r.outcome is not None and r.error else None,
                    r.error.traceback if r.outcome is not None and r.error else None,
                    None if r.outcome is None else now,
                    dumps({"status": state}),
                )
            )
        # One statement, atomic by itself: the jobs move by compare-and-set (``j``), and the events
        # and steps of those that moved are inserted, read off ``j``'s RETURNING (not the tables:
        # every part of the statement sees the snapshot from before it).
        cur = self.db.cursor()
        values = ",".join(
            cur.mogrify("(%s, %s, %s, %s, %s, %s, %s::double precision, %s)", row).decode() for row in rows
        )
        sql = cur.mogrify(
            f"WITH v(id, state, result, etype, emsg, etb, fin, ev) AS (VALUES {values.replace('%', '%%')}), "
            "j AS (UPDATE ab_jobs AS j SET state = v.state, updated_at = %s, started_at = COALESCE(j.started_at, %s), "
            "wakes_early = FALSE, "  # never an early replay here: those are recorded one by one
            "finished_at = COALESCE(v.fin, j.finished_at), result = COALESCE(v.result, j.result), "
            "error_type = COALESCE(v.etype, j.error_type), error_message = COALESCE(v.emsg, j.error_message), "
            "error_traceback = CASE WHEN v.etype IS NULL THEN j.error_traceback ELSE v.etb END "
            "FROM v WHERE j.id = v.id AND j.state = ANY(%s) RETURNING j.id, v.ev), "
            "e AS (INSERT INTO ab_job_events (job_id, at, kind, data) SELECT id, %s, 'job', ev FROM j)",
            (now, now, _JOB_OPEN, now),
        ).decode()
        steps = [s for r in replays for s in r.steps]
        if steps:
            where = "WHERE v.job_id IN (SELECT id FROM j)"
            sql += f", s AS ({self._steps_insert_sql(cur, steps, now, where)})"
        cur.execute(sql + " SELECT id FROM j")
        return {g[0] for g in cur.fetchall()}

    @translate_errors
    def has_open_steps(self, job_id: str) -> bool:
        q = Step.select(Step.id).where((Step.job_id == job_id) & (Step.state.in_(_OPEN))).limit(1)
        return q.exists()

    @translate_errors
    def record_replay(
        self,
        job_id: str,
        steps: Sequence[NewStep],
        outcome: JobState | None,
        *,
        result: Any = None,
        error: ErrorInfo | None = None,
        asks: Sequence[tuple[int, HumanRequest]] = (),
        early: bool = False,
    ) -> bool:
        """In one transaction: insert the replay's new steps and move the job.

        ``outcome`` is the job's final state, or None while it goes on (``waiting_human`` when
        the replay asked people questions: ``asks`` become approvals). Steps already
        there are left as they are (a replay that ran twice records once). Returns
        False when the job was no longer open (cancelled meanwhile): nothing is written.
        ``early``: the replay waits on fewer steps than it has open (``ctx.wait_any``), so the job
        is replayed as each of them finishes (``Jobs.job_to_advance``).
        """
        now = time.time()
        if self._pg() and not asks and (self.signals is None or not any(s.kind == "signal" for s in steps)):
            return self._record_replay_pg(job_id, steps, outcome, result, error, early, now)
        with self.db.atomic():
            values: dict[Any, Any] = {
                Job.updated_at: now,
                Job.wakes_early: early,
                Job.state: state_after_replay(outcome, asked=bool(asks)).value,
                Job.started_at: peewee.fn.COALESCE(Job.started_at, now),
            }
            if outcome is not None:
                values[Job.finished_at] = now
                if result is not None:
                    values[Job.result] = dumps(result)
                if error is not None:
                    values[Job.error_type] = error.type
                    values[Job.error_message] = error.message
                    values[Job.error_traceback] = error.traceback
            n = Job.update(values).where((Job.id == job_id) & Job.state.in_(_JOB_OPEN)).execute()
            if not n:
                return False
            self.events.log(job_id, "job", {"status": values[Job.state]}, now)
            self._insert_steps(steps, now)
            if asks:
                self.approvals.insert_asks(job_id, asks, now)
            if self.signals is not None and any(s.kind == "signal" for s in steps):
                self.signals.match(job_id, now)  # signals sent before the wait: under the job's row lock
        return True

    def _record_replay_pg(
        self,
        job_id: str,
        steps: Sequence[NewStep],
        outcome: JobState | None,
        result: Any,
        error: ErrorInfo | None,
        early: bool,
        now: float,
    ) -> bool:
        """``record_replay`` without questions or signals: one statement, atomic by itself (no
        BEGIN/COMMIT round trips). The steps and the event are inserted only if the job moved."""
        cur = self.db.cursor()
        state = state_after_replay(outcome, asked=False).value
        sets = ["state = %s", "updated_at = %s", "wakes_early = %s", "started_at = COALESCE(started_at, %s)"]
        params: list[Any] = [state, now, early, now]
        if outcome is not None:
            sets.append("finished_at = %s")
            params.append(now)
            if result is not None:
                sets.append("result = %s")
                params.append(dumps(result))
            if error is not None:
                sets += ["error_type = %s", "error_message = %s", "error_traceback = %s"]
                params += [error.type, error.message, error.traceback]
        params += [job_id, _JOB_OPEN, now, dumps({"status": state})]
        sql = (
            f"WITH j AS (UPDATE ab_jobs SET {', '.join(sets)} WHERE id = %s AND state = ANY(%s) RETURNING id), "
            "e AS (INSERT INTO ab_job_events (job_id, at, kind, data) SELECT id, %s, 'job', %s FROM j)"
        )
        sql = cur.mogrify(sql, params).decode()
        if steps:  # the RETURNING of ``j``, not the table: every CTE sees the snapshot from before the statement
            sql += f", s AS ({self._steps_insert_sql(cur, steps, now, 'WHERE EXISTS (SELECT 1 FROM j)')})"
        cur.execute(sql + " SELECT id FROM j")
        return cur.fetchone() is not None

    def _steps_insert_sql(self, cur: Any, steps: Sequence[NewStep], now: float, where: str) -> str:
        """``INSERT INTO ab_steps … SELECT … WHERE <where>`` of these steps (PostgreSQL), for a
        statement that inserts them only for the jobs it moved; steps already there are left as they are."""
        values = ",".join(cur.mogrify(_STEP_TEMPLATE, r).decode() for r in _step_rows(steps, now))
        return (
            f"INSERT INTO ab_steps ({_STEP_COLUMNS}) SELECT * FROM (VALUES {values}) AS v({_STEP_COLUMNS}) "
            f"{where} ON CONFLICT (id) DO NOTHING"
        )

    def _insert_steps(self, steps: Sequence[NewStep], now: float) -> None:
        rows = _step_rows(steps, now)
        cols = _STEP_COLUMNS
        for i in range(0, len(rows), _INSERT_CHUNK):
            chunk = rows[i : i + _INSERT_CHUNK]
            if self._pg():
                cur = self.db.cursor()
                execute_values(
                    cur,
                    f"INSERT INTO ab_steps ({cols}) VALUES %s ON CONFLICT (id) DO NOTHING",
                    chunk,
                    page_size=_INSERT_CHUNK,
                )
            else:
                marks = ", ".join("?" * len(chunk[0]))
                self.db.cursor().executemany(f"INSERT OR IGNORE INTO ab_steps ({cols}) VALUES ({marks})", chunk)

    @translate_errors
    def mark_running(self, calls: Iterable[tuple[str, int]], worker: str) -> set[str]:
        """queued → running for the calls whose attempt still matches; returns their ids."""
        calls = list(calls)
        now = time.time()
        if self._pg():  # one statement: atomic by itself, no BEGIN/COMMIT round trips
            cur = self.db.cursor()
            sql = cur.mogrify(
                f"UPDATE ab_steps AS s SET state = '{TaskState.RUNNING.value}', worker = %s, started_at = %s, "
                "updated_at = %s ",
                (worker, now, now),
            ).decode()
            got = execute_values(
                cur,
                sql + "FROM (VALUES %s) AS v(id, attempt) "
                f"WHERE s.id = v.id AND s.attempt = v.attempt AND s.state IN ({_STARTABLE}) "
                f"AND NOT EXISTS (SELECT 1 FROM ab_jobs j WHERE j.id = s.job_id AND j.state = '{_CANCELLED}') "
                "RETURNING s.id",
                calls,
                fetch=True,
                page_size=max(1, len(calls)),
            )
            return {r[0] for r in got}
        with self.db.atomic():
            started: set[str] = set()
            cur = self.db.cursor()
            for task_id, attempt in calls:
                cur.execute(
                    f"UPDATE ab_steps SET state = '{TaskState.RUNNING.value}', worker = ?, started_at = ?, "
                    f"updated_at = ? WHERE id = ? AND attempt = ? AND state IN ({_STARTABLE}) AND NOT EXISTS "
                    f"(SELECT 1 FROM ab_jobs j WHERE j.id = ab_steps.job_id AND j.state = '{_CANCELLED}')",
                    (worker, now, now, task_id, attempt),
                )
                if cur.rowcount:
                    started.add(task_id)
            return started

    @translate_errors
    def record_outcomes(self, outcomes: Sequence[TaskOutcome], worker: str | None = None) -> list[str]:
        """running → the reported state, for calls whose attempt still matches.

        A late report from a superseded attempt matches nothing and is dropped.
        Returns the ids of the jobs whose steps moved.
        """
        now = time.time()
        rows = [
            (
                o.task_id,
                o.attempt,
                o.state.value,
                None if o.result is None and o.state != TaskState.SUCCEEDED else dumps(o.result),
                o.error.type if o.error else None,
                o.error.message if o.error else None,
                o.error.traceback if o.error else None,
                o.not_before,
                now if o.state in TASK_TERMINAL else None,
            )
            for o in outcomes
        ]
        if not rows:
            return []
        if self._pg():  # one statement: atomic by itself
            cur = self.db.cursor()
            got = execute_values(
                cur,
                "UPDATE ab_steps AS s SET state = v.state, result = v.result, error_type = v.etype, "
                "error_message = v.emsg, error_traceback = v.etb, not_before = v.nb, finished_at = v.fin, "
                f"updated_at = {now!r} "
                "FROM (VALUES %s) AS v(id, attempt, state, result, etype, emsg, etb, nb, fin) "
                f"WHERE s.id = v.id AND s.attempt = v.attempt AND s.state IN ({_REPORTABLE}) RETURNING s.job_id",
                rows,
                template="(%s, %s::int, %s, %s, %s, %s, %s, %s::double precision, %s::double precision)",
                fetch=True,
                page_size=len(rows),
            )
            return sorted({r[0] for r in got})
        with self.db.atomic():
            jobs: set[str] = set()
            cur = self.db.cursor()
            for tid, attempt, state, result, etype, emsg, etb, nb, fin in rows:
                cur.execute(
                    "UPDATE ab_steps SET state = ?, result = ?, error_type = ?, error_message = ?, "
                    "error_traceback = ?, not_before = ?, finished_at = ?, updated_at = ? "
                    f"WHERE id = ? AND attempt = ? AND state IN ({_REPORTABLE})",
                    (state, result, etype, emsg, etb, nb, fin, now, tid, attempt),
                )
                if cur.rowcount:
                    jobs.add(job_of(tid))
            return sorted(jobs)

    @translate_errors
    def requeue(
        self,
        task_ids: Sequence[str],
        from_states: Sequence[TaskState],
        dispatch_id: str,
        *,
        new_attempt: bool,
        queue: str | None = None,
        reason: str | None = None,
    ) -> list[StepRow]:
        """Move tasks back to queued under a new dispatch; returns the rows as they now are."""
        if not task_ids:
            return []
        now = time.time()
        values: dict[Any, Any] = {
            Step.state: TaskState.QUEUED.value,
            Step.dispatch_id: dispatch_id,
            Step.queued_at: now,
            Step.updated_at: now,
            Step.worker: None,
            Step.started_at: None,
        }
        if new_attempt:
            values[Step.attempt] = Step.attempt + 1
        if queue is not None:
            values[Step.queue] = queue
        if reason is not None:
            values[Step.route_reason] = reason
        with self.db.atomic():
            Step.update(values).where(
                Step.id.in_(list(task_ids)) & Step.state.in_([s.value for s in from_states])
            ).execute()
            rows = Step.select().where(Step.id.in_(list(task_ids)) & (Step.dispatch_id == dispatch_id))
            return [_step_row(r) for r in rows]

    @translate_errors
    def tasks_in_state(
        self, state: TaskState, *, due_before: float | None = None, older_than: float | None = None, limit: int = 1000
    ) -> list[StepRow]:
        q = Step.select().where((Step.state == state.value) & (Step.kind == "task"))
        if due_before is not None:
            q = q.where(Step.not_before <= due_before)
        if older_than is not None:
            q = q.where(Step.updated_at < older_than)
        return [_step_row(r) for r in q.limit(limit)]

    @translate_errors
    def fire_timers(self, now: float, limit: int = 1000) -> list[str]:
        """Sleep steps whose time has come succeed; returns their jobs."""
        if self._pg():  # one statement, every 0.1 s: no BEGIN/COMMIT round trips while nothing is due
            cur = self.db.execute_sql(
                f"UPDATE ab_steps SET state = '{TaskState.SUCCEEDED.value}', finished_at = %s, updated_at = %s "
                "WHERE id IN (SELECT id FROM ab_steps WHERE kind = 'sleep' AND state = %s AND not_before <= %s "
                "LIMIT %s) AND state = %s RETURNING job_id",
                (now, now, TaskState.PENDING.value, now, limit, TaskState.PENDING.value),
            )
            return sorted({r[0] for r in cur.fetchall()})
        with self.db.atomic():
            due = list(
                Step.select(Step.id, Step.job_id)
                .where((Step.kind == "sleep") & (Step.state == TaskState.PENDING.value) & (Step.not_before <= now))
                .limit(limit)
                .tuples()
            )
            if not due:
                return []
            Step.update(state=TaskState.SUCCEEDED.value, finished_at=now, updated_at=now).where(
                Step.id.in_([d[0] for d in due]) & (Step.state == TaskState.PENDING.value)
            ).execute()
        return sorted({d[1] for d in due})

    @translate_errors
    def cancel_open_steps(self, job_id: str) -> list[StepRow]:
        """Cancel every step of a job not yet running; returns the running ones to stop."""
        now = time.time()
        with self.db.atomic():
            Step.update(state=TaskState.CANCELLED.value, finished_at=now, updated_at=now).where(
                (Step.job_id == job_id) & Step.state.in_([s.value for s in TASK_NOT_STARTED])
            ).execute()
            running = Step.select().where((Step.job_id == job_id) & (Step.state == TaskState.RUNNING.value))
            return [_step_row(r) for r in running]

    @translate_errors
    def settle_child_step(
        self, parent_id: str, seq: int, state: TaskState, result: Any, error: ErrorInfo | None
    ) -> bool:
        now = time.time()
        n = (
            Step.update(
                state=state.value,
                result=None if result is None else dumps(result),
                error_type=error.type if error else None,
                error_message=error.message if error else None,
                error_traceback=error.traceback if error else None,
                finished_at=now,
                updated_at=now,
            )
            .where((Step.id == step_id(parent_id, seq)) & Step.state.in_(_OPEN))
            .execute()
        )
        return bool(n)

    @translate_errors
    def unsettled_children(self, older_than: float, limit: int = 500) -> list[str]:
        """Sub-agent jobs that have finished while their parent's call of them is still running (since
        before ``older_than``): the orchestrator that recorded the end stopped before it settled the
        parent. A child's id is its parent's step id, so the join is on the two primary keys."""
        q = (
            Step.select(Step.id)
            .join(Job, on=(Job.id == Step.id))
            .where(
                (Step.kind == "agent")
                & (Step.state == TaskState.RUNNING.value)
                & (Step.updated_at < older_than)
                & Job.state.in_([s.value for s in JOB_TERMINAL])
            )
            .limit(limit)
            .tuples()
        )
        return [r[0] for r in q]

    @translate_errors
    def sweep_orphans(self) -> int:
        """Cancel open steps of jobs that have finished (a lost cancel message, a failed agent)."""
        sql = (
            f"UPDATE ab_steps SET state = '{TaskState.CANCELLED.value}', finished_at = %s, updated_at = %s "
            f"WHERE state IN ({sql_values(TASK_NOT_STARTED)}) AND EXISTS (SELECT 1 FROM ab_jobs j "
            f"WHERE j.id = ab_steps.job_id AND j.state IN ({sql_values(JOB_TERMINAL)}))"
        )
        now = time.time()
        with self.db.atomic():
            cur = self.db.execute_sql(sql if self._pg() else sql.replace("%s", "?"), (now, now))
            return int(cur.rowcount)

    @translate_errors
    def steps_changed_since(self, job_id: str, since: float) -> list[dict[str, Any]]:
        """Steps of a job updated at or after ``since`` (the event stream's source)."""
        q = (
            Step.select(
                Step.id, Step.seq, Step.kind, Step.name, Step.state, Step.attempt, Step.error_type, Step.updated_at
            )
            .where((Step.job_id == job_id) & (Step.updated_at >= since) & (Step.kind != "value"))
            .order_by(Step.updated_at)
            .tuples()
        )
        keys = ("id", "seq", "kind", "name", "state", "attempt", "error_type", "updated_at")
        return [dict(zip(keys, row, strict=True)) for row in q]  # type: ignore[call-overload]

    @translate_errors
    def park(self, task_ids: Sequence[str], from_states: Sequence[TaskState], reason: str, *, new_attempt: bool) -> int:
        """Move tasks to pending (waiting for a GPU worker or a concurrency slot), with the reason."""
        if not task_ids:
            return 0
        now = time.time()
        values: dict[Any, Any] = {
            Step.state: TaskState.PENDING.value,
            Step.route_reason: reason,
            Step.updated_at: now,
            Step.worker: None,
            Step.started_at: None,
            Step.dispatch_id: None,
        }
        if new_attempt:
            values[Step.attempt] = Step.attempt + 1
        q = Step.update(values).where(Step.id.in_(list(task_ids)) & Step.state.in_([s.value for s in from_states]))
        return int(q.execute())

    @translate_errors
    def pending_tasks(self, limit: int = 1000) -> list[StepRow]:
        q = (
            Step.select()
            .where((Step.state == TaskState.PENDING.value) & (Step.kind == "task"))
            .order_by(Step.priority.desc(), Step.created_at, Step.seq)
            .limit(limit)
        )
        return [_step_row(r) for r in q]

    @translate_errors
    def slots_used(self, keys: Sequence[str]) -> dict[str, int]:
        """Calls holding a concurrency slot (queued or running), by key."""
        if not keys:
            return {}
        q = (
            Step.select(Step.concurrency_key, peewee.fn.COUNT(Step.id))
            .where(Step.concurrency_key.in_(list(keys)) & Step.state.in_([s.value for s in TASK_HOLDING_SLOT]))
            .group_by(Step.concurrency_key)
            .tuples()
        )
        used = {k: 0 for k in keys}
        used.update(dict(q))
        return used

    @translate_errors
    def set_route_reason(self, task_ids: Sequence[str], reason: str) -> None:
        if task_ids:
            Step.update(route_reason=reason).where(Step.id.in_(list(task_ids))).execute()

    @translate_errors
    def task_rows(self, job_id: str, limit: int = 100, after_seq: int = -1) -> list[dict[str, Any]]:
        """A job's tasks with where they went and why (for GET /jobs/{id} and /jobs/{id}/tasks)."""
        q = (
            Step.select(
                Step.id,
                Step.seq,
                Step.name,
                Step.state,
                Step.attempt,
                Step.queue,
                Step.route_reason,
                Step.worker,
                Step.error_type,
                Step.error_message,
                Step.error_traceback,
            )
            .where((Step.job_id == job_id) & (Step.kind == "task") & (Step.seq > after_seq))
            .order_by(Step.seq)
            .limit(limit)
            .tuples()
        )
        keys = (
            "id",
            "seq",
            "name",
            "state",
            "attempt",
            "queue",
            "route_reason",
            "worker",
            "error_type",
            "error_message",
            "error_traceback",
        )
        return [dict(zip(keys, row, strict=True)) for row in q]  # type: ignore[call-overload]
