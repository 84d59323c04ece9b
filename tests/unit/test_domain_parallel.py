"""Parallel steps on the pure engine: ``ctx.start``, ``ctx.gather``, ``ctx.wait_any`` (docs/programming.md).

Each test replays an agent against journals as the orchestrator would see them over time: the same
code, the steps finishing in different orders.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from agentbus.domain import (
    AgentContext,
    App,
    AskHuman,
    ErrorInfo,
    RecordValue,
    ReplayResult,
    ScheduleTask,
    StartChild,
    StepRecord,
    TaskCancelled,
    TaskFailed,
    TaskState,
    replay,
)
from agentbus.domain.app import AgentDef, TaskDef

S, RUNNING = TaskState.SUCCEEDED, TaskState.RUNNING


def run(
    app: App, agent: AgentDef[Any, Any] | TaskDef[Any, Any], journal: Mapping[int, StepRecord] | None = None, **kw: Any
) -> ReplayResult:
    return replay(
        app,
        agent,
        kw.pop("input", {}),
        dict(journal or {}),
        job_id="job-1",
        clock=lambda: 1000.0,
        new_uuid=lambda: "u",
        **kw,
    )


def ok(seq: int, name: str, result: Any, kind: str = "task") -> StepRecord:
    return StepRecord(seq, kind, name, S, result)  # type: ignore[arg-type]


def running(seq: int, name: str, kind: str = "task") -> StepRecord:
    return StepRecord(seq, kind, name, RUNNING)  # type: ignore[arg-type]


def failed(seq: int, name: str, etype: str = "ValueError", kind: str = "task") -> StepRecord:
    return StepRecord(seq, kind, name, TaskState.FAILED, None, ErrorInfo(etype, f"{name} broke"))  # type: ignore[arg-type]


def cancelled(seq: int, name: str) -> StepRecord:
    return StepRecord(seq, "task", name, TaskState.CANCELLED)


app = App("parallel")


@app.task
def fetch(ctx: Any, url: str) -> str:
    return url


@app.task
def score(ctx: Any, text: str, weight: int = 1) -> int:
    return len(text) * weight


@app.agent
def child(ctx: AgentContext, n: int, label: str = "") -> int:
    return n


@app.agent
def both(ctx: AgentContext, url: str) -> list[Any]:
    """A task and a sub-agent at once."""
    page = ctx.start(fetch, url)
    sub = ctx.start(child, 7)
    return ctx.gather(page, sub)


# -- start and gather -------------------------------------------------------------------------------


def test_start_sends_every_step_at_once_and_gather_waits_for_all() -> None:
    first = run(app, both, input={"url": "u1"})
    assert first.status == "suspended"
    assert first.commands == (ScheduleTask(0, fetch, {"url": "u1"}), StartChild(1, "child", {"n": 7}))


def test_gather_returns_results_in_handle_order_whichever_finished_first() -> None:
    child_first = {0: running(0, "fetch"), 1: ok(1, "child", 7, kind="agent")}
    assert run(app, both, child_first, input={"url": "u1"}).commands == ()  # waits, sends nothing again
    done = {0: ok(0, "fetch", "page"), 1: ok(1, "child", 7, kind="agent")}
    assert run(app, both, done, input={"url": "u1"}).result == ["page", 7]


def test_a_failure_is_raised_only_once_every_step_has_finished() -> None:
    journal = {0: running(0, "fetch"), 1: failed(1, "child", kind="agent")}
    res = run(app, both, journal, input={"url": "u1"})
    assert (res.status, res.commands) == ("suspended", ())


@app.agent
def two_fail(ctx: AgentContext) -> str:
    a, b = ctx.start(fetch, "a"), ctx.start(fetch, "b")
    try:
        ctx.gather(a, b)
    except TaskFailed as exc:
        return exc.error_type
    return "none"


def test_gather_raises_the_first_failure_in_handle_order_not_in_finishing_order() -> None:
    journal = {0: failed(0, "fetch", "KeyError"), 1: failed(1, "fetch", "OSError")}
    assert run(app, two_fail, journal).result == "KeyError"


@app.agent
def tolerant(ctx: AgentContext) -> list[str]:
    hs = [ctx.start(fetch, u) for u in ("a", "b", "c")]
    return [r if isinstance(r, str) else type(r).__name__ for r in ctx.gather(*hs, return_exceptions=True)]


def test_gather_with_return_exceptions_puts_failures_and_cancellations_in_place() -> None:
    journal = {0: ok(0, "fetch", "A"), 1: failed(1, "fetch"), 2: cancelled(2, "fetch")}
    assert run(app, tolerant, journal).result == ["A", "TaskFailed", "TaskCancelled"]


@app.agent
def pipeline(ctx: AgentContext) -> list[Any]:
    """Start one, run another to the end meanwhile, then wait for the first."""
    slow = ctx.start(fetch, "slow")
    quick = ctx.run(score, "abc")
    return [quick, slow.result()]


def test_a_started_step_runs_while_the_agent_goes_on_with_others() -> None:
    first = run(app, pipeline)
    assert first.commands == (ScheduleTask(0, fetch, {"url": "slow"}), ScheduleTask(1, score, {"text": "abc"}))
    middle = run(app, pipeline, {0: running(0, "fetch"), 1: ok(1, "score", 3)})
    assert (middle.status, middle.commands) == ("suspended", ())
    done = run(app, pipeline, {0: ok(0, "fetch", "S"), 1: ok(1, "score", 3)})
    assert done.result == [3, "S"]


# -- wait_any ---------------------------------------------------------------------------------------


@app.agent
def race(ctx: AgentContext) -> dict[str, Any]:
    a, b = ctx.start(fetch, "a"), ctx.start(fetch, "b")
    first = ctx.wait_any(a, b)
    return {"winner": first.seq, "value": first.result()}


def test_wait_any_suspends_until_one_has_finished_and_records_which() -> None:
    assert run(app, race, {0: running(0, "fetch"), 1: running(1, "fetch")}).commands == ()
    res = run(app, race, {0: running(0, "fetch"), 1: ok(1, "fetch", "B")})
    assert res.commands == (RecordValue(2, "wait_any", 1),)
    assert res.result == {"winner": 1, "value": "B"}


def test_wait_any_replays_its_recorded_choice_when_both_have_finished_since() -> None:
    journal = {0: ok(0, "fetch", "A"), 1: ok(1, "fetch", "B"), 2: ok(2, "wait_any", 1, kind="value")}
    res = run(app, race, journal)
    assert (res.commands, res.result) == ((), {"winner": 1, "value": "B"})


def test_wait_any_picks_the_first_in_argument_order_when_several_finished_before_it_looked() -> None:
    res = run(app, race, {0: ok(0, "fetch", "A"), 1: ok(1, "fetch", "B")})
    assert res.commands == (RecordValue(2, "wait_any", 0),)


def test_a_failed_step_can_win_wait_any_and_raises_when_read() -> None:
    res = run(app, race, {0: running(0, "fetch"), 1: failed(1, "fetch")})
    assert res.status == "failed" and res.error is not None and res.error.type == "TaskFailed"
    assert res.commands == (RecordValue(2, "wait_any", 1),)


def test_a_recorded_choice_the_code_cannot_have_made_is_a_divergence() -> None:
    journal = {0: ok(0, "fetch", "A"), 1: ok(1, "fetch", "B"), 2: ok(2, "wait_any", 5, kind="value")}
    res = run(app, race, journal)
    assert res.error is not None and res.error.type == "NonDeterministicAgent"


# -- what happens to the rest -----------------------------------------------------------------------


def test_a_job_that_returns_with_steps_still_running_names_them_to_cancel() -> None:
    res = run(app, race, {0: running(0, "fetch"), 1: ok(1, "fetch", "B")})
    assert res.status == "completed"
    assert res.unfinished == (0,)


@app.agent
def fire_and_forget(ctx: AgentContext) -> str:
    ctx.start(fetch, "never awaited")
    ctx.start(child, 1)
    return "done"


def test_a_step_started_and_never_waited_for_in_the_last_replay_is_not_sent() -> None:
    res = run(app, fire_and_forget)
    assert (res.status, res.result, res.commands, res.unfinished) == ("completed", "done", (), ())


@app.agent
def gives_up(ctx: AgentContext) -> None:
    ctx.start(fetch, "a")
    raise RuntimeError("changed my mind")


def test_a_failing_agent_leaves_nothing_running_either() -> None:
    assert run(app, gives_up).commands == ()
    res = run(app, gives_up, {0: running(0, "fetch")})
    assert (res.status, res.unfinished) == ("failed", (0,))


def test_a_suspended_agent_keeps_every_started_step() -> None:
    res = run(app, both, input={"url": "u"})
    assert res.unfinished == () and len(res.commands) == 2


# -- thin forms -------------------------------------------------------------------------------------


@app.agent
def positional_child(ctx: AgentContext) -> int:
    return ctx.call_agent(child, 10, label="x")


def test_call_agent_takes_positional_and_keyword_input_like_run() -> None:
    assert run(app, positional_child).commands == (StartChild(0, "child", {"n": 10, "label": "x"}),)


@app.agent
def asks_two(ctx: AgentContext) -> list[bool]:
    answers = ctx.ask_all([{"prompt": "one?"}, {"prompt": "two?"}])
    return [a["approved"] for a in answers]


def test_ask_all_is_a_gather_of_questions() -> None:
    first = run(app, asks_two)
    assert [type(c) for c in first.commands] == [AskHuman, AskHuman]
    half = run(
        app, asks_two, {0: ok(0, "ask_human", {"approved": True}, kind="human"), 1: running(1, "ask_human", "human")}
    )
    assert (half.status, half.commands) == ("suspended", ())


def test_map_fails_at_the_cap_before_anything_is_sent() -> None:
    @app.agent
    def huge(ctx: AgentContext) -> int:
        return len(ctx.map(score, (str(i) for i in range(10**9))))

    res = run(app, huge, max_steps=5)
    assert (res.status, res.commands) == ("failed", ())
    assert res.error is not None and res.error.type == "TooManyTasks"


def test_start_past_the_budget_is_counted_but_sent_by_a_later_replay() -> None:
    @app.agent
    def wide(ctx: AgentContext) -> list[int]:
        return ctx.gather(*[ctx.start(score, "x" * i) for i in range(5)])

    res = run(app, wide, max_new_calls=2)
    assert res.more and [c.seq for c in res.commands if isinstance(c, ScheduleTask)] == [0, 1]
    later = run(app, wide, {0: running(0, "score"), 1: running(1, "score")}, max_new_calls=2)
    assert [c.seq for c in later.commands if isinstance(c, ScheduleTask)] == [2, 3]


def test_a_handle_of_a_cancelled_step_raises_task_cancelled() -> None:
    @app.agent
    def reads(ctx: AgentContext) -> str:
        h = ctx.start(fetch, "x")
        try:
            h.result()
        except TaskCancelled:
            return "cancelled"
        return "ok"

    assert run(app, reads, {0: cancelled(0, "fetch")}).result == "cancelled"


# -- when the orchestrator replays ------------------------------------------------------------------


def test_a_wait_on_every_open_step_is_replayed_once_none_is_open() -> None:
    res = run(app, both, {0: running(0, "fetch"), 1: running(1, "child", "agent")}, input={"url": "u"})
    assert res.status == "suspended" and not res.early


def test_wait_any_and_a_wait_on_some_started_steps_are_replayed_as_each_step_finishes() -> None:
    assert run(app, race, {0: running(0, "fetch"), 1: running(1, "fetch")}).early
    # pipeline waits for "score" while "fetch" it started runs on
    assert run(app, pipeline, {0: running(0, "fetch"), 1: running(1, "score")}).early
    assert not run(app, pipeline, {0: running(0, "fetch"), 1: ok(1, "score", 3)}).early
