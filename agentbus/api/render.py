"""Turning records into the JSON the API answers with."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from agentbus.domain import ErrorInfo, JobState
from agentbus.domain.messages import JobEnd
from agentbus.store import ApprovalRecord, JobRecord, SignalRecord


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def job(rec: JobRecord, progress: dict[str, int] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "id": rec.id,
        "type": rec.type,
        "status": rec.state.value,
        "input": rec.input,
        "priority": rec.priority,
        "idempotency_key": rec.idempotency_key,
        "parent_id": rec.parent_id,
        "rerun_of": rec.rerun_of,
        "run_at": iso(rec.run_at),
        "schedule_id": rec.schedule_id,
        "schedule_tick": iso(rec.schedule_tick),
        "created_at": iso(rec.created_at),
        "started_at": iso(rec.started_at),
        "finished_at": iso(rec.finished_at),
        "updated_at": iso(rec.updated_at),
        "error": rec.error.to_dict() if rec.error else None,
    }
    if progress is not None:
        out["progress"] = progress
    return out


def results(rec: JobRecord) -> dict[str, Any]:
    return _results(rec.id, rec.state, rec.result, rec.error)


def ending(end: JobEnd) -> dict[str, Any]:
    """What ``results`` answers for the record that ``end`` was committed as."""
    return _results(end.job_id, end.state, end.result, end.error)


def _results(job_id: str, state: JobState, result: Any, error: ErrorInfo | None) -> dict[str, Any]:
    out: dict[str, Any] = {"id": job_id, "status": state.value}
    if state.terminal:
        out["result"] = result
        out["error"] = error.to_dict() if error else None
    return out


def approval(rec: ApprovalRecord) -> dict[str, Any]:
    return {
        "id": rec.id,
        "job_id": rec.job_id,
        "status": rec.status,
        "prompt": rec.prompt,
        "data": rec.data,
        "schema": rec.schema,
        "assignees": rec.current_assignees,
        "assignee_groups": rec.assignees,
        "level": rec.level,
        "timeout": rec.timeout,
        "on_timeout": rec.on_timeout,
        "deadline": iso(rec.deadline),
        "decision": rec.decision,
        "input": rec.input,
        "comment": rec.comment,
        "answered_by": rec.answered_by,
        "answered_at": iso(rec.answered_at),
        "created_at": iso(rec.created_at),
        "updated_at": iso(rec.updated_at),
    }


def signal(rec: SignalRecord) -> dict[str, Any]:
    return {
        "id": rec.id,
        "job_id": rec.job_id,
        "name": rec.name,
        "payload": rec.payload,
        "status": rec.status,
        "step": rec.step,
        "idempotency_key": rec.idempotency_key,
        "created_at": iso(rec.created_at),
        "delivered_at": iso(rec.delivered_at),
    }
