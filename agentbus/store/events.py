"""The job event log (``ab_job_events``): what happened to a job, in order, for ``/jobs/{id}/events``."""

from __future__ import annotations

from typing import Any

from agentbus.store._repository import Repository
from agentbus.store.db import translate_errors
from agentbus.store.models import JobEvent
from agentbus.store.records import dumps, loads


class Events(Repository):
    def log(self, job_id: str, kind: str, data: dict[str, Any], now: float) -> None:
        """Append to the job's event log (inside the caller's transaction)."""
        JobEvent.insert(job_id=job_id, at=now, kind=kind, data=dumps(data)).execute()

    @translate_errors
    def job_events_since(self, job_id: str, since: float) -> list[tuple[int, float, str, dict[str, Any]]]:
        q = (
            JobEvent.select(JobEvent.id, JobEvent.at, JobEvent.kind, JobEvent.data)
            .where((JobEvent.job_id == job_id) & (JobEvent.at >= since))
            .order_by(JobEvent.at, JobEvent.id)
            .tuples()
        )
        return [(i, at, kind, loads(data)) for i, at, kind, data in q]
