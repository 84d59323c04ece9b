"""Human in the loop, end to end: agents that ask people and wait, with deadlines that hold."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import httpx
import pytest

from agentbus.domain import Conflict, ValidationFailed
from agentbus.security import webhooks

from _cluster import Cluster, wait_until

pytestmark = pytest.mark.e2e


def pending_approval(c: Cluster, job_id: str, n: int = 1) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]] | None:
        rows = c.client.approvals(status="pending", job=job_id)["approvals"]
        return rows if len(rows) >= n else None

    rows: list[dict[str, Any]] = wait_until(found, 30, f"{n} pending approval(s)")
    return sorted(rows, key=lambda a: a["id"])


def test_approve_resumes_the_agent_without_rerunning_its_tasks(running: Cluster) -> None:
    job = running.client.submit("editorial", {"topic": "bees", "reviewers": ["alice"]})
    (approval,) = pending_approval(running, job["id"])
    assert running.client.job(job["id"])["status"] == "waiting_human"
    assert approval["assignees"] == ["alice"] and approval["data"]["revision"] == 0
    assert running.client.approvals(assignee="alice", status="pending")["approvals"][0]["id"] == approval["id"]
    assert running.client.approvals(assignee="bob", status="pending")["approvals"] == []
    answered = running.client.answer(approval["id"], "approve", input={"title": "Bees"}, by="alice")
    assert answered["status"] == "approved" and answered["answered_by"] == "alice"
    body = running.wait(job["id"])
    assert body["result"] == {"outcome": "published", "rounds": 1, "published": "Bees", "text": "Draft 1 about bees"}
    progress = running.client.job(job["id"])["progress"]
    assert progress["total"] == 2 and progress["succeeded"] == 2  # draft once, publish once


def test_reject_with_a_comment_makes_the_agent_revise_and_ask_again(running: Cluster) -> None:
    job = running.client.submit("editorial", {"topic": "ants"})
    (first,) = pending_approval(running, job["id"])
    running.client.answer(first["id"], "reject", comment="more ants")
    second = wait_until(
        lambda: [a for a in running.client.approvals(status="pending", job=job["id"])["approvals"]], 30, "round 2"
    )[0]
    assert second["data"]["text"] == "Draft 2 about ants (revised: more ants)"
    running.client.answer(second["id"], "approve", input={"title": "Ants", "priority": 2})
    assert running.wait(job["id"])["result"]["rounds"] == 2


def test_input_failing_the_schema_is_422_with_the_field(running: Cluster) -> None:
    job = running.client.submit("editorial", {"topic": "owls"})
    (approval,) = pending_approval(running, job["id"])
    with pytest.raises(ValidationFailed) as bad:
        running.client.answer(approval["id"], "approve", input={"title": 7})
    assert bad.value.errors[0]["loc"] == ["input", "title"]
    with pytest.raises(ValidationFailed):
        running.client.answer(approval["id"], "approve", input={"title": "ok", "extra": 1})
    assert running.client.approval(approval["id"])["status"] == "pending"  # nothing was recorded


def test_a_second_answer_and_concurrent_answers_get_409(running: Cluster) -> None:
    job = running.client.submit("panel", {"reviewers": ["a", "b"]})
    first, second = pending_approval(running, job["id"], 2)
    running.client.answer(first["id"], "approve", by="a")
    with pytest.raises(Conflict):
        running.client.answer(first["id"], "reject", by="a-again")

    url = f"http://127.0.0.1:{running.port}/approvals/{second['id']}"
    barrier = threading.Barrier(8)
    codes: list[int] = []

    def race(i: int) -> None:
        barrier.wait()
        auth = {"Authorization": f"Bearer {running.key}"}
        codes.append(
            httpx.post(url, json={"decision": "approve", "by": f"racer-{i}"}, headers=auth, timeout=30).status_code
        )

    threads = [threading.Thread(target=race, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] + [409] * 7
    assert running.wait(job["id"])["result"]["approvals"] == 2


@pytest.mark.parametrize(
    ("policy", "status", "expected"),
    [
        ("reject", "succeeded", {"approved": False, "timed_out": True, "by": "timeout"}),
        ("approve", "succeeded", {"approved": True, "timed_out": True, "by": "timeout"}),
        ("fail", "failed", None),
    ],
)
def test_timeout_policies(running: Cluster, policy: str, status: str, expected: Any) -> None:
    job = running.client.submit("deadline", {"on_timeout": policy, "timeout": 1})
    body = running.wait(job["id"], timeout=60)
    assert body["status"] == status
    if expected is not None:
        assert body["result"] == expected
    else:
        assert body["error"]["type"] == "TaskFailed" and "ApprovalExpired" in body["error"]["message"]
    (approval,) = running.client.approvals(job=job["id"])["approvals"]
    assert approval["status"] == "expired"


def test_escalate_reassigns_to_the_next_group_with_a_new_deadline(running: Cluster) -> None:
    job = running.client.submit("deadline", {"on_timeout": "escalate", "timeout": 1.5})
    (approval,) = pending_approval(running, job["id"])
    assert approval["assignees"] == ["first-line"]
    escalated = wait_until(
        lambda: (a := running.client.approval(approval["id"]))["level"] == 1 and a, 30, "the escalation"
    )
    assert escalated["assignees"] == ["second-line"] and escalated["status"] == "pending"
    assert escalated["deadline"] > approval["deadline"]
    running.client.answer(approval["id"], "approve", by="second-line-lead")
    assert running.wait(job["id"])["result"] == {"approved": True, "timed_out": False, "by": "second-line-lead"}


def test_parallel_approvals_resume_only_when_all_are_answered(running: Cluster) -> None:
    job = running.client.submit("panel", {"reviewers": ["ann", "ben", "cat"]})
    approvals = pending_approval(running, job["id"], 3)
    for a, who in zip(approvals[:2], ["ann", "ben"], strict=True):
        running.client.answer(a["id"], "approve", by=who)
    assert running.client.job(job["id"])["status"] == "waiting_human"
    assert running.client.results(job["id"])[0] is False
    running.client.answer(approvals[2]["id"], "reject", by="cat")
    assert running.wait(job["id"])["result"] == {"approvals": 2, "by": ["ann", "ben", "cat"]}


def test_cancelling_a_job_closes_its_open_approvals(running: Cluster) -> None:
    job = running.client.submit("panel", {"reviewers": ["x", "y"]})
    approvals = pending_approval(running, job["id"], 2)
    running.client.cancel(job["id"])
    wait_until(lambda: all(running.client.approval(a["id"])["status"] == "cancelled" for a in approvals), 30, "closed")
    with pytest.raises(Conflict):
        running.client.answer(approvals[0]["id"], "approve")


def test_event_stream_from_submit_to_finish(running: Cluster) -> None:
    job = running.client.submit("editorial", {"topic": "sse"})
    seen: list[tuple[str, dict[str, Any]]] = []
    ids: list[str] = []

    def follow() -> None:
        for event_id, event, data in running.client.events(job["id"]):
            ids.append(event_id)
            seen.append((event, data))

    reader = threading.Thread(target=follow)
    reader.start()
    (approval,) = pending_approval(running, job["id"])
    running.client.answer(approval["id"], "approve", input={"title": "SSE"})
    reader.join(60)
    assert not reader.is_alive()
    job_states = [d["status"] for e, d in seen if e == "job"]
    assert "waiting_human" in job_states and job_states[-1] == "succeeded"
    assert [d["status"] for e, d in seen if e == "approval"] == ["pending", "approved"]
    assert {d["name"] for e, d in seen if e == "task" and d["state"] == "succeeded"} == {"draft", "publish"}
    assert seen[-1][0] == "end"
    # resumable: from the id of the approval's answer on, only what came after is sent again
    answered_at = next(i for i, (e, d) in zip(ids, seen, strict=True) if e == "approval" and d["status"] == "approved")
    later = list(running.client.events(job["id"], last_event_id=answered_at))
    assert later and all(float(i) > float(answered_at) for i, e, _ in later if e != "end")
    assert "pending" not in [d.get("status") for _, e, d in later if e == "approval"]


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        _Receiver.received.append((dict(self.headers), body))
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_webhooks_are_signed_and_the_deadline_fires_once_across_a_failover(cluster: Cluster) -> None:
    _Receiver.received = []
    server = HTTPServer(("127.0.0.1", 0), _Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    hook = f"http://127.0.0.1:{server.server_address[1]}/hook"
    cluster.env["AGENTBUS_WEBHOOK_ALLOW_PRIVATE"] = "1"
    cluster.env["AGENTBUS_WEBHOOK_SECRET"] = "hook-secret-0123456789"
    cluster.orchestrator("orch-a")
    cluster.orchestrator("orch-b")
    cluster.worker("w1")
    cluster.api()
    job = cluster.client.submit("hooked", {"url": hook, "timeout": 4})
    wait_until(lambda: cluster.client.job(job["id"])["status"] == "waiting_human", 30, "the question")
    holder = "orch-a" if "orch-a" in cluster.procs else "orch-b"
    cluster.kill(holder)  # whichever leads; the other must fire the deadline
    for name in ("orch-a", "orch-b"):
        if name not in cluster.procs:
            cluster.orchestrator(name)  # a restarted orchestrator must not fire it again
    body = cluster.wait(job["id"], timeout=90)
    assert body["result"] == {"approved": True, "timed_out": True, "by": "timeout"}
    wait_until(lambda: len(_Receiver.received) >= 2, 30, "two deliveries")
    events = [json.loads(b)["event"] for _, b in _Receiver.received]
    assert events.count("approval.created") == 1 and events.count("approval.expired") == 1
    for headers, raw in _Receiver.received:
        assert webhooks.verify(b"hook-secret-0123456789", headers["X-Agentbus-Signature"], raw)
    server.shutdown()


def test_webhooks_to_private_addresses_are_refused_by_default(running: Cluster) -> None:
    job = running.client.submit("hooked", {"url": "http://127.0.0.1:9/hook", "timeout": 30})
    (approval,) = pending_approval(running, job["id"])
    running.client.answer(approval["id"], "approve")
    running.wait(job["id"])
    from agentbus.store import Repositories

    store = Repositories.from_url(running.env["AGENTBUS_DATABASE_URL"])
    deliveries = wait_until(
        lambda: [d for d in store.webhooks.webhook_deliveries(approval["id"]) if d["status"] != "pending"] or None,
        30,
        "refusal",
    )
    store.close()
    assert {d["status"] for d in deliveries} == {"refused"}
    assert "non-public" in deliveries[0]["last_error"]
