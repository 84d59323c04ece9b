"""Signals end to end: ``POST /jobs/{id}/signals/{name}`` to agents waiting in ``ctx.wait_for``, through the
real roles, a killed orchestrator and a flushed Redis."""

from __future__ import annotations

import json
import subprocess
import sys
from typing import Any

import httpx
import pytest
import redis

from agentbus.domain import Conflict, NotFound, TaskState, ValidationFailed
from agentbus.store import Repositories

from _cluster import Cluster, wait_until

pytestmark = pytest.mark.e2e


def waiting_for(pg_url: str, job_id: str, name: str) -> None:
    """Until the job's agent waits in ``ctx.wait_for(name)`` (its wait step is recorded, pending)."""
    from agentbus.store.models import Step

    def found() -> bool:
        store = Repositories.from_url(pg_url)
        try:
            q = Step.select().where(
                (Step.job_id == job_id) & (Step.kind == "signal") & (Step.name == name) & (Step.state == "pending")
            )
            return bool(q.exists())
        finally:
            store.close()

    wait_until(found, 60, f"the agent to wait for {name!r}")


def signal_events(c: Cluster, job_id: str) -> list[dict[str, Any]]:
    return [dict(e.data) for e in c.client.events(job_id, timeout=30) if e.event == "signal"]


def test_a_signal_to_a_waiting_agent_is_its_payload_and_shows_in_the_events(running: Cluster, pg_url: str) -> None:
    job = running.client.submit("signalled", {"x": 4})
    waiting_for(pg_url, job["id"], "approve")
    with pytest.raises(ValidationFailed, match=r"payload\.ok"):
        running.client.signal(job["id"], "approve", {"ok": "yes"})
    sig = running.client.signal(job["id"], "approve", {"ok": True, "by": "ops"})
    assert (sig.status, sig.step, sig.name) == ("delivered", 1, "approve")
    assert running.wait(job["id"])["result"] == {"square": 16, "decision": {"ok": True, "by": "ops"}}
    events = signal_events(running, job["id"])
    assert [(e["event"], e["name"]) for e in events] == [
        ("signal.received", "approve"),
        ("signal.delivered", "approve"),
    ]
    assert [s.status for s in running.client.signals(job["id"])] == ["delivered"]


def test_a_signal_sent_before_the_agent_waits_is_kept_for_it(running: Cluster) -> None:
    job = running.client.submit("signalled", {"x": 2, "pause": 1.5})
    sig = running.client.signal(job["id"], "approve", {"ok": False}, idempotency_key="once")
    assert sig.status == "pending" and sig.step is None
    again = running.client.signal(job["id"], "approve", {"ok": True}, idempotency_key="once")
    assert again.id == sig.id and again.payload == {"ok": False}  # the first one, not a second
    assert running.wait(job["id"])["result"] == {"square": 4, "decision": {"ok": False}}
    assert [(s.id, s.status, s.step) for s in running.client.signals(job["id"])] == [(sig.id, "delivered", 2)]


def test_a_wait_that_times_out_raises_signal_timeout_in_the_agent(running: Cluster) -> None:
    job = running.client.submit("signalled", {"x": 1, "timeout": 1.0})
    assert running.wait(job["id"])["result"] == {"square": 1, "timed_out": "approve"}
    assert [e["event"] for e in signal_events(running, job["id"])] == ["signal.timed_out"]
    with pytest.raises(Conflict, match="takes no more signals"):
        running.client.signal(job["id"], "approve", {"ok": True})


def test_a_signal_wins_a_wait_any_against_long_work(running: Cluster) -> None:
    job = running.client.submit("stoppable", {"seconds": 60})
    wait_until(lambda: running.client.job(job["id"])["progress"].get("running", 0) == 1, 60, "the work to run")
    running.client.signal(job["id"], "stop", "enough")
    assert running.wait(job["id"])["result"] == {"stopped": "enough"}


def test_signals_are_scoped_to_the_tenant_and_checked(running: Cluster, pg_url: str) -> None:
    job = running.client.submit("signalled", {"x": 3})
    other = running.client_for(running.new_key("other"))
    with pytest.raises(NotFound):
        other.signal(job["id"], "approve", {"ok": True})
    with pytest.raises(NotFound):
        other.signals(job["id"])
    url = f"{running.env['AGENTBUS_API_URL']}/jobs/{job['id']}/signals"
    headers = {"Authorization": f"Bearer {running.key}", "Content-Type": "application/json"}
    assert httpx.post(f"{url}/bad%20name", content=b"1", headers=headers).status_code == 400
    assert httpx.post(f"{url}/approve", content=b"{not json", headers=headers).status_code == 400
    read_only = running.client_for(running.new_key("default", ("jobs:read",)))
    assert read_only.signals(job["id"]) == []
    with pytest.raises(Exception, match="jobs:write"):
        read_only.signal(job["id"], "approve", {"ok": True})
    waiting_for(pg_url, job["id"], "approve")
    running.client.signal(job["id"], "approve", {"ok": True})
    assert running.wait(job["id"])["status"] == "succeeded"


def test_a_signal_sent_with_no_orchestrator_and_redis_flushed_is_delivered_after_a_restart(
    cluster: Cluster, pg_url: str, redis_url: str
) -> None:
    cluster.orchestrator("orch-a")
    cluster.worker("w1")
    cluster.api()
    job = cluster.client.submit("signalled", {"x": 5})
    waiting_for(pg_url, job["id"], "approve")
    cluster.kill("orch-a")
    sig = cluster.client.signal(job["id"], "approve", {"ok": True})
    assert sig.status == "delivered"  # in PostgreSQL, with the wait's step, whoever replays it
    redis.Redis.from_url(redis_url).flushdb()  # the wake-up notice is gone too
    cluster.orchestrator("orch-b")
    assert cluster.wait(job["id"], timeout=90)["result"] == {"square": 25, "decision": {"ok": True}}
    steps = Repositories.from_url(pg_url).steps.load_journal(job["id"])
    assert steps[1].state == TaskState.SUCCEEDED and steps[1].result == {"ok": True}


def test_the_cli_signals_a_job_by_id_prefix_and_shows_its_signals(running: Cluster, pg_url: str) -> None:
    job = running.client.submit("signalled", {"x": 6})
    waiting_for(pg_url, job["id"], "approve")
    env = {**running.env, "COLUMNS": "200"}
    cli = [sys.executable, "-m", "agentbus", "jobs"]
    sent = subprocess.run(
        [*cli, "signal", job["id"][:12], "approve", "--data", '{"ok": true}'],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert sent.returncode == 0, sent.stderr
    assert json.loads(sent.stdout)["status"] == "delivered"
    assert running.wait(job["id"])["result"]["decision"] == {"ok": True}
    shown = subprocess.run([*cli, "show", job["id"]], env=env, capture_output=True, text=True, timeout=120)
    assert shown.returncode == 0, shown.stderr
    assert "approve" in shown.stdout and "delivered" in shown.stdout
