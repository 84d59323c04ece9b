"""An agent's calls are checked against the callee's schema before they take a step (pure engine)."""

from __future__ import annotations

import dataclasses
from typing import Any, get_type_hints

from agentbus.domain import AgentContext, App, ReplayResult, ScheduleTask, StartChild, TaskFailed, replay
from agentbus.domain.app import AgentDef, TaskOptionArgs, TaskOptions

app = App("calls")


@app.task
def score(ctx: Any, text: str, weight: int = 1) -> int:
    return len(text) * weight


@app.task
def anything(ctx: Any, value: Any) -> Any:
    return value


@app.agent
def child(ctx: AgentContext, n: int) -> int:
    return n


def run(agent: AgentDef[Any, Any]) -> ReplayResult:
    return replay(app, agent, {}, {}, job_id="j", clock=lambda: 0.0, new_uuid=lambda: "u")


def caught(call: Any) -> AgentDef[Any, Any]:
    """An agent that makes ``call``, catches its TaskFailed, then runs one good task."""

    def agent(ctx: AgentContext) -> dict[str, Any]:
        try:
            call(ctx)
        except TaskFailed as exc:
            ctx.run(score, "after")
            return {"type": exc.error_type, "message": exc.error_message, "task": exc.task}
        return {}

    agent.__name__ = f"agent_{len(app.agents)}"
    return app.agent(agent)


def test_a_wrong_argument_type_is_a_task_failed_naming_the_field_before_anything_is_sent() -> None:
    res = run(caught(lambda ctx: ctx.run(score, 5)))
    assert res.status == "suspended"
    # nothing sent for the bad call; its step stays empty in the journal, so that every replay
    # raises at the same place and the next call is step 1 in each
    assert res.commands == (ScheduleTask(1, score, {"text": "after"}),)


def test_the_error_names_the_task_and_the_field() -> None:
    agent = caught(lambda ctx: ctx.run(score, "x", weight="heavy"))
    res = replay(app, agent, {}, {1: _done(1, "score", 5)}, job_id="j", clock=lambda: 0.0, new_uuid=lambda: "u")
    assert res.result["type"] == "ValidationFailed" and res.result["task"] == "score"
    assert "invalid arguments at weight" in res.result["message"]


def test_a_non_json_argument_fails_the_call_with_a_clear_error() -> None:
    agent = caught(lambda ctx: ctx.run(anything, object()))
    res = replay(app, agent, {}, {1: _done(1, "score", 5)}, job_id="j", clock=lambda: 0.0, new_uuid=lambda: "u")
    assert res.result["type"] == "ValidationFailed"
    assert "argument 'value' of task 'anything' is not JSON" in res.result["message"]


def test_missing_and_unknown_arguments_are_validation_failures_too() -> None:
    for call in (lambda ctx: ctx.run(score), lambda ctx: ctx.run(score, "x", colour=1)):
        agent = caught(call)
        res = replay(app, agent, {}, {1: _done(1, "score", 5)}, job_id="j", clock=lambda: 0.0, new_uuid=lambda: "u")
        assert res.result["type"] == "ValidationFailed"


def test_a_child_agents_input_is_checked_as_well() -> None:
    agent = caught(lambda ctx: ctx.call_agent(child, "three"))
    res = replay(app, agent, {}, {1: _done(1, "score", 5)}, job_id="j", clock=lambda: 0.0, new_uuid=lambda: "u")
    assert res.result["type"] == "ValidationFailed"
    assert res.result["task"] == "child" and "invalid arguments at n" in res.result["message"]


def test_an_uncaught_bad_call_fails_the_job_with_the_field_in_its_error() -> None:
    @app.agent
    def careless(ctx: AgentContext) -> int:
        return ctx.call_agent(child, n="three")

    res = run(careless)
    assert res.status == "failed" and res.error is not None
    assert res.error.type == "TaskFailed" and "ValidationFailed" in res.error.message and "n" in res.error.message
    assert res.commands == ()


def test_good_calls_store_their_arguments_as_given() -> None:
    @app.agent
    def fine(ctx: AgentContext) -> list[Any]:
        return ctx.gather(ctx.start(score, "x", weight=2), ctx.start(child, 3))

    assert run(fine).commands == (ScheduleTask(0, score, {"text": "x", "weight": 2}), StartChild(1, "child", {"n": 3}))


def test_the_task_decorator_keeps_the_function_callable_as_it_was() -> None:
    assert score(None, "abc", weight=2) == 6


def test_the_decorators_keywords_are_exactly_the_task_options() -> None:
    assert set(get_type_hints(TaskOptionArgs)) == {f.name for f in dataclasses.fields(TaskOptions)}


def _done(seq: int, name: str, result: Any) -> Any:
    from agentbus.domain import StepRecord, TaskState

    return StepRecord(seq, "task", name, TaskState.SUCCEEDED, result)
