"""Cancelling a job stops everything that hangs off it."""

from __future__ import annotations

from fakes import Queues, Record

from agentbus.domain import HumanRequest, JobState, TaskState
from agentbus.orchestrator.cancel import Canceller
from agentbus.store import NewJob, NewStep


def test_cancel_stops_open_steps_running_calls_questions_and_children_but_not_finished_children() -> None:
    record, queues = Record(), Queues()
    parent = record.create_job(NewJob("p", {}))[0].id
    steps = [NewStep(parent, i, "task", "work", TaskState.QUEUED) for i in range(3)]
    record.record_replay(parent, steps, None, asks=[(9, HumanRequest.build("ok?"))])
    record.run(f"{parent}-1", worker="w7")
    child = record.create_job(NewJob("c", {}, parent_id=parent, parent_seq=5))[0].id
    record.record_replay(child, [NewStep(child, 0, "task", "work", TaskState.QUEUED)], None)
    done = record.create_job(NewJob("c", {}, parent_id=parent, parent_seq=6))[0].id
    record.record_replay(done, [], JobState.SUCCEEDED)
    record.cancel_job(parent)

    Canceller(record, record, record, queues).cancel(parent)

    assert [s.state for s in record.of_job(parent)] == [TaskState.CANCELLED, TaskState.RUNNING, TaskState.CANCELLED]
    assert queues.cancelled == [("w7", f"{parent}-1")]  # the worker stops it; its outcome settles the step
    assert record.asks == {}
    assert record.jobs[child].state == JobState.CANCELLED and record.of_job(child)[0].state == TaskState.CANCELLED
    assert record.jobs[done].state == JobState.SUCCEEDED
