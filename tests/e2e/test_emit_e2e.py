"""Streamed output (``ctx.emit``, issue 11 item 4) on the real roles: SSE readers and ``submit --wait``."""

from __future__ import annotations

import subprocess
import sys
import threading
from typing import Any

import pytest

from agentbus.client import Event

from _cluster import Cluster, wait_until

pytestmark = pytest.mark.e2e


def outputs(events: list[Event]) -> list[dict[str, Any]]:
    return [e.data for e in events if e.event == "task.output"]


def follow(c: Cluster, job_id: str, last_event_id: str | None = None) -> list[Event]:
    return list(c.client.events(job_id, last_event_id=last_event_id, timeout=120))


@pytest.mark.parametrize("task", ["chatter", "chatter_sync"])
def test_a_task_streams_its_tokens_in_order_with_task_id_and_seq(running: Cluster, task: str) -> None:
    job = running.client.submit(task, {"n": 30, "every": 0.01})
    events = follow(running, job["id"])
    (step,) = running.client.tasks(job["id"])["tasks"]
    got = outputs(events)
    assert [(o["task_id"], o["name"], o["attempt"], o["seq"]) for o in got] == [
        (step["id"], task, 1, i) for i in range(30)
    ]
    assert [o["data"] for o in got] == [{"token": f"t{i}"} for i in range(30)]
    # the call's outputs come before the event of its end, and the result is the record
    kinds = [e.event for e in events]
    done = next(i for i, e in enumerate(events) if e.event == "task" and e.data["state"] == "succeeded")
    assert max(i for i, k in enumerate(kinds) if k == "task.output") < done
    assert running.wait(job["id"])["result"] == 30
    # resuming from an output's id sends only the outputs after it (and the changes after its time)
    tenth = next(e for e in events if e.event == "task.output" and e.data["seq"] == 9)
    assert [o["seq"] for o in outputs(follow(running, job["id"], tenth.id))] == list(range(10, 30))


def test_an_agent_emits_once_per_step_although_it_is_replayed(running: Cluster) -> None:
    job = running.client.submit("narrator", {"steps": 4})
    events = follow(running, job["id"])
    assert running.wait(job["id"])["result"] == [0, 1, 4, 9]
    got = outputs(events)
    assert {o["task_id"] for o in got} == {job["id"]} and {o["name"] for o in got} == {"narrator"}
    assert [o["seq"] for o in got] == list(range(8))
    assert [o["data"] for o in got] == [{"step": i, "phase": p} for i in range(4) for p in ("before", "after")]


def test_a_flood_past_the_buffer_is_trimmed_counted_and_said_and_the_result_is_intact(cluster: Cluster) -> None:
    cluster.env["AGENTBUS_OUTPUT_BUFFER"] = "100"
    cluster.orchestrator()
    cluster.worker("w1")
    cluster.api()
    job = cluster.client.submit("flood", {"n": 50_000})
    events = follow(cluster, job["id"])
    body = cluster.wait(job["id"])
    assert body["status"] == "succeeded" and body["result"] == {"emitted": 50_000}
    seqs = [o["seq"] for o in outputs(events)]
    assert seqs == sorted(set(seqs)) and seqs[-1] == 49_999  # in order, none twice, the newest kept
    dropped = [e.data for e in events if e.event == "task.output.dropped"]
    assert dropped and all(d["count"] > 0 and d["reason"] for d in dropped)
    assert len(seqs) < 50_000


def test_submit_wait_prints_outputs_as_they_arrive(running: Cluster) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "agentbus", "submit", "chatter", "--input", '{"n": 3, "every": 2}', "--wait"],
        env={**running.env, "COLUMNS": "200"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    told: list[str] = []
    reader = threading.Thread(target=lambda: told.extend(iter(proc.stderr.readline, "")))  # type: ignore[union-attr]
    reader.start()
    wait_until(lambda: any('chatter[0] {"token": "t0"}' in line for line in told), 60, "the first token")
    assert proc.poll() is None  # printed while the job still runs, not with its result
    # not communicate(): it would read stderr too, racing the reader thread for the lines
    out = proc.stdout.read()  # type: ignore[union-attr]
    proc.wait(120)
    reader.join(10)
    assert proc.returncode == 0 and '"result": 3' in out
    lines = [line for line in told if line.startswith("chatter[")]
    assert [line.split(" ", 1)[0] for line in lines] == ["chatter[0]", "chatter[1]", "chatter[2]"]
