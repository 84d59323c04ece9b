"""The heartbeat message: what every worker says about itself, read by the orchestrator and the API."""

from __future__ import annotations

import pytest

from agentbus.config import Settings
from agentbus.domain import ConfigError, MessageRejected
from agentbus.domain.messages import CallInfo, Heartbeat
from agentbus.worker.service import default_concurrency


def test_heartbeat_round_trips_through_json_with_every_call() -> None:
    calls = (CallInfo("j1-0", "fetch", 1, 3, 60.0, 1700000000.5), CallInfo("j1-1", "fetch", 2, 3, 60.0, None))
    hb = Heartbeat(
        "w1",
        "worker-cpu",
        ("agentbus.cpu",),
        ("cpu",),
        {"kind": "cpu"},
        "host",
        42,
        100,
        calls,
        done=7,
        failed=1,
        seen=1700000001.0,
    )
    assert Heartbeat.from_json(hb.to_json()) == hb
    assert (hb.busy, hb.free) == (2, 98)
    assert hb.to_dict()["busy"] == 2 and hb.to_dict()["free"] == 98  # what GET /workers shows
    assert calls[0].job_id == "j1"


def test_a_malformed_heartbeat_is_rejected_not_half_read() -> None:
    with pytest.raises(MessageRejected):
        Heartbeat.from_json("{not json")
    with pytest.raises(MessageRejected):
        Heartbeat.from_json('{"role": "worker-cpu"}')  # no id
    with pytest.raises(MessageRejected):
        Heartbeat.from_json('{"id": "w", "concurrency": "many"}')


def test_concurrency_defaults_suit_each_role_and_the_setting_overrides_them() -> None:
    assert default_concurrency(Settings(), "cpu") == 100
    assert default_concurrency(Settings(), "gpu") == 1
    assert default_concurrency(Settings.from_env({"AGENTBUS_WORKER_CONCURRENCY": "500"}), "cpu") == 500
    with pytest.raises(ConfigError):
        Settings.from_env({"AGENTBUS_WORKER_CONCURRENCY": "-1"})


def test_a_per_worker_task_cap_is_a_task_option_of_at_least_one() -> None:
    from agentbus.domain import App

    app = App("t")

    @app.task(worker_concurrency=2)
    async def narrow(ctx: object) -> None: ...

    assert narrow.options.worker_concurrency == 2
    with pytest.raises(ConfigError):
        app.task(worker_concurrency=0)


def test_a_heartbeat_carries_its_task_names_and_their_build_and_an_older_one_has_every_task() -> None:
    from agentbus.domain.messages import build_of

    hb = Heartbeat("w1", tasks=("fetch", "summarize"), build=build_of(["summarize", "fetch"]))
    back = Heartbeat.from_json(hb.to_json())
    assert back == hb and back.has("fetch") and not back.has("translate")
    assert build_of(["fetch", "summarize"]) == hb.build != build_of(["fetch"])
    old = Heartbeat.from_json('{"id": "w0", "queues": ["cpu"]}')
    assert old.tasks is None and old.build == "" and old.has("anything")
    with pytest.raises(MessageRejected):
        Heartbeat.from_json('{"id": "w", "tasks": "fetch"}')
