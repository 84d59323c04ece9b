"""The task cap is a rule of the replay engine: it holds while the agent builds its calls."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest

from agentbus.domain import App, Context, ReplayResult, ScheduleTask, StepRecord, TaskState, replay

CAP = 5


def make_app() -> App:
    app = App("cap")

    @app.task
    def square(ctx: Context, x: int) -> int:
        return x * x

    @app.agent
    def fan_out(ctx: Context, n: int) -> int:
        return sum(ctx.map(square, range(n)))

    @app.agent
    def endless(ctx: Context) -> int:
        return len(ctx.map(square, itertools.count()))

    @app.agent
    def one_by_one(ctx: Context, n: int) -> int:
        return sum(ctx.run(square, i) for i in range(n))

    @app.agent
    def hides_it(ctx: Context, n: int) -> str:
        try:
            ctx.map(square, range(n))
        except Exception:
            return "swallowed"
        return "done"

    return app


APP = make_app()


def run(agent: str, journal: dict[int, StepRecord] | None = None, **input: Any) -> ReplayResult:
    return replay(
        APP,
        APP.job_type(agent),
        input,
        journal or {},
        job_id="job-1",
        clock=lambda: 1000.0,
        new_uuid=lambda: "uuid-1",
        max_steps=CAP,
    )


def squared(n: int) -> dict[int, StepRecord]:
    return {i: StepRecord(i, "task", "square", TaskState.SUCCEEDED, i * i) for i in range(n)}


def test_a_fan_out_up_to_the_cap_is_scheduled_in_full() -> None:
    res = run("fan_out", n=CAP)
    assert res.status == "suspended"
    assert [c.seq for c in res.commands if isinstance(c, ScheduleTask)] == list(range(CAP))


def test_a_fan_out_past_the_cap_fails_with_too_many_tasks_and_schedules_nothing() -> None:
    res = run("fan_out", n=CAP + 1)
    assert res.status == "failed"
    assert res.error is not None and res.error.type == "TooManyTasks"
    assert f"over the limit of {CAP}" in res.error.message
    assert res.commands == ()


def test_map_stops_consuming_its_items_at_the_cap() -> None:
    pulled: list[int] = []

    def items() -> Iterator[int]:
        for i in itertools.count():
            pulled.append(i)
            yield i

    app = App("lazy")

    @app.task
    def square(ctx: Context, x: int) -> int:
        return x * x

    @app.agent
    def lazy(ctx: Context) -> int:
        return len(ctx.map(square, items()))

    res = replay(app, app.job_type("lazy"), {}, {}, job_id="j", clock=lambda: 0.0, new_uuid=lambda: "u", max_steps=CAP)
    assert res.error is not None and res.error.type == "TooManyTasks"
    assert len(pulled) == CAP + 1  # the item past the cap is where it stops; the rest is never built


def test_an_endless_fan_out_fails_instead_of_running_forever() -> None:
    res = run("endless")
    assert res.status == "failed" and res.error is not None and res.error.type == "TooManyTasks"


def test_steps_already_in_the_journal_count_toward_the_cap() -> None:
    res = run("one_by_one", squared(CAP), n=CAP + 1)
    assert res.status == "failed" and res.error is not None and res.error.type == "TooManyTasks"
    assert run("one_by_one", squared(CAP), n=CAP).status == "completed"


def test_sequential_calls_fail_at_the_first_one_past_the_cap() -> None:
    res = run("one_by_one", squared(CAP - 1), n=CAP + 100)
    assert res.status == "suspended" and [c.seq for c in res.commands] == [CAP - 1]
    res = run("one_by_one", squared(CAP), n=CAP + 100)
    assert res.status == "failed" and res.commands == ()


def test_catching_exception_cannot_hide_the_cap() -> None:
    res = run("hides_it", n=CAP + 1)
    assert res.status == "failed" and res.error is not None and res.error.type == "TooManyTasks"


def test_without_a_cap_a_large_fan_out_is_scheduled() -> None:
    res = replay(APP, APP.job_type("fan_out"), {"n": 1000}, {}, job_id="j", clock=lambda: 0.0, new_uuid=lambda: "u")
    assert res.status == "suspended" and len(res.commands) == 1000


def replay_with_budget(agent: str, journal: dict[int, StepRecord], budget: int, **input: Any) -> ReplayResult:
    return replay(
        APP,
        APP.job_type(agent),
        input,
        journal,
        job_id="job-1",
        clock=lambda: 1000.0,
        new_uuid=lambda: "uuid-1",
        max_steps=CAP,
        max_new_calls=budget,
    )


def test_a_fan_out_over_the_budget_of_one_replay_is_built_over_several() -> None:
    journal: dict[int, StepRecord] = {}
    parts = []
    while True:
        res = replay_with_budget("fan_out", journal, 2, n=CAP)
        assert res.status == "suspended"
        seqs = [c.seq for c in res.commands if isinstance(c, ScheduleTask)]
        parts.append(seqs)
        journal.update({s: StepRecord(s, "task", "square", TaskState.QUEUED) for s in seqs})
        if not res.more:
            break
    assert parts == [[0, 1], [2, 3], [4]]
    assert replay_with_budget("fan_out", squared(CAP), 2, n=CAP).result == sum(i * i for i in range(CAP))


def test_a_fan_out_over_the_cap_fails_before_its_first_part_is_sent() -> None:
    res = replay_with_budget("fan_out", {}, 2, n=CAP + 1)
    assert res.status == "failed" and res.error is not None and res.error.type == "TooManyTasks"
    assert res.commands == () and not res.more


def test_the_budget_of_one_replay_is_a_setting_of_at_least_one() -> None:
    from agentbus.config import Settings
    from agentbus.domain import ConfigError

    assert Settings.from_env({}).max_calls_per_replay == 10_000
    assert Settings.from_env({"AGENTBUS_MAX_CALLS_PER_REPLAY": "500"}).max_calls_per_replay == 500
    with pytest.raises(ConfigError):
        Settings.from_env({"AGENTBUS_MAX_CALLS_PER_REPLAY": "0"})
