"""An agent's ``ctx.emit`` is sent once although the agent is replayed many times (pure engine, no I/O)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agentbus.domain import (
    App,
    Context,
    InvalidInput,
    PayloadTooLarge,
    ReplayResult,
    ScheduleTask,
    StepRecord,
    TaskState,
    replay,
)
from agentbus.domain.app import AgentDef

JOB = "job-1"


def make_app() -> tuple[App, AgentDef]:
    app = App("t")

    @app.task
    def square(ctx: Context, x: int) -> int:
        return x * x

    @app.agent
    def narrator(ctx: Context, steps: int = 3) -> list[int]:
        got = []
        for i in range(steps):
            ctx.emit({"step": i, "phase": "before"})
            got.append(ctx.run(square, i))
            ctx.emit({"step": i, "phase": "after"})
        ctx.now()  # a value step: the replay goes on past it at once
        ctx.emit("done")
        return got

    return app, app.agents["narrator"]


def once(app: App, agent: AgentDef, journal: dict[int, StepRecord], max_bytes: int = 65_536) -> ReplayResult:
    return replay(
        app, agent, {}, dict(journal), job_id=JOB, clock=lambda: 5.0, new_uuid=lambda: "u", max_output_bytes=max_bytes
    )


def sent(res: ReplayResult) -> list[tuple[int, Any]]:
    return [(o.seq, json.loads(o.data_json)) for o in res.outputs]


def test_each_emit_is_sent_once_across_every_replay_with_the_same_seq() -> None:
    app, agent = make_app()
    journal: dict[int, StepRecord] = {}
    delivered: list[tuple[int, Any]] = []
    for _ in range(10):
        res = once(app, agent, journal)
        delivered += sent(res)
        if res.status == "completed":
            break
        for cmd in res.commands:
            assert isinstance(cmd, ScheduleTask)
            journal[cmd.seq] = StepRecord(cmd.seq, "task", cmd.task.name, TaskState.RUNNING)
        # a replay while the task runs (a duplicate message) re-runs the same code: it sends nothing
        assert sent(once(app, agent, journal)) == []
        for cmd in res.commands:
            assert isinstance(cmd, ScheduleTask)
            journal[cmd.seq] = StepRecord(cmd.seq, "task", cmd.task.name, TaskState.SUCCEEDED, cmd.args["x"] ** 2)
    assert res.status == "completed" and res.result == [0, 1, 4]
    phases = [{"step": i, "phase": p} for i in range(3) for p in ("before", "after")]
    assert delivered == list(enumerate([*phases, "done"]))


def test_an_emit_before_a_step_still_running_is_not_sent_again() -> None:
    app, agent = make_app()
    first = once(app, agent, {})
    assert sent(first) == [(0, {"step": 0, "phase": "before"})]
    running = {0: StepRecord(0, "task", "square", TaskState.RUNNING)}
    assert sent(once(app, agent, running)) == []


def test_an_emit_in_the_replay_that_moves_past_the_journal_is_new() -> None:
    app, agent = make_app()
    journal = {0: StepRecord(0, "task", "square", TaskState.SUCCEEDED, 0)}
    # step 0 finished: the emit after it, and the one before step 1, are new; seq counts all emits
    assert sent(once(app, agent, journal)) == [(1, {"step": 0, "phase": "after"}), (2, {"step": 1, "phase": "before"})]


@pytest.mark.parametrize(
    ("data", "error"), [(float("nan"), InvalidInput), ({1, 2}, InvalidInput), ("x" * 100, PayloadTooLarge)]
)
def test_data_that_is_not_json_or_too_large_fails_the_agent_in_every_replay(data: Any, error: type) -> None:
    app = App("t")

    @app.agent
    def bad(ctx: Context) -> None:
        ctx.emit(data)

    res = replay(
        app, app.agents["bad"], {}, {}, job_id=JOB, clock=lambda: 0.0, new_uuid=lambda: "u", max_output_bytes=50
    )
    assert res.status == "failed" and res.error is not None and res.error.type == error.__name__
    assert "ctx.emit" in res.error.message and res.outputs == ()


def test_a_fan_out_built_over_several_replays_sends_the_emit_before_it_once() -> None:
    app = App("t")

    @app.task
    def square(ctx: Context, x: int) -> int:
        return x * x

    @app.agent
    def fan(ctx: Context) -> int:
        ctx.emit("start")
        total = sum(ctx.map(square, range(10)))
        ctx.emit("end")
        return total

    journal: dict[int, StepRecord] = {}
    delivered: list[tuple[int, Any]] = []
    for _ in range(10):
        res = replay(
            app,
            app.agents["fan"],
            {},
            dict(journal),
            job_id=JOB,
            clock=lambda: 0.0,
            new_uuid=lambda: "u",
            max_new_calls=4,
        )
        delivered += sent(res)
        if res.status == "completed":
            break
        for cmd in res.commands:  # each replay builds at most 4 calls; they finish at once here
            assert isinstance(cmd, ScheduleTask)
            journal[cmd.seq] = StepRecord(cmd.seq, "task", "square", TaskState.SUCCEEDED, cmd.args["x"] ** 2)
    assert res.result == 285 and delivered == [(0, "start"), (1, "end")]
