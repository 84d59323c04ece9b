"""Signals on the pure engine and the pure pairing rule (docs/programming.md "Signals").

The engine turns ``ctx.wait_for`` into a ``WaitSignal`` command and answers it from the journal; which
signal a wait takes is ``pair``'s rule, which the store applies with compare-and-set.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from agentbus.domain import (
    AgentContext,
    App,
    ErrorInfo,
    RecordValue,
    ReplayResult,
    ScheduleTask,
    SignalTimeout,
    SignalWait,
    StepRecord,
    TaskFailed,
    TaskState,
    ValidationFailed,
    WaitSignal,
    replay,
)
from agentbus.domain.app import AgentDef
from agentbus.domain.signals import Arrived, Waiting, check_against, check_signal_name, next_wait, pair

S, PENDING = TaskState.SUCCEEDED, TaskState.PENDING
NOW = 1000.0


def run(app: App, agent: AgentDef[Any, Any], journal: Mapping[int, StepRecord] | None = None) -> ReplayResult:
    return replay(app, agent, {}, dict(journal or {}), job_id="job-1", clock=lambda: NOW, new_uuid=lambda: "u")


def got(seq: int, name: str, payload: Any) -> StepRecord:
    return StepRecord(seq, "signal", name, S, payload)


def timed_out(seq: int, name: str) -> StepRecord:
    return StepRecord(seq, "signal", name, TaskState.FAILED, None, ErrorInfo("SignalTimeout", "no signal"))


def make_app() -> tuple[App, dict[str, AgentDef[Any, Any]]]:
    app = App("signals")

    @app.task
    def work(ctx: Any, x: int) -> int:
        return x

    @app.agent
    def approve(ctx: AgentContext) -> Any:
        return {"got": ctx.wait_for("approve")}

    @app.agent
    def twice(ctx: AgentContext) -> Any:
        return [ctx.wait_for("vote"), ctx.wait_for("vote")]

    @app.agent
    def patient(ctx: AgentContext) -> Any:
        try:
            return ctx.wait_for("go", timeout=30, schema={"type": "object"})
        except SignalTimeout as exc:
            return {"timed_out": exc.signal, "type": exc.error_type}

    @app.agent
    def impatient(ctx: AgentContext) -> Any:
        return ctx.wait_for("go", timeout=5)

    @app.agent
    def race(ctx: AgentContext) -> Any:
        stop, job = ctx.signal("stop"), ctx.start(work, 7)
        first = ctx.wait_any(stop, job)
        return {"stopped": first.result()} if first is stop else {"done": first.result()}

    return app, {"approve": approve, "twice": twice, "patient": patient, "impatient": impatient, "race": race}


def test_a_wait_suspends_with_a_wait_signal_command() -> None:
    app, a = make_app()
    res = run(app, a["approve"])
    assert res.status == "suspended"
    assert res.commands == (WaitSignal(0, SignalWait("approve")),)


def test_a_wait_returns_the_payload_the_journal_holds() -> None:
    app, a = make_app()
    res = run(app, a["approve"], {0: got(0, "approve", {"ok": True})})
    assert (res.status, res.result) == ("completed", {"got": {"ok": True}})


def test_a_wait_still_pending_stays_suspended_without_a_new_command() -> None:
    app, a = make_app()
    res = run(app, a["approve"], {0: StepRecord(0, "signal", "approve", PENDING)})
    assert (res.status, res.commands) == ("suspended", ())


def test_two_waits_for_one_name_are_two_steps_each_with_its_own_signal() -> None:
    app, a = make_app()
    first = run(app, a["twice"], {0: got(0, "vote", "a")})
    assert first.commands == (WaitSignal(1, SignalWait("vote")),)
    res = run(app, a["twice"], {0: got(0, "vote", "a"), 1: got(1, "vote", "b")})
    assert res.result == ["a", "b"]


def test_a_timeout_is_journaled_as_a_deadline_and_raises_a_catchable_signal_timeout() -> None:
    app, a = make_app()
    res = run(app, a["patient"])
    assert res.commands == (WaitSignal(0, SignalWait("go", 30.0, {"type": "object"}), NOW + 30.0),)
    res = run(app, a["patient"], {0: timed_out(0, "go")})
    assert res.result == {"timed_out": "go", "type": "SignalTimeout"}


def test_an_uncaught_signal_timeout_fails_the_job_like_a_failed_task() -> None:
    app, a = make_app()
    res = run(app, a["impatient"], {0: timed_out(0, "go")})
    assert res.status == "failed"
    assert res.error is not None and "SignalTimeout" in res.error.message
    assert issubclass(SignalTimeout, TaskFailed)


def test_wait_any_of_a_signal_and_a_task_takes_whichever_came_first() -> None:
    app, a = make_app()
    res = run(app, a["race"])
    assert [type(c) for c in res.commands] == [WaitSignal, ScheduleTask]
    open_steps = {0: StepRecord(0, "signal", "stop", PENDING), 1: StepRecord(1, "task", "work", TaskState.RUNNING)}
    assert run(app, a["race"], open_steps).status == "suspended"
    signalled = run(app, a["race"], {**open_steps, 0: got(0, "stop", "now")})
    assert signalled.commands == (RecordValue(2, "wait_any", 0),)
    journal = {**open_steps, 0: got(0, "stop", "now"), 2: StepRecord(2, "value", "wait_any", S, 0)}
    assert run(app, a["race"], journal).result == {"stopped": "now"}
    journal = {**open_steps, 1: StepRecord(1, "task", "work", S, 7), 2: StepRecord(2, "value", "wait_any", S, 1)}
    assert run(app, a["race"], journal).result == {"done": 7}


def test_a_replay_waiting_for_another_name_than_the_journal_is_a_divergence() -> None:
    app, a = make_app()
    res = run(app, a["approve"], {0: got(0, "other", 1)})
    assert res.status == "failed" and res.error is not None
    assert res.error.type == "NonDeterministicAgent"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": ""}, "signal name"),
        ({"name": "a/b"}, "signal name"),
        ({"name": "ok", "timeout": 0}, "timeout"),
        ({"name": "ok", "schema": {"type": 12}}, "not a valid JSON Schema"),
    ],
)
def test_a_bad_wait_is_refused_at_the_agents_call(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SignalWait.build(**kwargs)


# -- which wait takes which signal ----------------------------------------------------------------


def test_a_signal_sent_before_the_wait_is_kept_for_it() -> None:
    kept = [Arrived(1, "approve", {"ok": True})]
    assert pair([], kept) == []
    assert pair([Waiting(3, "approve")], kept) == [(Waiting(3, "approve"), kept[0])]


def test_waits_for_one_name_take_its_signals_in_the_order_they_arrived() -> None:
    waits = [Waiting(5, "vote"), Waiting(2, "vote")]
    arrived = [Arrived(9, "vote", "late"), Arrived(4, "vote", "early"), Arrived(6, "other", "x")]
    assert [(w.seq, s.payload) for w, s in pair(waits, arrived)] == [(2, "early"), (5, "late")]


def test_a_kept_signal_the_schema_refuses_is_left_for_another_wait() -> None:
    waits = [Waiting(0, "n", {"type": "integer"})]
    arrived = [Arrived(1, "n", "text"), Arrived(2, "n", 7)]
    assert [s.payload for _, s in pair(waits, arrived)] == [7]


def test_a_new_signal_goes_to_the_first_wait_no_kept_signal_is_for() -> None:
    waits = [Waiting(0, "n"), Waiting(1, "n", {"type": "integer"})]
    assert next_wait(waits, [], "n") == waits[0]
    assert next_wait(waits, [Arrived(1, "n", "x")], "n") == waits[1]
    assert next_wait(waits, [Arrived(1, "n", "x"), Arrived(2, "n", 1)], "n") is None
    assert next_wait(waits, [], "other") is None


def test_a_payload_the_schema_refuses_names_the_field() -> None:
    schema = {"type": "object", "properties": {"n": {"type": "integer"}}}
    check_against(schema, {"n": 1}, "payload")
    with pytest.raises(ValidationFailed, match=r"payload\.n"):
        check_against(schema, {"n": "x"}, "payload")


def test_signal_names_are_path_safe() -> None:
    assert check_signal_name("order.paid:v2") == "order.paid:v2"
    for bad in ("", "-x", "a b", "é", "x" * 101, None):
        with pytest.raises(Exception, match="signal name"):
            check_signal_name(bad)
