"""Planning: what a replay's commands need, before anything is written."""

from __future__ import annotations

from typing import Any

import pytest
from fakes import CPU_WORKER, Workers

from agentbus.config import Settings
from agentbus.domain import (
    App,
    AskHuman,
    ConfigError,
    Context,
    HumanRequest,
    JobState,
    RecordValue,
    ReplayResult,
    ScheduleTask,
    StartChild,
    StartTimer,
    TaskState,
)
from agentbus.orchestrator.plan import WAITING_FOR_SLOT, Planner, outcome_of, simple
from agentbus.orchestrator.router import Router
from agentbus.store import JobRecord

app = App("plan")


@app.task
def work(ctx: Context, i: int) -> int:
    return i


@app.task(device="gpu")
def on_gpu(ctx: Context) -> None:
    return None


@app.task(concurrency_key="user-{user}", max_concurrency=2)
def per_user(ctx: Context, user: str) -> None:
    return None


@app.agent
def fan_out(ctx: Context, n: int) -> int:
    return sum(ctx.map(work, range(n)))


def job(job_id: str = "j1", priority: int = 0, input: dict[str, Any] | None = None) -> JobRecord:
    return JobRecord(
        job_id,
        "fan_out",
        JobState.SUBMITTED,
        input or {},
        None,
        None,
        None,
        priority,
        None,
        None,
        0.0,
        None,
        None,
        0.0,
        "acme",
    )


def planner(*beats: Any, settings: Settings | None = None) -> Planner:
    return Planner(app, settings or Settings(), Router(Workers(*beats)))


def test_calls_that_can_go_now_are_planned_by_queue_without_steps_yet() -> None:
    plan = planner(CPU_WORKER).plan(job(priority=1), [ScheduleTask(0, work, {"i": 0}), ScheduleTask(1, work, {"i": 1})])
    assert plan.steps == [] and list(plan.calls) == ["cpu.high"]
    assert [(c.job_id, c.command.seq, c.reason) for c in plan.calls["cpu.high"]] == [
        ("j1", 0, "cpu task"),
        ("j1", 1, "cpu task"),
    ]
    assert not plan.parks


def test_a_call_no_live_worker_can_take_waits_as_pending_with_the_reason() -> None:
    plan = planner(CPU_WORKER).plan(job(), [ScheduleTask(0, on_gpu, {})])
    (step,) = plan.steps
    assert (step.state, step.queue, step.route_reason) == (TaskState.PENDING, None, "waiting for a GPU worker")
    assert plan.parks and not plan.calls


def test_a_call_with_a_concurrency_key_waits_for_admission_with_its_key_filled() -> None:
    plan = planner(CPU_WORKER).plan(job(), [ScheduleTask(0, per_user, {"user": "ann"})])
    (step,) = plan.steps
    assert (step.state, step.queue, step.concurrency_key, step.route_reason) == (
        TaskState.PENDING,
        "cpu",
        "user-ann",
        WAITING_FOR_SLOT,
    )


def test_a_concurrency_key_its_arguments_cannot_fill_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        planner(CPU_WORKER).plan(job(), [ScheduleTask(0, per_user, {"who": "ann"})])


def test_timers_values_children_and_questions_become_steps() -> None:
    ask = HumanRequest.build("ok?")
    commands = [
        StartTimer(0, 123.0),
        RecordValue(1, "now", 5.0),
        StartChild(2, "fan_out", {"n": 1}),
        AskHuman(3, ask),
    ]
    plan = planner().plan(job(priority=2), commands)
    assert [(s.seq, s.kind, s.state) for s in plan.steps] == [
        (0, "sleep", TaskState.PENDING),
        (1, "value", TaskState.SUCCEEDED),
        (2, "agent", TaskState.RUNNING),
        (3, "human", TaskState.PENDING),
    ]
    (child,) = plan.children
    # the child's id is its step's id (a replay that runs twice creates it once), with the parent's priority and tenant
    assert (child.id, child.parent_id, child.parent_seq, child.priority, child.tenant) == ("j1-2", "j1", 2, 2, "acme")
    assert plan.asks == [(3, ask)]
    assert not simple(commands) and simple(commands[:2])


def test_the_replay_stops_building_a_fan_out_at_its_budget_of_new_calls() -> None:
    p = planner(settings=Settings(max_calls_per_replay=10))
    res = p.replay(job(input={"n": 25}), app.job_type("fan_out"), {})
    assert res.status == "suspended" and res.more and len(res.commands) == 10


def test_a_result_that_is_not_json_fails_the_job() -> None:
    state, result, error = outcome_of(ReplayResult("completed", result={1, 2}))
    assert state == JobState.FAILED and result is None and error is not None and error.type == "TypeError"
    assert outcome_of(ReplayResult("completed", result=[1]))[:2] == (JobState.SUCCEEDED, [1])
    assert outcome_of(ReplayResult("suspended"))[0] is None
