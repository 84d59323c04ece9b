"""Deployment-wide maintenance under partitioned orchestrators, on the real PostgreSQL and Redis.

Shard 0's holder runs the reconciler; a stuck job of a shard another orchestrator holds is handed
to that shard's stream, not advanced here, so each job is advanced by its own shard's holder.
"""

from __future__ import annotations

from agentbus.bus import ControlStream, connect
from agentbus.config import Settings
from agentbus.domain import App, Context, JobState, TaskState
from agentbus.domain.shards import shard_of
from agentbus.orchestrator.service import Orchestrator
from agentbus.store import NewJob, NewStep, Repositories


def setup(pg_url: str, redis_url: str) -> tuple[Repositories, ControlStream, Orchestrator, list[str]]:
    """An orchestrator of two shards that holds shard 0 only (another holds shard 1)."""
    settings = Settings(database_url=pg_url, redis_url=redis_url, reconcile_after_s=0.0, shards=2)
    store = Repositories.from_url(pg_url)
    app = App("t")

    @app.task
    def work(ctx: Context, i: int) -> int:
        return i

    @app.agent
    def flow(ctx: Context, i: int) -> int:
        return int(ctx.run(work, i))

    orch = Orchestrator(settings, app, store, connect(redis_url), name="holder-of-0")
    orch.held = frozenset({0})
    orch.stream.ensure_group(range(2))
    jobs = [store.jobs.create_job(NewJob("flow", {"i": i}))[0].id for i in range(12)]
    assert {shard_of(j, 2) for j in jobs} == {0, 1}
    return store, orch.stream, orch, jobs


def test_the_reconciler_advances_its_own_shards_jobs_and_hands_the_others_to_their_shard(
    pg_url: str, redis_url: str
) -> None:
    store, stream, orch, jobs = setup(pg_url, redis_url)
    orch._maintain(orch.maintenance.reconcile)
    states = {j: store.jobs.get_job(j).state for j in jobs}
    assert all(states[j] == JobState.RUNNING for j in jobs if shard_of(j, 2) == 0)
    elsewhere = [j for j in jobs if shard_of(j, 2) == 1]
    assert all(states[j] == JobState.SUBMITTED for j in elsewhere)  # not advanced here
    handed = stream.read("holder-of-1", shards=[1], block_ms=10)
    assert sorted(j for e in handed for j in e.event.job_ids) == sorted(elsewhere)
    assert {e.event.kind for e in handed} == {"job.advance"}
    assert stream.read("holder-of-0", shards=[0], block_ms=10) == []


def test_only_the_holder_of_shard_zero_dispatches_pending_calls(pg_url: str, redis_url: str) -> None:
    """Pending calls wait for a concurrency slot or a GPU: two orchestrators sharing out a slot would exceed its cap."""
    store, _, orch, jobs = setup(pg_url, redis_url)
    step = NewStep(jobs[0], 0, "task", "work", TaskState.PENDING, args={"i": 0}, queue="cpu")
    store.steps.record_replay(jobs[0], [step], None)
    orch.held = frozenset({1})  # another orchestrator holds shard 0
    assert orch.driver.admission.dispatch_pending() == 0
    assert [r.id for r in store.steps.pending_tasks()] == [step.id]
    orch.held = frozenset({0})
    assert orch.driver.admission.dispatch_pending() == 1
    assert store.steps.pending_tasks() == []
