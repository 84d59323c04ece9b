"""Partitioned orchestrators: three share four shards, one is SIGKILLed mid-load, nothing is lost or done twice."""

from __future__ import annotations

import json
import threading
from collections import Counter
from typing import Any

import pytest
import redis

from agentbus.store import Repositories

from _cluster import FAST, Cluster, wait_until

pytestmark = pytest.mark.e2e

SHARDS = 4
TTL = float(FAST["AGENTBUS_LEASE_TTL"])
# A dead holder's leases expire after one TTL, its roster entry with them (both were renewed in the
# same beat); a survivor notices within one beat (TTL / 5) and takes them. Twice the TTL is room
# for a loaded machine, not a figure under test.
TAKEOVER_BOUND = 2 * TTL + 2


def holders(conn: redis.Redis) -> dict[int, str | None]:
    names = ["orchestrator"] + [f"orchestrator.{k}" for k in range(1, SHARDS)]
    values = conn.mget([f"agentbus:lease:{n}" for n in names])
    return {k: v.decode() if isinstance(v, bytes) else None for k, v in enumerate(values)}


def recorded(pg_url: str, job_ids: list[str]) -> tuple[dict[str, list[tuple[str, int]]], Counter[str]]:
    """Each job's steps (state, attempt), and how many times each job was recorded as succeeded."""
    from agentbus.store.models import JobEvent, Step

    store = Repositories.from_url(pg_url)
    steps: dict[str, list[tuple[str, int]]] = {j: [] for j in job_ids}
    for r in Step.select().where(Step.job_id.in_(job_ids)).order_by(Step.job_id, Step.seq):
        steps[r.job_id].append((r.state, r.attempt))
    done: Counter[str] = Counter()
    for ev in JobEvent.select().where(JobEvent.job_id.in_(job_ids) & (JobEvent.kind == "job")):
        if json.loads(ev.data).get("status") == "succeeded":
            done[ev.job_id] += 1
    store.close()
    return steps, done


def test_three_orchestrators_share_four_shards_and_a_killed_ones_shards_move(
    cluster: Cluster, pg_url: str, redis_url: str
) -> None:
    conn = redis.Redis.from_url(redis_url)
    cluster.env["AGENTBUS_SHARDS"] = str(SHARDS)  # every role agrees on K: the API and workers publish by it
    names = ["orch-a", "orch-b", "orch-c"]
    for name in names:
        cluster.start(name, "--role", "orchestrator", "--name", name, "--shards", str(SHARDS))

    def shared_fairly() -> bool:
        owners = holders(conn)
        per = Counter(owners.values())
        return None not in per and len(per) >= 2 and max(per.values()) <= 2

    wait_until(shared_fairly, 60, "every shard held, by two orchestrators or more, at most two each")
    cluster.worker("w1")
    cluster.worker("w2")
    cluster.api()

    submitted: list[tuple[str, str, Any]] = []

    def submit_load() -> None:
        for i in range(150):
            if i % 10 == 0:
                job = cluster.client.submit("map_reduce", {"n": 20})
                submitted.append((job["id"], "map_reduce", {"n": 20, "sum": sum(x * x for x in range(20))}))
            elif i % 25 == 1:
                job = cluster.client.submit("parent", {"n": 5})  # its child hashes to another shard, likely
                submitted.append((job["id"], "parent", None))
            else:
                job = cluster.client.submit("echo", {"message": f"m{i}"})
                submitted.append((job["id"], "echo", f"m{i}"))

    loader = threading.Thread(target=submit_load)
    loader.start()
    wait_until(lambda: len(submitted) >= 40, 60, "the load to be under way")
    # The holder of shard 0 also runs the timers, reconciler and reaper: the hardest one to lose.
    doomed = holders(conn)[0]
    assert doomed is not None
    lost = sorted(k for k, h in holders(conn).items() if h == doomed)
    cluster.kill(doomed)
    survivors = [n for n in names if n != doomed]
    wait_until(
        lambda: all(holders(conn)[k] in survivors for k in lost),
        TAKEOVER_BOUND,
        f"{doomed}'s shards {lost} to move to {survivors}",
    )
    loader.join(120)
    assert len(submitted) == 150

    for job_id, _, want in submitted:
        body = cluster.wait(job_id, timeout=120)
        assert body["status"] == "succeeded", body
        if want is not None:
            assert body["result"] == want
    ids = [job_id for job_id, _, _ in submitted]
    steps, done = recorded(pg_url, ids)
    for job_id, kind, _ in submitted:
        states = [s for s, _ in steps[job_id]]
        assert states and set(states) == {"succeeded"}, (job_id, steps[job_id])
        assert len(states) == {"map_reduce": 20, "echo": 1, "parent": 2}[kind], (kind, steps[job_id])
        assert done[job_id] == 1, f"{job_id} recorded as succeeded {done[job_id]} times"
    assert set(holders(conn).values()) <= set(survivors)
