"""The approvals repository: questions to people, their answers, and their deadlines
(what a deadline does is ``domain/deadlines.py``)."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import peewee

from agentbus.domain.deadlines import Escalate, deadline, iso, on_deadline
from agentbus.domain.errors import Conflict, NotFound
from agentbus.domain.hitl import HumanRequest, answer
from agentbus.domain.states import ApprovalStatus, TaskState
from agentbus.store._cursor import decode_cursor, encode_cursor
from agentbus.store._repository import Repository
from agentbus.store.db import translate_errors
from agentbus.store.events import Events
from agentbus.store.jobs import Jobs
from agentbus.store.models import Approval, Step
from agentbus.store.records import ApprovalRecord, dumps, loads, step_id
from agentbus.store.webhooks import Webhooks


def _record(r: Approval) -> ApprovalRecord:
    return ApprovalRecord(
        id=r.id,
        job_id=r.job_id,
        seq=r.seq,
        prompt=r.prompt,
        data=loads(r.data),
        schema=loads(r.schema),
        status=r.status,
        assignees=loads(r.assignees),
        level=r.level,
        timeout=r.timeout,
        on_timeout=r.on_timeout,
        deadline=r.deadline,
        webhook=r.webhook,
        decision=r.decision,
        input=loads(r.input),
        comment=r.comment,
        answered_by=r.answered_by,
        answered_at=r.answered_at,
        created_at=r.created_at,
        updated_at=r.updated_at,
        tenant=r.tenant,
        answered_key=r.answered_key,
    )


_PENDING = ApprovalStatus.PENDING.value


def _members(groups: list[list[str]], level: int) -> str:
    return "," + ",".join(groups[level]) + "," if level < len(groups) else ""


def approval_payload(rec: ApprovalRecord, event: str) -> dict[str, Any]:
    return {
        "event": event,
        "approval_id": rec.id,
        "job_id": rec.job_id,
        "status": rec.status,
        "level": rec.level,
        "prompt": rec.prompt,
        "assignees": rec.current_assignees,
        "decision": rec.decision,
        "by": rec.answered_by,
        "key": rec.answered_key,
    }


class Approvals(Repository):
    """Questions to people (``ab_approvals``). An answer or an expiry settles the question's
    journal step (the approval's id is its step's id) in the same transaction, and resumes the
    job through ``jobs``; every change is logged (``events``) and announced (``webhooks``)."""

    def __init__(self, db: peewee.Database, events: Events, webhooks: Webhooks, jobs: Jobs) -> None:
        super().__init__(db)
        self.events = events
        self.webhooks = webhooks
        self.jobs = jobs

    def insert_asks(self, job_id: str, asks: Sequence[tuple[int, HumanRequest]], now: float) -> None:
        """The approvals a replay asked for (inside the replay's transaction); one already there is kept."""
        tenant = self.jobs.get_job(job_id).tenant
        for seq, req in asks:
            groups = [list(g) for g in req.assignees]
            row = {
                "id": step_id(job_id, seq),
                "job_id": job_id,
                "seq": seq,
                "prompt": req.prompt,
                "data": dumps(req.data),
                "schema": None if req.schema is None else dumps(req.schema),
                "status": _PENDING,
                "assignees": dumps(groups),
                "level": 0,
                "current_assignees": _members(groups, 0),
                "timeout": req.timeout,
                "on_timeout": req.on_timeout,
                "deadline": deadline(now, req.timeout),
                "webhook": req.webhook,
                "created_at": now,
                "updated_at": now,
                "tenant": tenant,
            }
            if Approval.insert(row).on_conflict_ignore().execute() is not None:
                self._approval_changed(_record(Approval.get_by_id(row["id"])), "approval.created", now)

    def _approval_changed(self, rec: ApprovalRecord, event: str, now: float) -> None:
        """Log the change in the job's event log and queue the approval's webhook, if it has one."""
        self.events.log(rec.job_id, "approval", approval_payload(rec, event), now)
        if rec.webhook:
            self.webhooks.enqueue(rec.id, rec.webhook, event, approval_payload(rec, event), now)

    def _resume_if_answered(self, job_id: str, now: float) -> None:
        """waiting_human → running once none of the job's approvals is pending."""
        pending = Approval.select().where((Approval.job_id == job_id) & (Approval.status == _PENDING)).count()
        self.jobs.resume(job_id, pending, now)

    @translate_errors
    def get_approval(self, approval_id: str, tenant: str | None = None) -> ApprovalRecord:
        row = Approval.get_or_none(Approval.id == approval_id)
        if row is None or (tenant is not None and row.tenant != tenant):
            raise NotFound(f"no approval {approval_id!r}")
        return _record(row)

    @translate_errors
    def list_approvals(
        self,
        *,
        status: str | None = None,
        job_id: str | None = None,
        assignee: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
        tenant: str | None = None,
    ) -> tuple[list[ApprovalRecord], str | None]:
        q = Approval.select().order_by(Approval.created_at.desc(), Approval.id.desc())
        if tenant is not None:
            q = q.where(Approval.tenant == tenant)
        if status:
            q = q.where(Approval.status == status)
        if job_id:
            q = q.where(Approval.job_id == job_id)
        if assignee:
            q = q.where(Approval.current_assignees.contains(f",{assignee},"))
        if cursor:
            created, aid = decode_cursor(cursor)
            q = q.where((Approval.created_at < created) | ((Approval.created_at == created) & (Approval.id < aid)))
        rows = list(q.limit(limit + 1))
        nxt = encode_cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
        return [_record(r) for r in rows[:limit]], nxt

    @translate_errors
    def answer_approval(
        self,
        approval_id: str,
        approved: bool,
        input: Any,
        comment: str | None,
        by: str,
        tenant: str | None = None,
        key_id: str | None = None,
    ) -> ApprovalRecord:
        """Exactly one answer wins; any other (or an answer to a closed approval) is a Conflict.

        ``by`` is what the answerer says of themselves; ``key_id``, the key that authenticated
        the answer, is recorded as ``answered_key`` and cannot be claimed.
        """
        self.get_approval(approval_id, tenant)  # another tenant's approval is a 404
        now = time.time()
        with self.db.atomic():
            n = (
                Approval.update(
                    status=ApprovalStatus.APPROVED.value if approved else ApprovalStatus.REJECTED.value,
                    decision="approve" if approved else "reject",
                    input=dumps(input),
                    comment=comment,
                    answered_by=by,
                    answered_key=key_id,
                    answered_at=now,
                    updated_at=now,
                )
                .where((Approval.id == approval_id) & (Approval.status == _PENDING))
                .execute()
            )
            if not n:
                current = self.get_approval(approval_id)
                raise Conflict(f"approval {approval_id} is already {current.status}")
            result = answer(approved, input, comment, by, iso(now))
            Step.update(state=TaskState.SUCCEEDED.value, result=dumps(result), finished_at=now, updated_at=now).where(
                (Step.id == approval_id) & (Step.state == TaskState.PENDING.value)
            ).execute()
            rec = self.get_approval(approval_id)
            self._resume_if_answered(rec.job_id, now)
            self._approval_changed(rec, "approval.answered", now)
        return rec

    @translate_errors
    def pending_approvals(self) -> int:
        return int(Approval.select().where(Approval.status == _PENDING).count())

    @translate_errors
    def expire_due(self, now: float, limit: int = 200) -> list[str]:
        """Apply the timeout policy of every pending approval past its deadline; returns jobs to advance.

        Each change is a compare-and-set on (status, level), so a deadline fires once even
        when two orchestrators race or one restarts.
        """
        due = list(
            Approval.select()
            .where((Approval.status == _PENDING) & (Approval.deadline <= now))
            .order_by(Approval.deadline)
            .limit(limit)
        )
        jobs: list[str] = []
        for row in due:
            rec = _record(row)
            with self.db.atomic():
                if self._expire_one(rec, now):
                    jobs.append(rec.job_id)
        return sorted(set(jobs))

    def _expire_one(self, rec: ApprovalRecord, now: float) -> bool:
        guard = (Approval.id == rec.id) & (Approval.status == _PENDING) & (Approval.level == rec.level)
        then = on_deadline(rec.on_timeout, rec.level, len(rec.assignees), rec.timeout, now)
        if isinstance(then, Escalate):
            n = (
                Approval.update(
                    level=then.level,
                    current_assignees=_members(rec.assignees, then.level),
                    deadline=then.deadline,
                    updated_at=now,
                )
                .where(guard)
                .execute()
            )
            if n:
                self._approval_changed(self.get_approval(rec.id), "approval.escalated", now)
            return False
        if not Approval.update(status=ApprovalStatus.EXPIRED.value, updated_at=now).where(guard).execute():
            return False
        Step.update(
            state=then.step_state.value,
            result=None if then.result is None else dumps(then.result),
            error_type=then.error.type if then.error else None,
            error_message=then.error.message if then.error else None,
            finished_at=now,
            updated_at=now,
        ).where((Step.id == rec.id) & (Step.state == TaskState.PENDING.value)).execute()
        self._resume_if_answered(rec.job_id, now)
        self._approval_changed(self.get_approval(rec.id), "approval.expired", now)
        return True

    @translate_errors
    def cancel_approvals(self, job_id: str) -> int:
        now = time.time()
        with self.db.atomic():
            rows = list(Approval.select().where((Approval.job_id == job_id) & (Approval.status == _PENDING)))
            n = int(
                Approval.update(status=ApprovalStatus.CANCELLED.value, updated_at=now)
                .where((Approval.job_id == job_id) & (Approval.status == _PENDING))
                .execute()
            )
            for r in rows:
                self._approval_changed(self.get_approval(r.id), "approval.cancelled", now)
        return n
