"""The signals repository (``ab_signals``): signals sent to jobs, and the waits they complete.

Exactly once: a wait step takes a signal by compare-and-set on both rows in one transaction (the
signal from unconsumed to this step, the step from pending to succeeded), so one signal completes at
most one wait and a wait at most one signal, whoever applies the pairing (the API as the signal
arrives, the orchestrator as it records a wait, or the reconciler's sweep). Each of those first
locks the job's row, so a send and a replay recording a wait of the same job see each other's
rows; the sweep only mops up. Which wait takes which signal is ``domain/signals.py``'s ``pair``.
"""

from __future__ import annotations

import time
from typing import Any

import peewee

from agentbus.domain.errors import Conflict, NotFound
from agentbus.domain.signals import Arrived, Waiting, check_against, next_wait, pair, timeout_message
from agentbus.domain.states import JOB_OPEN, TaskState
from agentbus.store._repository import Repository
from agentbus.store.db import translate_errors
from agentbus.store.events import Events
from agentbus.store.models import Job, Signal, Step
from agentbus.store.records import SignalRecord, dumps, loads, step_id

_PENDING = TaskState.PENDING.value
_JOB_OPEN = [s.value for s in JOB_OPEN]


class _Taken(Exception):
    """The wait was settled meanwhile (timed out, cancelled): its pairing is rolled back."""


def _record(r: Signal) -> SignalRecord:
    return SignalRecord(
        id=r.id,
        job_id=r.job_id,
        name=r.name,
        payload=loads(r.payload),
        created_at=r.created_at,
        idempotency_key=r.idempotency_key,
        step=None if r.consumed_by is None else int(r.consumed_by.rsplit("-", 1)[1]),
        delivered_at=r.consumed_at,
        tenant=r.tenant,
    )


def signal_payload(rec: SignalRecord, event: str) -> dict[str, Any]:
    return {"event": event, "signal_id": rec.id, "name": rec.name, "status": rec.status, "step": rec.step}


class Signals(Repository):
    def __init__(self, db: peewee.Database, events: Events) -> None:
        super().__init__(db)
        self.events = events

    # -- sending ---------------------------------------------------------------------------------
    @translate_errors
    def send(
        self, job_id: str, name: str, payload: Any, *, tenant: str | None = None, key: str | None = None
    ) -> tuple[SignalRecord, bool]:
        """Keep a signal for the job and hand it to the wait that takes it, if one is open.

        Returns the signal and whether it is new: with an idempotency ``key`` already used for this
        job, the signal sent then (and nothing new). NotFound for another tenant's job, Conflict for
        a finished one, ValidationFailed when the open wait it would go to has a schema it fails.
        """
        now = time.time()
        with self.db.atomic():
            if key is not None and (known := self._by_key(job_id, key, tenant)) is not None:
                return known, False
            job = Job.get_or_none(Job.id == job_id)
            if job is None or (tenant is not None and job.tenant != tenant):
                raise NotFound(f"no job {job_id!r}")
            if not self._lock(job_id, now):
                raise Conflict(f"job {job_id} is {Job.get_by_id(job_id).state}: it takes no more signals")
            if key is not None and (known := self._by_key(job_id, key, tenant)) is not None:
                return known, False  # sent with this key while we waited for the job's row
            waits, arrived = self._open(job_id)
            target = next_wait(waits, arrived, name)
            if target is not None:
                check_against(target.schema, payload, "payload")
            sid = Signal.insert(
                job_id=job_id,
                tenant=job.tenant,
                name=name,
                payload=dumps(payload),
                idempotency_key=key,
                created_at=now,
            ).execute()
            self.events.log(job_id, "signal", signal_payload(_record(Signal.get_by_id(sid)), "signal.received"), now)
            self.match(job_id, now)
            return _record(Signal.get_by_id(sid)), True

    def _by_key(self, job_id: str, key: str, tenant: str | None) -> SignalRecord | None:
        row = Signal.get_or_none((Signal.job_id == job_id) & (Signal.idempotency_key == key))
        if row is None or (tenant is not None and row.tenant != tenant):
            return None
        return _record(row)

    def _lock(self, job_id: str, now: float) -> bool:
        """Lock the job's row (held to the end of the transaction) if the job is open."""
        return bool(Job.update(updated_at=now).where((Job.id == job_id) & Job.state.in_(_JOB_OPEN)).execute())

    # -- delivering --------------------------------------------------------------------------------
    def _open(self, job_id: str) -> tuple[list[Waiting], list[Arrived]]:
        waits = [
            Waiting(seq, name, (loads(args) or {}).get("schema") if args else None)
            for seq, name, args in Step.select(Step.seq, Step.name, Step.args)
            .where((Step.job_id == job_id) & (Step.kind == "signal") & (Step.state == _PENDING))
            .tuples()
        ]
        if not waits:
            return [], []
        arrived = [
            Arrived(i, name, loads(payload))
            for i, name, payload in Signal.select(Signal.id, Signal.name, Signal.payload)
            .where((Signal.job_id == job_id) & Signal.consumed_by.is_null())
            .tuples()
        ]
        return waits, arrived

    def match(self, job_id: str, now: float) -> int:
        """Hand the job's kept signals to its open waits (inside the caller's transaction, which holds
        the job's row); returns how many waits were completed."""
        waits, arrived = self._open(job_id)
        done = 0
        for wait, sig in pair(waits, arrived):
            sid = step_id(job_id, wait.seq)
            try:
                with self.db.atomic():  # a savepoint: both moves, or neither
                    took = (
                        Signal.update(consumed_by=sid, consumed_at=now)
                        .where((Signal.id == sig.order) & Signal.consumed_by.is_null())
                        .execute()
                    )
                    if not took or not (
                        Step.update(
                            state=TaskState.SUCCEEDED.value, result=dumps(sig.payload), finished_at=now, updated_at=now
                        )
                        .where((Step.id == sid) & (Step.state == _PENDING))
                        .execute()
                    ):
                        raise _Taken
            except _Taken:
                continue
            delivered = _record(Signal.get_by_id(sig.order))
            self.events.log(job_id, "signal", signal_payload(delivered, "signal.delivered"), now)
            done += 1
        return done

    @translate_errors
    def deliver(self, job_id: str) -> int:
        """``match`` in a transaction of its own (for the sweep); 0 for a job no longer open."""
        now = time.time()
        with self.db.atomic():
            return self.match(job_id, now) if self._lock(job_id, now) else 0

    @translate_errors
    def deliver_waiting(self, limit: int = 200) -> list[str]:
        """The reconciler's sweep: jobs with an open wait and a kept signal of its name get them paired
        (none should be left so: the send and the replay each pair under the job's lock). Returns the
        jobs whose waits were completed, to advance."""
        g = Signal.alias("g")
        q = (
            Step.select(Step.job_id)
            .join(g, on=(g.job_id == Step.job_id) & (g.name == Step.name) & g.consumed_by.is_null())
            .where((Step.kind == "signal") & (Step.state == _PENDING))
            .distinct()
            .limit(limit)
            .tuples()
        )
        return [job_id for (job_id,) in list(q) if self.deliver(job_id)]

    @translate_errors
    def expire_due(self, now: float, limit: int = 200) -> list[str]:
        """Waits past their deadline fail with ``SignalTimeout`` (compare-and-set: once, across
        restarts); returns their jobs, to advance."""
        due = list(
            Step.select(Step.id, Step.job_id, Step.seq, Step.name, Step.args)
            .where((Step.kind == "signal") & (Step.state == _PENDING) & (Step.not_before <= now))
            .limit(limit)
            .tuples()
        )
        jobs: set[str] = set()
        for sid, job_id, seq, name, args in due:
            timeout = (loads(args) or {}).get("timeout") if args else None
            with self.db.atomic():
                n = (
                    Step.update(
                        state=TaskState.FAILED.value,
                        error_type="SignalTimeout",
                        error_message=timeout_message(name, timeout),
                        finished_at=now,
                        updated_at=now,
                    )
                    .where((Step.id == sid) & (Step.state == _PENDING))
                    .execute()
                )
                if n:
                    event = {"event": "signal.timed_out", "name": name, "step": seq, "timeout": timeout}
                    self.events.log(job_id, "signal", event, now)
                    jobs.add(job_id)
        return sorted(jobs)

    # -- reading -----------------------------------------------------------------------------------
    @translate_errors
    def list_signals(self, job_id: str, tenant: str | None = None) -> list[SignalRecord]:
        """The job's signals in the order they arrived, delivered or pending (NotFound: another tenant's job)."""
        job = Job.get_or_none(Job.id == job_id)
        if job is None or (tenant is not None and job.tenant != tenant):
            raise NotFound(f"no job {job_id!r}")
        return [_record(r) for r in Signal.select().where(Signal.job_id == job_id).order_by(Signal.id)]
