"""Deleting what is old enough (the rule: ``domain/retention.py``), in small transactions.

Every delete removes at most ``batch`` rows, chosen by primary key, in a transaction of its own:
no statement holds locks on more than one batch, and the API and the orchestrator keep writing
while a large backlog drains. A job's rows go first and the job row last, so a purge that stops
half-way (a crash, a failover) leaves a job that the next purge finds and finishes.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import peewee

from agentbus.domain.retention import PURGEABLE_JOB_STATES
from agentbus.store.db import translate_errors
from agentbus.store.models import Approval, Job, JobEvent, MemoryItem, Signal, Step, WebhookDelivery

_STATES = sorted(str(s) for s in PURGEABLE_JOB_STATES)


@dataclass(frozen=True)
class PurgeCounts:
    """Rows deleted (or, for a dry run, that would be)."""

    jobs: int = 0
    steps: int = 0
    events: int = 0
    approvals: int = 0
    deliveries: int = 0
    memory_items: int = 0
    signals: int = 0

    def __add__(self, other: PurgeCounts) -> PurgeCounts:
        return PurgeCounts(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    @property
    def total(self) -> int:
        return sum(getattr(self, f.name) for f in fields(self))


def _purgeable_jobs(before: float) -> Any:
    """Ids of the jobs ``job_is_purgeable`` names: finished before ``before``, parent not kept."""
    parent = Job.alias("parent")
    parent_kept = parent.select(parent.id).where(
        (parent.id == Job.parent_id)
        & (~parent.state.in_(_STATES) | parent.finished_at.is_null() | (parent.finished_at >= before))
    )
    return Job.select(Job.id).where(
        Job.state.in_(_STATES) & (Job.finished_at < before) & ~peewee.fn.EXISTS(parent_kept)
    )


def _expired_items(now: float) -> Any:
    return MemoryItem.expires_at.is_null(False) & (MemoryItem.expires_at <= now)


class Retention:
    """The purge, over one database (a repository of its own: only the orchestrator and the CLI use it)."""

    def __init__(self, db: peewee.Database) -> None:
        self.db = db

    @translate_errors
    def count(self, before: float, now: float) -> PurgeCounts:
        """What ``purge`` would delete now (``--dry-run``)."""
        jobs = _purgeable_jobs(before)
        approvals = Approval.select(Approval.id).where(Approval.job_id.in_(jobs))
        return PurgeCounts(
            jobs=jobs.count(),
            steps=Step.select().where(Step.job_id.in_(jobs)).count(),
            events=JobEvent.select().where(JobEvent.job_id.in_(jobs)).count(),
            approvals=approvals.count(),
            deliveries=WebhookDelivery.select().where(WebhookDelivery.approval_id.in_(approvals)).count(),
            memory_items=MemoryItem.select().where(_expired_items(now)).count(),
            signals=Signal.select().where(Signal.job_id.in_(jobs)).count(),
        )

    @translate_errors
    def purge_batch(self, before: float, now: float, batch: int = 1000) -> PurgeCounts:
        """Up to ``batch`` jobs with all their rows, and up to ``batch`` expired memory items.

        The caller repeats while the result is non-zero (``purge``), or spreads rounds over time.
        """
        ids = [i for (i,) in _purgeable_jobs(before).order_by(Job.finished_at).limit(batch).tuples()]
        counts = PurgeCounts()
        if ids:
            approval_ids = [a for (a,) in Approval.select(Approval.id).where(Approval.job_id.in_(ids)).tuples()]
            deliveries = 0
            for i in range(0, len(approval_ids), batch):
                chunk = approval_ids[i : i + batch]
                deliveries += self._delete(WebhookDelivery, WebhookDelivery.approval_id.in_(chunk), batch)
            counts = PurgeCounts(
                deliveries=deliveries,
                approvals=self._delete(Approval, Approval.job_id.in_(ids), batch),
                events=self._delete(JobEvent, JobEvent.job_id.in_(ids), batch),
                signals=self._delete(Signal, Signal.job_id.in_(ids), batch),
                steps=self._delete(Step, Step.job_id.in_(ids), batch),
            )
            with self.db.atomic():
                # the state again: a job is never deleted unless it is (still) finished
                jobs = Job.delete().where(Job.id.in_(ids) & Job.state.in_(_STATES)).execute()
            counts = counts + PurgeCounts(jobs=jobs)
        return counts + PurgeCounts(memory_items=self._delete_expired_items(now, batch))

    def purge(self, before: float, now: float, batch: int = 1000, max_rounds: int | None = None) -> PurgeCounts:
        """Batches until nothing old is left (or ``max_rounds`` batches have run)."""
        total = PurgeCounts()
        rounds = 0
        while max_rounds is None or rounds < max_rounds:
            got = self.purge_batch(before, now, batch)
            total += got
            rounds += 1
            if got.jobs < batch and got.memory_items < batch:
                break
        return total

    def _delete(self, model: Any, where: Any, batch: int) -> int:
        """Rows matching ``where``, ``batch`` primary keys per transaction."""
        pk = model._meta.primary_key
        total = 0
        while True:
            with self.db.atomic():
                n = model.delete().where(pk.in_(model.select(pk).where(where).limit(batch))).execute()
            total += n
            if n < batch:
                return total

    def _delete_expired_items(self, now: float, batch: int) -> int:
        # memory items have no single-column key: (namespace, item_id) is unique
        key = peewee.Tuple(MemoryItem.namespace, MemoryItem.item_id)
        chosen = MemoryItem.select(MemoryItem.namespace, MemoryItem.item_id).where(_expired_items(now)).limit(batch)
        with self.db.atomic():
            return int(MemoryItem.delete().where(key.in_(chosen)).execute())


__all__ = ["PurgeCounts", "Retention"]
