"""The replay engine is pure: a journal and an agent in, commands or an outcome out."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest

from agentbus.domain import (
    App,
    Context,
    ErrorInfo,
    RecordValue,
    ReplayResult,
    ScheduleTask,
    StartChild,
    StartTimer,
    StepRecord,
    TaskCancelled,
    TaskFailed,
    TaskState,
    replay,
)
from agentbus.domain.app import AgentDef, TaskDef
from agentbus.domain.replay import MAX_TRACEBACK_CHARS, format_traceback

JOB = "job-1"
S = TaskState.SUCCEEDED


def fixed_clock(value: float = 1000.0) -> Callable[[], float]:
    return lambda: value


def no_clock() -> float:
    raise AssertionError("the clock must not be read when the journal holds the value")


def no_uuid() -> str:
    raise AssertionError("no uuid must be drawn when the journal holds the value")


def run(
    app: App,
    job_type: AgentDef | TaskDef,
    journal: Mapping[int, StepRecord] | None = None,
    input: dict[str, Any] | None = None,
    *,
    clock: Callable[[], float] | None = None,
    new_uuid: Callable[[], str] | None = None,
) -> ReplayResult:
    return replay(
        app,
        job_type,
        input or {},
        dict(journal or {}),
        job_id=JOB,
        clock=clock or fixed_clock(),
        new_uuid=new_uuid or (lambda: "uuid-1"),
    )


def ok(seq: int, name: str, result: Any, kind: str = "task") -> StepRecord:
    return StepRecord(seq, kind, name, S, result)  # type: ignore[arg-type]


def failed(seq: int, name: str, etype: str = "ValueError", msg: str = "bad", kind: str = "task") -> StepRecord:
    return StepRecord(seq, kind, name, TaskState.FAILED, None, ErrorInfo(etype, msg))  # type: ignore[arg-type]


def make_app() -> tuple[App, dict[str, Any]]:
    app = App("test")

    @app.task
    def double(ctx: Context, x: int) -> int:
        return 2 * x

    @app.task
    def add(ctx: Context, a: int, b: int = 0) -> int:
        return a + b

    @app.task
    def fetch(ctx: Context, url: str) -> str:
        return url

    return app, {"double": double, "add": add, "fetch": fetch}


# -- ctx.run ------------------------------------------------------------------------------------


def test_first_replay_of_a_single_run_schedules_one_task_and_suspends() -> None:
    app, t = make_app()

    @app.agent
    def one(ctx: Context, x: int) -> int:
        return int(ctx.run(t["double"], x)) + 1

    res = run(app, one, input={"x": 21})
    assert res.status == "suspended"
    assert res.commands == (ScheduleTask(0, t["double"], {"x": 21}),)
    assert res.result is None and res.error is None


def test_run_binds_positional_and_keyword_arguments_by_name() -> None:
    app, t = make_app()

    @app.agent
    def agent(ctx: Context) -> int:
        return int(ctx.run(t["add"], 1, b=2))

    res = run(app, agent)
    assert res.commands == (ScheduleTask(0, t["add"], {"a": 1, "b": 2}),)


def test_succeeded_step_completes_the_agent_with_its_result() -> None:
    app, t = make_app()

    @app.agent
    def one(ctx: Context, x: int) -> int:
        return int(ctx.run(t["double"], x)) + 1

    res = run(app, one, {0: ok(0, "double", 42)}, {"x": 21})
    assert res.status == "completed"
    assert res.result == 43
    assert res.commands == ()


def test_step_still_running_suspends_without_new_commands() -> None:
    app, t = make_app()

    @app.agent
    def one(ctx: Context) -> int:
        return int(ctx.run(t["double"], 1))

    for state in (TaskState.PENDING, TaskState.QUEUED, TaskState.RUNNING, TaskState.RETRYING):
        res = run(app, one, {0: StepRecord(0, "task", "double", state)})
        assert res.status == "suspended"
        assert res.commands == ()


def test_sequential_steps_schedule_one_at_a_time() -> None:
    app, t = make_app()

    @app.agent
    def chain(ctx: Context) -> int:
        a = ctx.run(t["double"], 1)
        return int(ctx.run(t["double"], a))

    res = run(app, chain, {0: ok(0, "double", 2)})
    assert res.status == "suspended"
    assert res.commands == (ScheduleTask(1, t["double"], {"x": 2}),)
    assert run(app, chain, {0: ok(0, "double", 2), 1: ok(1, "double", 4)}).result == 4


def test_a_single_task_job_type_runs_as_one_step() -> None:
    app, t = make_app()
    first = run(app, t["add"], input={"a": 1, "b": 2})
    assert first.status == "suspended"
    assert first.commands == (ScheduleTask(0, t["add"], {"a": 1, "b": 2}),)
    done = run(app, t["add"], {0: ok(0, "add", 3)}, {"a": 1, "b": 2})
    assert (done.status, done.result) == ("completed", 3)


# -- ctx.map ------------------------------------------------------------------------------------


def fan_app() -> tuple[App, AgentDef, TaskDef]:
    app, t = make_app()

    @app.agent
    def fan(ctx: Context, xs: list[int]) -> list[int]:
        return ctx.map(t["double"], xs)

    return app, fan, t["double"]


def test_map_schedules_every_item_at_once() -> None:
    app, fan, double = fan_app()
    res = run(app, fan, input={"xs": [1, 2, 3]})
    assert res.status == "suspended"
    assert res.commands == tuple(ScheduleTask(i, double, {"x": x}) for i, x in enumerate([1, 2, 3]))


def test_map_with_a_partial_journal_schedules_only_the_missing_items() -> None:
    app, fan, double = fan_app()
    journal = {0: ok(0, "double", 2), 2: StepRecord(2, "task", "double", TaskState.RUNNING)}
    res = run(app, fan, journal, {"xs": [1, 2, 3, 4]})
    assert res.status == "suspended"
    assert res.commands == (ScheduleTask(1, double, {"x": 2}), ScheduleTask(3, double, {"x": 4}))


def test_map_all_done_returns_the_results_in_item_order() -> None:
    app, fan, _ = fan_app()
    journal = {i: ok(i, "double", r) for i, r in enumerate([2, 4, 6])}
    res = run(app, fan, journal, {"xs": [1, 2, 3]})
    assert (res.status, res.result, res.commands) == ("completed", [2, 4, 6], ())


def test_map_of_nothing_completes_at_once() -> None:
    app, fan, _ = fan_app()
    res = run(app, fan, input={"xs": []})
    assert (res.status, res.result) == ("completed", [])


def test_map_unpacks_dicts_and_sequences_when_asked() -> None:
    app, t = make_app()

    @app.agent
    def agent(ctx: Context) -> list[int]:
        return ctx.map(t["add"], [{"a": 1, "b": 2}, [3, 4]], unpack=True)

    res = run(app, agent)
    assert res.commands == (ScheduleTask(0, t["add"], {"a": 1, "b": 2}), ScheduleTask(1, t["add"], {"a": 3, "b": 4}))


def test_map_failure_raises_task_failed_once_all_finished() -> None:
    app, fan, _ = fan_app()
    journal = {0: ok(0, "double", 2), 1: failed(1, "double")}
    res = run(app, fan, journal, {"xs": [1, 2]})
    assert res.status == "failed"
    assert res.error is not None and res.error.type == "TaskFailed"


def test_map_waits_for_every_item_even_when_one_has_failed() -> None:
    app, fan, double = fan_app()
    res = run(app, fan, {0: failed(0, "double")}, {"xs": [1, 2]})
    assert res.status == "suspended"
    assert res.commands == (ScheduleTask(1, double, {"x": 2}),)


def test_map_with_return_exceptions_puts_failures_in_the_list() -> None:
    app, t = make_app()

    @app.agent
    def tolerant(ctx: Context, xs: list[int]) -> list[Any]:
        out = ctx.map(t["double"], xs, return_exceptions=True)
        return [r if not isinstance(r, Exception) else f"{type(r).__name__}:{r.error_type}" for r in out]

    journal = {0: ok(0, "double", 2), 1: failed(1, "double", "ZeroDivisionError", "oops"), 2: ok(2, "double", 6)}
    res = run(app, tolerant, journal, {"xs": [1, 2, 3]})
    assert res.status == "completed"
    assert res.result == [2, "TaskFailed:ZeroDivisionError", 6]


def test_map_with_return_exceptions_returns_cancelled_calls_too() -> None:
    app, t = make_app()
    seen: list[Any] = []

    @app.agent
    def tolerant(ctx: Context) -> int:
        seen.extend(ctx.map(t["double"], [1, 2], return_exceptions=True))
        return len(seen)

    journal = {0: ok(0, "double", 2), 1: StepRecord(1, "task", "double", TaskState.CANCELLED)}
    res = run(app, tolerant, journal)
    assert res.status == "completed"
    assert seen[0] == 2 and isinstance(seen[1], TaskCancelled)


# -- failures -----------------------------------------------------------------------------------


def test_failed_task_arrives_as_task_failed_the_agent_can_catch() -> None:
    app, t = make_app()

    @app.agent
    def careful(ctx: Context) -> dict[str, str]:
        try:
            ctx.run(t["fetch"], "http://x")
        except TaskFailed as exc:
            return {"task": exc.task, "type": exc.error_type, "message": exc.error_message}
        return {}

    res = run(app, careful, {0: failed(0, "fetch", "TimeoutError", "too slow")})
    assert res.status == "completed"
    assert res.result == {"task": "fetch", "type": "TimeoutError", "message": "too slow"}


def test_uncaught_task_failure_fails_the_agent_with_type_task_failed() -> None:
    app, t = make_app()

    @app.agent
    def careless(ctx: Context) -> str:
        return str(ctx.run(t["fetch"], "http://x"))

    res = run(app, careless, {0: failed(0, "fetch", "TimeoutError", "too slow")})
    assert res.status == "failed"
    assert res.error is not None
    assert res.error.type == "TaskFailed"
    assert "fetch" in res.error.message and "too slow" in res.error.message


def test_single_task_job_fails_with_the_tasks_own_error_type() -> None:
    app, t = make_app()
    res = run(app, t["fetch"], {0: failed(0, "fetch", "TimeoutError", "too slow")}, {"url": "http://x"})
    assert res.status == "failed"
    assert res.error == ErrorInfo("TimeoutError", "too slow")


def test_cancelled_step_raises_task_cancelled_in_the_agent() -> None:
    app, t = make_app()

    @app.agent
    def agent(ctx: Context) -> str:
        try:
            ctx.run(t["double"], 1)
        except TaskCancelled:
            return "cancelled"
        return "ran"

    res = run(app, agent, {0: StepRecord(0, "task", "double", TaskState.CANCELLED)})
    assert (res.status, res.result) == ("completed", "cancelled")


def test_agent_raising_value_error_fails_with_that_type() -> None:
    app, _ = make_app()

    @app.agent
    def broken(ctx: Context) -> None:
        raise ValueError("nope")

    res = run(app, broken)
    assert res.status == "failed"
    assert res.error == ErrorInfo("ValueError", "nope")


def test_catching_exception_cannot_swallow_the_suspension() -> None:
    app, t = make_app()

    @app.agent
    def greedy(ctx: Context) -> str:
        try:
            return str(ctx.run(t["double"], 1))
        except Exception:
            return "swallowed"

    res = run(app, greedy)
    assert res.status == "suspended"
    assert res.commands == (ScheduleTask(0, t["double"], {"x": 1}),)


def test_run_of_an_agent_or_an_unknown_object_fails_the_job() -> None:
    app, _ = make_app()

    @app.agent
    def child(ctx: Context) -> int:
        return 1

    @app.agent
    def misuse(ctx: Context) -> Any:
        return ctx.run(child)

    res = run(app, misuse)
    assert res.status == "failed"
    assert res.error is not None and res.error.type == "TypeError"


# -- nested agents ------------------------------------------------------------------------------


def test_call_agent_starts_a_child_then_returns_its_result() -> None:
    app, _ = make_app()

    @app.agent
    def child(ctx: Context, n: int) -> int:
        return n

    @app.agent
    def parent(ctx: Context) -> dict[str, Any]:
        got = ctx.call_agent(child, n=3)
        return {"child": got}

    first = run(app, parent)
    assert first.status == "suspended"
    assert first.commands == (StartChild(0, "child", {"n": 3}),)

    waiting = run(app, parent, {0: StepRecord(0, "agent", "child", TaskState.RUNNING)})
    assert (waiting.status, waiting.commands) == ("suspended", ())

    done = run(app, parent, {0: ok(0, "child", 3, kind="agent")})
    assert (done.status, done.result) == ("completed", {"child": 3})


def test_failed_child_agent_raises_task_failed_in_the_parent() -> None:
    app, _ = make_app()

    @app.agent
    def child(ctx: Context) -> int:
        return 1

    @app.agent
    def parent(ctx: Context) -> str:
        try:
            ctx.call_agent(child)
        except TaskFailed as exc:
            return exc.error_type
        return "ok"

    res = run(app, parent, {0: failed(0, "child", "KeyError", "k", kind="agent")})
    assert (res.status, res.result) == ("completed", "KeyError")


def test_call_agent_of_a_task_fails_the_job() -> None:
    app, t = make_app()

    @app.agent
    def parent(ctx: Context) -> Any:
        return ctx.call_agent(t["double"], x=1)

    res = run(app, parent)
    assert res.status == "failed"
    assert res.error is not None and res.error.type == "TypeError"


# -- determinism --------------------------------------------------------------------------------


def test_journal_with_another_name_at_a_seq_is_non_deterministic() -> None:
    app, t = make_app()

    @app.agent
    def agent(ctx: Context) -> int:
        return int(ctx.run(t["double"], 1))

    res = run(app, agent, {0: ok(0, "add", 1)})
    assert res.status == "failed"
    assert res.error is not None and res.error.type == "NonDeterministicAgent"
    assert "step 0" in res.error.message


def test_journal_with_another_kind_at_a_seq_is_non_deterministic() -> None:
    app, t = make_app()

    @app.agent
    def agent(ctx: Context) -> int:
        return int(ctx.run(t["double"], 1))

    res = run(app, agent, {0: ok(0, "double", 1, kind="agent")})
    assert res.status == "failed"
    assert res.error is not None and res.error.type == "NonDeterministicAgent"


def test_agent_finishing_with_fewer_steps_than_the_journal_is_non_deterministic() -> None:
    app, t = make_app()

    @app.agent
    def agent(ctx: Context) -> int:
        return int(ctx.run(t["double"], 1))

    res = run(app, agent, {0: ok(0, "double", 2), 1: ok(1, "double", 4)})
    assert res.status == "failed"
    assert res.error is not None and res.error.type == "NonDeterministicAgent"


def test_catching_exception_cannot_hide_a_divergence_from_the_journal() -> None:
    app, t = make_app()

    @app.agent
    def greedy(ctx: Context) -> str:
        try:
            ctx.run(t["double"], 1)
        except Exception:
            return "swallowed"
        return "ran"

    res = run(app, greedy, {0: ok(0, "add", 1)})
    assert res.status == "failed"
    assert res.error is not None and res.error.type == "NonDeterministicAgent"


# -- values and timers --------------------------------------------------------------------------


def test_now_and_uuid_are_recorded_once_then_replayed_from_the_journal() -> None:
    app, t = make_app()

    @app.agent
    def stamped(ctx: Context) -> list[Any]:
        when = ctx.now()
        ident = ctx.uuid()
        fetched = ctx.run(t["fetch"], f"http://x/{ident}")
        return [when, ident, fetched]

    first = run(app, stamped, clock=fixed_clock(1000.0), new_uuid=lambda: "u-1")
    assert first.status == "suspended"
    assert first.commands == (
        RecordValue(0, "now", 1000.0),
        RecordValue(1, "uuid", "u-1"),
        ScheduleTask(2, t["fetch"], {"url": "http://x/u-1"}),
    )

    journal = {0: ok(0, "now", 1000.0, kind="value"), 1: ok(1, "uuid", "u-1", kind="value")}
    again = run(app, stamped, journal, clock=no_clock, new_uuid=no_uuid)
    assert again.status == "suspended"
    assert again.commands == (ScheduleTask(2, t["fetch"], {"url": "http://x/u-1"}),)

    journal[2] = ok(2, "fetch", "page")
    done = run(app, stamped, journal, clock=no_clock, new_uuid=no_uuid)
    assert (done.status, done.result) == ("completed", [1000.0, "u-1", "page"])


def test_values_recorded_before_a_suspension_are_kept_in_the_commands() -> None:
    app, t = make_app()

    @app.agent
    def agent(ctx: Context) -> Any:
        ctx.now()
        return ctx.run(t["double"], 1)

    res = run(app, agent)
    assert [type(c) for c in res.commands] == [RecordValue, ScheduleTask]


def test_sleep_starts_a_timer_then_waits_for_it() -> None:
    app, _ = make_app()

    @app.agent
    def nap(ctx: Context, seconds: float) -> str:
        ctx.sleep(seconds)
        return "awake"

    first = run(app, nap, input={"seconds": 30.0}, clock=fixed_clock(1000.0))
    assert first.status == "suspended"
    assert first.commands == (StartTimer(0, 1030.0),)

    pending = run(app, nap, {0: StepRecord(0, "sleep", "sleep", TaskState.PENDING)}, {"seconds": 30.0})
    assert (pending.status, pending.commands) == ("suspended", ())

    fired = run(app, nap, {0: StepRecord(0, "sleep", "sleep", S)}, {"seconds": 30.0})
    assert (fired.status, fired.result) == ("completed", "awake")


def test_replay_is_repeatable() -> None:
    app, fan, _ = fan_app()
    journal = {0: ok(0, "double", 2)}
    assert run(app, fan, journal, {"xs": [1, 2]}) == run(app, fan, journal, {"xs": [1, 2]})


def test_agent_only_calls_inside_a_task_raise_not_in_agent() -> None:
    from agentbus.domain import NotInAgent, TaskContext

    ctx = TaskContext(JOB, "t-0", "double", 1)
    with pytest.raises(NotInAgent):
        ctx.run("double", 1)
    with pytest.raises(NotInAgent):
        ctx.now()


def test_an_agent_that_raises_reports_a_traceback_naming_its_own_code() -> None:
    app, _ = make_app()

    def helper() -> None:
        raise ValueError("nope")

    @app.agent
    def broken_with_a_trace(ctx: Context) -> None:
        helper()

    res = run(app, broken_with_a_trace)
    assert res.status == "failed" and res.error is not None
    tb = res.error.traceback or ""
    assert "broken_with_a_trace" in tb and "helper" in tb and "ValueError: nope" in tb
    assert "_run" not in tb.split("broken_with_a_trace")[0]  # the engine's own frame is left out
    assert res.error.to_dict() == {"type": "ValueError", "message": "nope", "traceback": tb}


def test_a_single_task_job_reports_its_tasks_traceback_and_errors_without_one_keep_the_old_shape() -> None:
    app, t = make_app()
    step = StepRecord(0, "task", "fetch", TaskState.FAILED, None, ErrorInfo("TimeoutError", "slow", "in fetch"))
    res = run(app, t["fetch"], {0: step}, {"url": "http://x"})
    assert res.error is not None and res.error.traceback == "in fetch"
    assert ErrorInfo("TimeoutError", "slow").to_dict() == {"type": "TimeoutError", "message": "slow"}


def test_a_traceback_keeps_only_its_last_16_kib() -> None:
    try:
        raise RuntimeError("x" * 40_000 + " the end")
    except RuntimeError as exc:
        tb = format_traceback(exc)
    assert len(tb) <= MAX_TRACEBACK_CHARS + 4 and tb.startswith("...\n") and tb.endswith(" the end\n")
