"""Changing an agent while its jobs are in flight: ``ctx.patched`` and the divergence error (pure engine).

The journals below are what the code before the change wrote; the agents are the code after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from agentbus.domain import AgentContext, App, RecordValue, ReplayResult, ScheduleTask, StepRecord, TaskState, replay
from agentbus.domain.app import AgentDef

app = App("versions")


@app.task
def fetch(ctx: Any, url: str) -> str:
    return url


@app.task
def score(ctx: Any, text: str, weight: int = 1) -> int:
    return len(text) * weight


@app.task
def notify(ctx: Any, text: str) -> None:
    return None


@app.agent
def before(ctx: AgentContext) -> int:
    """The code every journal below was written by."""
    page = ctx.run(fetch, "a")
    return ctx.run(score, page)


@app.agent
def after(ctx: AgentContext) -> int:
    page = ctx.run(fetch, "a")
    if ctx.patched("score-twice"):
        ctx.run(notify, page)
        return ctx.run(score, page, weight=2)
    return ctx.run(score, page)


def run(agent: AgentDef[Any, Any], journal: Mapping[int, StepRecord]) -> ReplayResult:
    return replay(app, agent, {}, dict(journal), job_id="j", clock=lambda: 0.0, new_uuid=lambda: "u")


def ok(seq: int, name: str, result: Any, kind: str = "task") -> StepRecord:
    return StepRecord(seq, kind, name, TaskState.SUCCEEDED, result)  # type: ignore[arg-type]


def running(seq: int, name: str) -> StepRecord:
    return StepRecord(seq, "task", name, TaskState.RUNNING)


MARKER = "patched:score-twice"


def test_a_new_job_records_the_marker_and_takes_the_new_branch() -> None:
    res = run(after, {0: ok(0, "fetch", "page")})
    assert res.commands == (RecordValue(1, MARKER, True), ScheduleTask(2, notify, {"text": "page"}))


def test_an_old_journal_without_the_marker_replays_the_old_branch() -> None:
    waiting = run(after, {0: ok(0, "fetch", "page"), 1: running(1, "score")})
    assert (waiting.status, waiting.commands) == ("suspended", ())
    done = run(after, {0: ok(0, "fetch", "page"), 1: ok(1, "score", 4)})
    assert (done.status, done.result) == ("completed", 4)


def test_a_journal_with_the_marker_replays_the_new_branch_without_recording_it_again() -> None:
    journal = {0: ok(0, "fetch", "page"), 1: ok(1, MARKER, True, "value"), 2: ok(2, "notify", None)}
    res = run(after, journal)
    assert res.commands == (ScheduleTask(3, score, {"text": "page", "weight": 2}),)


def test_an_old_job_that_had_not_reached_the_change_takes_the_new_branch() -> None:
    # the code before the change had asked for nothing past step 0: nothing to replay differently
    res = run(after, {0: running(0, "fetch")})
    assert (res.status, res.commands) == ("suspended", ())
    assert run(after, {0: ok(0, "fetch", "p")}).commands[0] == RecordValue(1, MARKER, True)


def test_asking_twice_for_one_change_answers_the_same_with_one_marker() -> None:
    @app.agent
    def twice(ctx: AgentContext) -> list[bool]:
        return [ctx.patched("x"), ctx.run(fetch, "a") == "a", ctx.patched("x")]

    first = run(twice, {})
    assert first.commands == (RecordValue(0, "patched:x", True), ScheduleTask(1, fetch, {"url": "a"}))
    assert run(twice, {0: ok(0, "patched:x", True, "value"), 1: ok(1, "fetch", "a")}).result == [True, True, True]

    old = run(twice, {0: ok(0, "fetch", "a")})  # written before either call existed
    assert (old.status, old.result) == ("completed", [False, True, False])


def test_a_change_id_must_fit_the_journal() -> None:
    @app.agent
    def bad(ctx: AgentContext) -> bool:
        return ctx.patched("")

    res = run(bad, {})
    assert res.error is not None and res.error.type == "ValueError"


# -- the divergence error -------------------------------------------------------------------------------


@app.agent
def unguarded(ctx: AgentContext) -> int:
    """The change made without ctx.patched."""
    page = ctx.run(fetch, "a")
    ctx.run(notify, page)
    return ctx.run(score, page, weight=2)


def test_a_change_without_patched_fails_old_jobs_naming_the_step_and_both_sides() -> None:
    res = run(unguarded, {0: ok(0, "fetch", "page"), 1: ok(1, "score", 4)})
    assert res.status == "failed" and res.error is not None
    assert res.error.type == "NonDeterministicAgent"
    assert "step 1" in res.error.message
    assert "recorded task 'score'" in res.error.message  # what the journal holds
    assert "asks for task 'notify'" in res.error.message  # what the code asked
    assert "ctx.patched" in res.error.message


def test_code_that_returns_early_names_the_step_the_journal_holds_past_it() -> None:
    @app.agent
    def shorter(ctx: AgentContext) -> str:
        return ctx.run(fetch, "a")

    res = run(shorter, {0: ok(0, "fetch", "page"), 1: ok(1, "score", 4)})
    assert res.error is not None and res.error.type == "NonDeterministicAgent"
    assert "step 1" in res.error.message and "'score'" in res.error.message


@app.agent
def mixed(ctx: AgentContext) -> int:
    ctx.patched("m")
    return ctx.wait_any(ctx.start(fetch, "a"), ctx.start(fetch, "b")).seq


@pytest.mark.parametrize("choice", [0, 1])
def test_patched_and_wait_any_markers_are_values_that_need_no_new_step_kind(choice: int) -> None:
    # both are journaled as "value" steps, like ctx.now(): the store and its schema are unchanged
    journal = {
        0: ok(0, "patched:m", True, "value"),
        1: ok(1, "fetch", "a"),
        2: ok(2, "fetch", "b"),
        3: ok(3, "wait_any", choice, "value"),
    }
    assert run(mixed, journal).result == choice + 1
    assert {r.kind for r in journal.values()} == {"value", "task"}
