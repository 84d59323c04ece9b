"""Cancelling a job: its open steps and questions, its running calls, its children."""

from __future__ import annotations

from agentbus.orchestrator.ports import Approvals, Jobs, Queues, Steps


class Canceller:
    def __init__(self, jobs: Jobs, steps: Steps, approvals: Approvals, queues: Queues) -> None:
        self.jobs = jobs
        self.steps = steps
        self.approvals = approvals
        self.queues = queues

    def cancel(self, job_id: str) -> None:
        """Cancel a job's open steps and approvals, stop its running calls, cancel its children."""
        self.approvals.cancel_approvals(job_id)
        for row in self.steps.cancel_open_steps(job_id):
            if row.worker:
                self.queues.cancel_call(row.worker, row.id)
        for child in self.jobs.children(job_id):
            try:
                self.jobs.cancel_job(child)
            except Exception:  # already finished: nothing to cancel
                continue
            self.cancel(child)
