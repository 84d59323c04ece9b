"""Journals read: a job's steps as the replay sees them (``StepRecord``s by seq).

Read by ``Steps.load_journals``, and by ``Jobs.job_to_replay`` in the same statement as the job.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from agentbus.domain.replay import ErrorInfo, StepRecord
from agentbus.domain.states import TaskState
from agentbus.store.models import Step
from agentbus.store.records import loads


def read_journals(job_ids: Sequence[str]) -> dict[str, dict[int, StepRecord]]:
    """The journals of many jobs in one statement (a job without steps gets an empty one)."""
    journals: dict[str, dict[int, StepRecord]] = {j: {} for j in job_ids}
    if not journals:
        return journals
    q = (
        Step.select(
            Step.job_id,
            Step.seq,
            Step.kind,
            Step.name,
            Step.state,
            Step.result,
            Step.error_type,
            Step.error_message,
            Step.error_traceback,
        )
        .where(Step.job_id.in_(list(journals)))
        .tuples()
    )
    for job_id, seq, kind, name, state, result, etype, emsg, etb in q:
        err = ErrorInfo(etype, emsg or "", etb) if etype else None
        journals[job_id][seq] = StepRecord(seq, kind, name, TaskState(state), loads(result), err)
    return journals


def journal_from_json(rows: Sequence[Sequence[Any]]) -> dict[int, StepRecord]:
    """A journal read as JSON (``[seq, kind, name, state, result, error type, message, traceback]``
    per step, the columns ``read_journals`` reads): in the same statement as its job (``Jobs.job_to_replay``)."""
    journal: dict[int, StepRecord] = {}
    for seq, kind, name, state, result, etype, emsg, etb in rows:
        err = ErrorInfo(etype, emsg or "", etb) if etype else None
        journal[seq] = StepRecord(seq, kind, name, TaskState(state), loads(result), err)
    return journal
