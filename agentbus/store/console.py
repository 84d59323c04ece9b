"""Read-only queries the web console needs beyond the JSON API's: a job's whole journal a page at a
time with its timings, its sub-agents, and a cursor that starts a job listing at a point in time.

Kept apart from the repositories the roles use: nothing here writes, and every query is bounded
(a page, an index range), so a job with 10,000 steps or a table of 100,000 jobs costs the same
as a small one.
"""

from __future__ import annotations

from dataclasses import dataclass

import peewee

from agentbus.store._cursor import encode_cursor
from agentbus.store.db import translate_errors
from agentbus.store.models import Step
from agentbus.store.records import loads


@dataclass(frozen=True)
class StepView:
    """One journal entry as the console shows it: what, where, why and how long."""

    id: str
    seq: int
    kind: str
    name: str
    state: str
    attempt: int
    retries: int
    queue: str | None
    worker: str | None
    route_reason: str | None
    error_type: str | None
    error_message: str | None
    error_traceback: str | None
    created_at: float
    queued_at: float | None
    started_at: float | None
    finished_at: float | None

    @property
    def wait_s(self) -> float | None:
        """Time in the queue: from queued (or created) to started."""
        if self.started_at is None:
            return None
        return max(0.0, self.started_at - (self.queued_at or self.created_at))

    @property
    def run_s(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return max(0.0, self.finished_at - self.started_at)


@dataclass(frozen=True)
class ChildView:
    """A sub-agent started by a job's ``agent`` step (its job id is the step's id)."""

    job_id: str
    seq: int
    name: str
    state: str
    depth: int


_FIELDS = (
    Step.id,
    Step.seq,
    Step.kind,
    Step.name,
    Step.state,
    Step.attempt,
    Step.retries,
    Step.queue,
    Step.worker,
    Step.route_reason,
    Step.error_type,
    Step.error_message,
    Step.error_traceback,
    Step.created_at,
    Step.queued_at,
    Step.started_at,
    Step.finished_at,
)


def cursor_before(ts: float) -> str:
    """A ``list_jobs`` cursor that starts the listing with the jobs created before ``ts``.

    A cursor names the last row seen, (created_at, id); "\x01" sorts before any id a job can have
    (NUL is refused), so no job created at exactly ``ts`` is listed: the window ends before it."""
    return encode_cursor(ts, "\x01")


class ConsoleQueries:
    """Over the database the repositories bound the models to."""

    def __init__(self, db: peewee.Database | None = None) -> None:
        self.db = db if db is not None else Step._meta.database

    @translate_errors
    def step_page(self, job_id: str, after_seq: int = -1, limit: int = 100) -> list[StepView]:
        """Steps after ``after_seq`` in journal order (recorded values are internal, not shown)."""
        q = (
            Step.select(*_FIELDS)
            .where((Step.job_id == job_id) & (Step.seq > after_seq) & (Step.kind != "value"))
            .order_by(Step.seq)
            .limit(limit)
            .tuples()
        )
        return [StepView(*row) for row in q]

    @translate_errors
    def step_count(self, job_id: str) -> int:
        return int(Step.select().where((Step.job_id == job_id) & (Step.kind != "value")).count())

    @translate_errors
    def step_args(self, step_id: str) -> object:
        row = Step.select(Step.args).where(Step.id == step_id).tuples().first()
        return None if row is None else loads(row[0])

    @translate_errors
    def sub_agents(self, job_id: str, max_depth: int = 4, max_nodes: int = 200) -> list[ChildView]:
        """The tree of sub-agents under a job, depth first (a child's id is its ``agent`` step's id)."""
        out: list[ChildView] = []

        def walk(parent: str, depth: int) -> None:
            q = (
                Step.select(Step.id, Step.seq, Step.name, Step.state)
                .where((Step.job_id == parent) & (Step.kind == "agent"))
                .order_by(Step.seq)
                .limit(max_nodes)
                .tuples()
            )
            for sid, seq, name, state in list(q):
                if len(out) >= max_nodes:
                    return
                out.append(ChildView(sid, seq, name, state, depth))
                if depth < max_depth:
                    walk(sid, depth + 1)

        walk(job_id, 0)
        return out
