"""The jobs repository."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

import peewee

from agentbus.domain.errors import AgentbusError, Conflict, IdempotencyConflict, NotFound, RateLimited, Unavailable
from agentbus.domain.replay import ErrorInfo, StepRecord
from agentbus.domain.states import (
    JOB_NOT_DUE,
    JOB_OPEN,
    JOB_REOPENINGS,
    JOB_REPLAYABLE,
    JOB_RERUNNABLE,
    JOB_RESUMABLE,
    JOB_RETRYABLE,
    JOB_TERMINAL,
    TASK_OPEN,
    TASK_RETRIED_ON_RESUME,
    TASK_TERMINAL,
    JobState,
    TaskState,
    initial_state,
    resumes,
    sources_of_job,
    sql_values,
)
from agentbus.store._cursor import decode_cursor, encode_cursor
from agentbus.store._repository import Repository
from agentbus.store.db import is_postgres, translate_errors
from agentbus.store.events import Events
from agentbus.store.journals import journal_from_json, read_journals
from agentbus.store.models import Job, Step
from agentbus.store.records import JobRecord, NewJob, dumps, loads, step_id


def job_record(row: Job) -> JobRecord:
    error = ErrorInfo(row.error_type, row.error_message or "", row.error_traceback) if row.error_type else None
    return JobRecord(
        id=row.id,
        type=row.type,
        state=JobState(row.state),
        input=loads(row.input),
        result=loads(row.result),
        error=error,
        idempotency_key=row.idempotency_key,
        priority=row.priority,
        parent_id=row.parent_id,
        parent_seq=row.parent_seq,
        created_at=row.created_at,
        started_at=row.started_at,
        finished_at=row.finished_at,
        updated_at=row.updated_at,
        tenant=row.tenant,
        rerun_of=row.rerun_of,
        run_at=row.run_at,
        schedule_id=row.schedule_id,
        schedule_tick=row.schedule_tick,
    )


_JOB_FIELDS = (
    "id",
    "type",
    "state",
    "input",
    "result",
    "error_type",
    "error_message",
    "idempotency_key",
    "priority",
    "parent_id",
    "parent_seq",
    "created_at",
    "started_at",
    "finished_at",
    "updated_at",
    "tenant",
    "error_traceback",
    "rerun_of",
    "run_at",
    "schedule_id",
    "schedule_tick",
)
_JOB_COLUMNS = ", ".join(_JOB_FIELDS)


def _job_from_tuple(t: tuple[Any, ...]) -> JobRecord:
    (
        jid,
        type_,
        state,
        input_,
        result,
        etype,
        emsg,
        key,
        priority,
        parent,
        pseq,
        created,
        started,
        finished,
        updated,
        tenant,
        etb,
        rerun_of,
        run_at,
        schedule_id,
        schedule_tick,
    ) = t[:21]
    return JobRecord(
        id=jid,
        type=type_,
        state=JobState(state),
        input=loads(input_),
        result=loads(result),
        error=ErrorInfo(etype, emsg or "", etb) if etype else None,
        idempotency_key=key,
        priority=priority,
        parent_id=parent,
        parent_seq=pseq,
        created_at=created,
        started_at=started,
        finished_at=finished,
        updated_at=updated,
        tenant=tenant,
        rerun_of=rerun_of,
        run_at=run_at,
        schedule_id=schedule_id,
        schedule_tick=schedule_tick,
    )


# Whether the job waits for its open steps: it has some and, while it is open, its last replay did not
# wait on fewer of them (ctx.wait_any). A finished job with open steps is "waiting": they are to be cancelled.
_OPEN_STEPS = (
    f", (NOT ab_jobs.wakes_early OR ab_jobs.state IN ({sql_values(JOB_TERMINAL)})) AND EXISTS "
    f"(SELECT 1 FROM ab_steps s WHERE s.job_id = ab_jobs.id AND s.state IN ({sql_values(TASK_OPEN)}))"
)


_REPLAYABLE = sql_values(JOB_REPLAYABLE)


def _replays(job: JobRecord, waiting: bool, resume: bool) -> bool:
    """Whether the driver replays the job now (``Driver.advance``): open, due, and not waiting (or resumed)."""
    return job.state in JOB_REPLAYABLE and (resume or not waiting)


_PG_TYPES = {"INT": "integer", "BIGINT": "bigint", "DOUBLE": "double precision", "BOOL": "boolean"}


def _open_count_pg(tenant: str | None) -> tuple[str, tuple[str, ...]]:
    """The count of a tenant's open jobs, as a PostgreSQL expression and its parameters; with
    ``tenant`` None, of the tenant in the column ``d.tenant`` of the enclosing query.

    One equality per state: ``state IN (...)`` made PostgreSQL walk every job of the tenant
    in the (tenant, state) index on each submit (a cost that grew with the table).
    """
    open_states = [s.value for s in JOB_OPEN]
    if tenant is None:
        sql = " + ".join(
            ["(SELECT COUNT(*) FROM ab_jobs a WHERE a.tenant = d.tenant AND a.state = %s)"] * len(open_states)
        )
        return sql, tuple(open_states)
    sql = " + ".join(["(SELECT COUNT(*) FROM ab_jobs WHERE tenant = %s AND state = %s)"] * len(open_states))
    return sql, tuple(v for s in open_states for v in (tenant, s))


def _pg_type(column: str) -> str:
    return _PG_TYPES.get(Job._meta.fields[column].field_type, "text")


def _new_row(new: NewJob, now: float) -> dict[str, Any]:
    state = JobState.SUBMITTED if new.run_at is None else initial_state(new.run_at, now)
    return {
        "id": new.id or uuid.uuid4().hex,
        "type": new.type,
        "state": state.value,
        "input": dumps(new.input),
        "idempotency_key": new.idempotency_key,
        "priority": new.priority,
        "parent_id": new.parent_id,
        "parent_seq": new.parent_seq,
        "created_at": now,
        "updated_at": now,
        "tenant": new.tenant,
        "rerun_of": new.rerun_of,
        "run_at": new.run_at,
    }


def _written(row: dict[str, Any]) -> JobRecord:
    """The record of a job with a fresh id: the row is what we wrote."""
    return _job_from_tuple(tuple(row.get(f) for f in _JOB_FIELDS))


Created = tuple[JobRecord, bool]
"""A job and whether it was created now (``Jobs.create_job``)."""


def _cap_error(tenant: str, open_jobs: int, cap: int) -> RateLimited:
    return RateLimited(f"tenant {tenant!r} has {open_jobs} open jobs, its cap is {cap}", 5.0)


def _check_cap(tenant: str, open_jobs: int, cap: int) -> None:
    if open_jobs >= cap:
        raise _cap_error(tenant, open_jobs, cap)


class Jobs(Repository):
    """Jobs (``ab_jobs``): submission, reads, and every move of a job's state by compare-and-set."""

    def __init__(self, db: peewee.Database, events: Events) -> None:
        super().__init__(db)
        self.events = events

    @translate_errors
    def create_job(self, new: NewJob, open_cap: int | None = None) -> tuple[JobRecord, bool]:
        """Insert a job; with an idempotency key already used, return that job instead.

        Returns the job and whether it was created now. The same key with another
        type or input is an ``IdempotencyConflict``. A job with a future ``run_at`` starts
        ``scheduled`` (``states.initial_state``). With ``open_cap``, a tenant with that many
        open jobs already is refused (``RateLimited``) before anything is written, its
        idempotency key taken or not.
        """
        now = time.time()
        row = _new_row(new, now)
        job_id = row["id"]
        if is_postgres(self.db):
            self._insert_job_pg(row, now, open_cap)
        else:
            if open_cap is not None:
                _check_cap(new.tenant, self.running_jobs(new.tenant), open_cap)
            with self.db.atomic():
                if Job.insert(row).on_conflict_ignore().execute() is not None:
                    self.events.log(job_id, "job", {"status": row["state"]}, now)
        if new.idempotency_key is None and new.id is None:
            return _written(row), True
        if new.idempotency_key is None:
            return self.get_job(job_id), True
        existing = Job.get_or_none((Job.tenant == new.tenant) & (Job.idempotency_key == new.idempotency_key))
        if existing is None:  # pragma: no cover - the insert or the other writer made it
            raise Conflict("idempotency key race, retry the request")
        created = existing.id == job_id
        if not created and (existing.type != new.type or loads(existing.input) != new.input):
            raise IdempotencyConflict(
                f"idempotency key {new.idempotency_key!r} was used for another request (job {existing.id})"
            )
        return job_record(existing), created

    @translate_errors
    def create_jobs(self, news: Sequence[NewJob], open_cap: int | None = None) -> list[Created | AgentbusError]:
        """``create_job`` for many jobs at once: per job, in order, what ``create_job`` returns or the
        error it raises for that job alone (``RateLimited``, ``IdempotencyConflict``). A store failure
        (``Unavailable``) raises for all of them while none is written; once some are, it is the
        error of the jobs not yet written only (those written are answered as written).

        On PostgreSQL the jobs with a fresh id (no idempotency key, no id of their own) and their
        first events are inserted in one statement, which counts each tenant's open jobs once and,
        with ``open_cap``, admits of that tenant's jobs only the first ones that fit under it, as
        many ``create_job`` calls in a row would. The others go through ``create_job`` one by one,
        as do all of them on SQLite and a job alone (its statement is simpler).
        """
        out: list[Created | AgentbusError | None] = [None] * len(news)
        fresh = [i for i, new in enumerate(news) if new.idempotency_key is None and new.id is None]
        if is_postgres(self.db) and len(fresh) > 1:
            for i, result in zip(fresh, self._insert_jobs_pg([news[i] for i in fresh], open_cap), strict=True):
                out[i] = result
        down: Unavailable | None = None
        for i, new in enumerate(news):
            if out[i] is not None:
                continue
            if down is not None:  # the store went away: the rest are refused without waiting on it again
                out[i] = Unavailable(down.message, **down.details)
                continue
            try:
                out[i] = self.create_job(new, open_cap)
            except (RateLimited, Conflict) as exc:
                out[i] = exc
            except Unavailable as exc:
                if not any(isinstance(r, tuple) and r[1] for r in out):
                    raise  # nothing written yet: the batch fails as one call would
                down = exc  # jobs already written are answered as written: a 503 would invite a duplicate
                out[i] = exc
        return [r for r in out if r is not None]

    def _insert_jobs_pg(self, news: Sequence[NewJob], open_cap: int | None) -> list[Created | AgentbusError]:
        """Jobs with fresh ids and their first events in one statement (atomic by itself), under
        ``open_cap``: each tenant's open jobs counted once, its k-th job in ``news`` inserted only
        if that count + k is within the cap. Arrays, one per column, keep the statement's text the
        same whatever the number of jobs."""
        now = time.time()
        rows = [_new_row(new, now) for new in news]
        fields = list(rows[0])
        cols = ", ".join(fields)
        arrays = ", ".join(f"%s::{_pg_type(c)}[]" for c in fields)
        params: list[Any] = [[row[c] for row in rows] for c in fields]
        params.append([dumps({"status": row["state"]}) for row in rows])
        values = f"v AS (SELECT * FROM unnest({arrays}, %s::text[]) WITH ORDINALITY AS v({cols}, ev, ord))"
        events = (
            "INSERT INTO ab_job_events (job_id, at, kind, data) "
            "SELECT id, %s::double precision, 'job', v.ev FROM j JOIN v USING (id)"
        )
        if open_cap is None:
            self.db.execute_sql(
                f"WITH {values}, j AS (INSERT INTO ab_jobs ({cols}) SELECT {cols} FROM v RETURNING id) {events}",
                (*params, now),
            )
            return [(_written(row), True) for row in rows]
        count_sql, count_params = _open_count_pg(None)
        open_now = dict(
            self.db.execute_sql(
                f"WITH {values}, o AS (SELECT d.tenant, {count_sql} AS n FROM (SELECT DISTINCT tenant FROM v) d), "
                "r AS (SELECT v.*, o.n + row_number() OVER (PARTITION BY v.tenant ORDER BY v.ord) AS k "
                "FROM v JOIN o USING (tenant)), "
                f"j AS (INSERT INTO ab_jobs ({cols}) SELECT {cols} FROM r WHERE r.k <= %s RETURNING id), "
                f"e AS ({events}) SELECT tenant, n FROM o",
                (*params, *count_params, open_cap, now),
            ).fetchall()
        )
        out: list[Created | AgentbusError] = []
        taken: dict[str, int] = {}
        for row in rows:
            tenant = row["tenant"]
            taken[tenant] = taken.get(tenant, 0) + 1
            if open_now[tenant] + taken[tenant] <= open_cap:  # the statement's rule (r.k)
                out.append((_written(row), True))
            else:  # the tenant's open jobs when this one came: the cap, or more if it was over already
                out.append(_cap_error(tenant, max(open_now[tenant], open_cap), open_cap))
        return out

    def _insert_job_pg(self, row: dict[str, Any], now: float, open_cap: int | None) -> None:
        """The job and its first event in one statement (atomic by itself: no BEGIN/COMMIT round trips);
        with ``open_cap``, the count of the tenant's open jobs in the same statement, the insert made
        only under the cap (one round trip for the whole submit)."""
        cols = ", ".join(row)
        event = (now, dumps({"status": row["state"]}))
        if open_cap is None:
            marks = ", ".join(["%s"] * len(row))
            self.db.execute_sql(
                f"WITH j AS (INSERT INTO ab_jobs ({cols}) VALUES ({marks}) ON CONFLICT DO NOTHING RETURNING id) "
                "INSERT INTO ab_job_events (job_id, at, kind, data) SELECT id, %s, 'job', %s FROM j",
                (*row.values(), *event),
            )
            return
        # INSERT ... SELECT types its values by themselves, not by the columns: each one is cast
        marks = ", ".join(f"%s::{_PG_TYPES.get(Job._meta.fields[c].field_type, 'text')}" for c in row)
        count_sql, count_params = _open_count_pg(row["tenant"])
        n = self.db.execute_sql(
            f"WITH o AS (SELECT {count_sql} AS n), "
            f"j AS (INSERT INTO ab_jobs ({cols}) SELECT {marks} FROM o WHERE o.n < %s "
            "ON CONFLICT DO NOTHING RETURNING id), "
            "e AS (INSERT INTO ab_job_events (job_id, at, kind, data) SELECT id, %s, 'job', %s FROM j) "
            "SELECT n FROM o",
            (*count_params, *row.values(), open_cap, *event),
        ).fetchone()[0]
        _check_cap(row["tenant"], int(n), open_cap)  # not under the cap: nothing was written

    def _job_sql(self, where: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """A hand-written read on the hot path (peewee's query building costs more than the query)."""
        sql = f"SELECT {_JOB_COLUMNS}{where}"
        if not is_postgres(self.db):
            sql = sql.replace("%s", "?")
        cur = self.db.execute_sql(sql, params)
        return list(cur.fetchall())

    @translate_errors
    def get_job(self, job_id: str, tenant: str | None = None) -> JobRecord:
        """The job; with ``tenant``, another tenant's job is NotFound (never a hint that it exists)."""
        rows = self._job_sql(" FROM ab_jobs WHERE id = %s", (job_id,))
        if not rows or (tenant is not None and rows[0][15] != tenant):
            raise NotFound(f"no job {job_id!r}")
        return _job_from_tuple(rows[0])

    @translate_errors
    def job_to_advance(self, job_id: str) -> tuple[JobRecord, bool]:
        """The job, and whether it waits for its open steps before a replay — one round trip.

        A job whose last replay waits on fewer steps than it has open (``ctx.wait_any``) is not
        waiting: each finished step may be the one it waits for. The flag is in the job's row
        (``wakes_early``, written with each replay), so an orchestrator that takes the job over
        after a failover replays it as soon as the first of those steps is over, as the old one did.
        """
        rows = self._job_sql(
            f"{_OPEN_STEPS} FROM ab_jobs WHERE id = %s",
            (job_id,),
        )
        if not rows:
            raise NotFound(f"no job {job_id!r}")
        return _job_from_tuple(rows[0]), bool(rows[0][-1])

    @translate_errors
    def jobs_to_advance(self, job_ids: Sequence[str]) -> dict[str, tuple[JobRecord, bool]]:
        """``job_to_advance`` for many jobs in one round trip; unknown ids are left out."""
        if not job_ids:
            return {}
        ids = list(dict.fromkeys(job_ids))
        open_steps = _OPEN_STEPS
        if is_postgres(self.db):
            rows = self._job_sql(f"{open_steps} FROM ab_jobs WHERE id = ANY(%s)", (ids,))
        else:
            rows = self._job_sql(f"{open_steps} FROM ab_jobs WHERE id IN ({', '.join(['%s'] * len(ids))})", tuple(ids))
        return {r[0]: (_job_from_tuple(r), bool(r[-1])) for r in rows}

    @translate_errors
    def job_to_replay(
        self, job_id: str, *, resume: bool = False
    ) -> tuple[JobRecord, bool, dict[int, StepRecord] | None]:
        """``job_to_advance`` and, if the job is to be replayed now, its journal — one round trip.

        The journal is read when the job is open and due and either not waiting or ``resume``d
        (the driver's rule); otherwise it is None.
        """
        found = self._jobs_to_replay([job_id], resume)
        if job_id not in found:
            raise NotFound(f"no job {job_id!r}")
        return found[job_id]

    @translate_errors
    def jobs_to_replay(self, job_ids: Sequence[str]) -> dict[str, tuple[JobRecord, bool, dict[int, StepRecord] | None]]:
        """``job_to_replay`` for many jobs in one round trip; unknown ids are left out."""
        return self._jobs_to_replay(job_ids, False)

    def _jobs_to_replay(
        self, job_ids: Sequence[str], resume: bool
    ) -> dict[str, tuple[JobRecord, bool, dict[int, StepRecord] | None]]:
        if not job_ids:
            return {}
        if not is_postgres(self.db):
            found = self.jobs_to_advance(job_ids)
            journals = read_journals([j for j, (job, waiting) in found.items() if _replays(job, waiting, resume)])
            return {j: (job, waiting, journals.get(j)) for j, (job, waiting) in found.items()}
        # The journal as one JSON array per job (psycopg2 decodes it), only for the jobs to replay.
        rows = self._job_sql(
            f", w.waiting, CASE WHEN ab_jobs.state IN ({_REPLAYABLE}) AND (%s OR NOT w.waiting) THEN "
            "(SELECT COALESCE(json_agg(json_build_array(s.seq, s.kind, s.name, s.state, s.result, s.error_type, "
            "s.error_message, s.error_traceback)), '[]'::json) FROM ab_steps s WHERE s.job_id = ab_jobs.id) END "
            f"FROM ab_jobs, LATERAL (SELECT {_OPEN_STEPS[2:]} AS waiting) w WHERE ab_jobs.id = ANY(%s)",
            (resume, list(dict.fromkeys(job_ids))),
        )
        return {
            r[0]: (_job_from_tuple(r), bool(r[-2]), None if r[-1] is None else journal_from_json(r[-1])) for r in rows
        }

    @translate_errors
    def list_jobs(
        self,
        *,
        states: list[str] | None = None,
        type: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        tenant: str | None = None,
    ) -> tuple[list[JobRecord], str | None]:
        q = Job.select().order_by(Job.created_at.desc(), Job.id.desc())
        if tenant is not None:
            q = q.where(Job.tenant == tenant)
        if states:
            q = q.where(Job.state.in_(states))
        if type:
            q = q.where(Job.type == type)
        if cursor:
            created, job_id = decode_cursor(cursor)
            q = q.where((Job.created_at < created) | ((Job.created_at == created) & (Job.id < job_id)))
        rows = list(q.limit(limit + 1))
        more = len(rows) > limit
        rows = rows[:limit]
        nxt = encode_cursor(rows[-1].created_at, rows[-1].id) if more and rows else None
        return [job_record(r) for r in rows], nxt

    @translate_errors
    def progress(self, job_id: str) -> dict[str, int]:
        """Task counts of a job: done (terminal) and total."""
        q = (
            Step.select(Step.state, peewee.fn.COUNT(Step.id).alias("n"))
            .where((Step.job_id == job_id) & (Step.kind == "task"))
            .group_by(Step.state)
            .tuples()
        )
        counts = dict(q)
        total = sum(counts.values())
        done = sum(n for s, n in counts.items() if s in TASK_TERMINAL)
        return {"done": done, "total": total, **{s: n for s, n in sorted(counts.items())}}

    @translate_errors
    def move_job(self, job_id: str, new: JobState, **fields: Any) -> bool:
        """Compare-and-set: move the job to ``new`` only from a state that may lead there."""
        now = time.time()
        values: dict[Any, Any] = {Job.state: new.value, Job.updated_at: now}
        if new == JobState.RUNNING:
            values[Job.started_at] = peewee.fn.COALESCE(Job.started_at, now)
        if new in JOB_TERMINAL:
            values[Job.finished_at] = now
        for k, v in fields.items():
            values[getattr(Job, k)] = v
        sources = [s.value for s in sources_of_job(new)]
        with self.db.atomic():
            n = Job.update(values).where((Job.id == job_id) & (Job.state.in_(sources))).execute()
            if n:
                self.events.log(job_id, "job", {"status": new.value}, now)
        return bool(n)

    def resume(self, job_id: str, pending_approvals: int, now: float) -> bool:
        """Back to running once no approval of the job is pending (``states.resumes``; inside the
        caller's transaction, the move by compare-and-set from ``JOB_RESUMABLE``)."""
        state = Job.select(Job.state).where(Job.id == job_id).scalar()
        if state is None or not resumes(JobState(state), pending_approvals):
            return False
        n = (
            Job.update(state=JobState.RUNNING.value, updated_at=now)
            .where((Job.id == job_id) & Job.state.in_([s.value for s in JOB_RESUMABLE]))
            .execute()
        )
        if n:
            self.events.log(job_id, "job", {"status": JobState.RUNNING.value}, now)
        return bool(n)

    @translate_errors
    def cancel_job(self, job_id: str, tenant: str | None = None) -> JobRecord:
        """Mark a job cancelled. Cancelling a finished job is a Conflict."""
        job = self.get_job(job_id, tenant)
        if job.state in JOB_TERMINAL:
            if job.state == JobState.CANCELLED:
                return job
            raise Conflict(f"job {job_id} has already {job.state}")
        if not self.move_job(job_id, JobState.CANCELLED, error_type="Cancelled", error_message="cancelled"):
            job = self.get_job(job_id)
            if job.state != JobState.CANCELLED:
                raise Conflict(f"job {job_id} has already {job.state}")
        return self.get_job(job_id)

    @translate_errors
    def rerun_job(self, job_id: str, tenant: str | None = None) -> JobRecord:
        """A new job with the finished job's type, input, priority and tenant, linked to it by
        ``rerun_of``; a job still open is a Conflict (cancel it first, or wait for it)."""
        job = self.get_job(job_id, tenant)
        if job.state not in JOB_RERUNNABLE:
            raise Conflict(f"job {job_id} is {job.state}: only a finished job can be run again")
        new = NewJob(job.type, job.input, priority=job.priority, tenant=job.tenant, rerun_of=job.id)
        rec, _ = self.create_job(new)
        return rec

    @translate_errors
    def resume_failed(self, job_id: str, tenant: str | None = None) -> tuple[JobRecord, int]:
        """Reopen a failed job: its task steps that failed for good (and those cancelled when it
        failed) go back to pending with a new attempt, and the job to running, in one transaction.

        The job moves by compare-and-set from ``JOB_RETRYABLE``, so of two resumes at once one
        counts and the other is a Conflict. The journal is kept: the steps that succeeded are
        not run again, and the replay sees the new attempt's outcome in place of the failure.
        A sub-agent that failed is resumed with it, in the same transaction (and its own failed
        sub-agents, down the tree): the parent's call of it goes back to running, so the parent
        waits for the child it already has rather than starting a new one. A child that cannot
        be resumed makes the parent's resume a Conflict, and nothing moves.
        A failed job with no failed step (its own code raised, or it was never run) is a
        Conflict: replaying it would fail the same way. Returns the job and how many steps
        were reopened (its sub-agents' included).
        """
        job = self.get_job(job_id, tenant)
        if job.state not in JOB_RETRYABLE:
            raise Conflict(f"job {job_id} is {job.state}: only a failed job can be resumed")
        retried = (
            (Step.job_id == job_id) & (Step.kind == "task") & Step.state.in_([s.value for s in TASK_RETRIED_ON_RESUME])
        )
        children = self._failed_children(job_id)
        if not children and not Step.select(Step.id).where(retried).exists():  # checked before anything is written
            raise Conflict(f"job {job_id} has no failed step to try again: resuming would fail the same way")
        now = time.time()
        to = JOB_REOPENINGS[job.state]
        with self.db.atomic():
            moved = (
                Job.update(
                    {
                        Job.state: to.value,
                        Job.updated_at: now,
                        Job.finished_at: None,
                        Job.result: None,
                        Job.error_type: None,
                        Job.error_message: None,
                        Job.error_traceback: None,
                    }
                )
                .where((Job.id == job_id) & Job.state.in_([s.value for s in JOB_RETRYABLE]))
                .execute()
            )
            if not moved:  # another resume won (a failed job leaves its state only by resume)
                raise Conflict(f"job {job_id} is no longer failed: it was resumed meanwhile")
            reopened = (
                Step.update(
                    {
                        Step.state: TaskState.PENDING.value,  # TASK_REOPENINGS: every one goes to pending
                        Step.attempt: Step.attempt + 1,
                        Step.result: None,
                        Step.error_type: None,
                        Step.error_message: None,
                        Step.error_traceback: None,
                        Step.finished_at: None,
                        Step.not_before: None,
                        Step.worker: None,
                        Step.started_at: None,
                        Step.dispatch_id: None,
                        Step.route_reason: "resumed",
                        Step.updated_at: now,
                    }
                )
                .where(retried)  # unchanged since the check: a failed job's steps move only here, behind the CAS
                .execute()
            )
            for seq, child_id in children:  # a child that cannot resume raises: the whole resume rolls back
                _, in_child = self.resume_failed(child_id)
                reopened += in_child
                Step.update(
                    {
                        Step.state: TaskState.RUNNING.value,  # its child runs again: settled when it finishes
                        Step.result: None,
                        Step.error_type: None,
                        Step.error_message: None,
                        Step.error_traceback: None,
                        Step.finished_at: None,
                        Step.updated_at: now,
                    }
                ).where((Step.id == step_id(job_id, seq)) & (Step.state == TaskState.FAILED.value)).execute()
            self.events.log(job_id, "job", {"status": to.value, "resumed": True, "steps": reopened}, now)
        return self.get_job(job_id), int(reopened)

    def _failed_children(self, job_id: str) -> list[tuple[int, str]]:
        """The (seq, child job id) of the job's sub-agent calls that failed because their job failed."""
        q = (
            Job.select(Job.parent_seq, Job.id)
            .join(Step, on=((Step.job_id == Job.parent_id) & (Step.seq == Job.parent_seq)))
            .where(
                (Job.parent_id == job_id)
                & Job.state.in_([s.value for s in JOB_RETRYABLE])
                & (Step.kind == "agent")
                & (Step.state == TaskState.FAILED.value)
            )
            .tuples()
        )
        return [(int(seq), str(child)) for seq, child in q]

    @translate_errors
    def submit_due(self, now: float, limit: int = 500) -> list[tuple[str, float]]:
        """Submit the scheduled jobs whose ``run_at`` has come, by compare-and-set from
        ``JOB_NOT_DUE``: of two sweeps at once each job is submitted by one. Returns the jobs
        submitted now, with when each was due."""
        not_due = sql_values(JOB_NOT_DUE)
        sql = (
            f"UPDATE ab_jobs SET state = %s, updated_at = %s WHERE state IN ({not_due}) AND id IN "
            f"(SELECT id FROM ab_jobs WHERE state IN ({not_due}) AND run_at <= %s ORDER BY run_at LIMIT %s) "
            "RETURNING id, run_at"
        )
        if not is_postgres(self.db):
            sql = sql.replace("%s", "?")
        with self.db.atomic():
            due = [(r[0], float(r[1])) for r in self.db.execute_sql(sql, (JobState.SUBMITTED.value, now, now, limit))]
            for job_id, run_at in due:  # how late it starts: the sweep's period, or a downtime
                late = round(now - run_at, 3)
                self.events.log(job_id, "job", {"status": JobState.SUBMITTED.value, "late_s": late}, now)
        return due

    @translate_errors
    def jobs_older_than(self, states: list[JobState], before: float, limit: int = 500) -> list[str]:
        q = (
            Job.select(Job.id)
            .where(Job.state.in_([s.value for s in states]) & (Job.updated_at < before))
            .limit(limit)
            .tuples()
        )
        return [r[0] for r in q]

    @translate_errors
    def touch_jobs(self, job_ids: list[str]) -> None:
        if job_ids:
            Job.update(updated_at=time.time()).where(Job.id.in_(job_ids)).execute()

    @translate_errors
    def running_jobs(self, tenant: str) -> int:
        """How many of a tenant's jobs are open (for the per-tenant cap)."""
        if is_postgres(self.db):
            sql, params = _open_count_pg(tenant)
            return int(self.db.execute_sql(f"SELECT {sql}", params).fetchone()[0])
        open_states = [s.value for s in JOB_OPEN]
        return int(Job.select().where((Job.tenant == tenant) & Job.state.in_(open_states)).count())

    @translate_errors
    def open_jobs_by_state(self) -> dict[str, int]:
        """How many jobs are open in each open state (the ``agentbus_jobs`` gauge, ``agentbus status``)."""
        open_states = [s.value for s in JOB_OPEN]
        counts = {s: 0 for s in open_states}
        q = Job.select(Job.state, peewee.fn.COUNT(Job.id)).where(Job.state.in_(open_states)).group_by(Job.state)
        for state, n in q.tuples():
            counts[state] = int(n)
        return counts

    @translate_errors
    def children(self, job_id: str) -> list[str]:
        return [r[0] for r in Job.select(Job.id).where(Job.parent_id == job_id).tuples()]

    @translate_errors
    def ping(self) -> None:
        self.db.execute_sql("SELECT 1")
