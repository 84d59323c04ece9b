"""Partitioned control streams and the orchestrator roster on a real Redis."""

from __future__ import annotations

import time

import redis

from agentbus.bus import ControlStream, Lease, Roster, free_leases, lease_name, renew_all
from agentbus.bus.stream import STREAM, stream_key
from agentbus.domain import ControlEvent
from agentbus.domain.shards import shard_of
from agentbus.security import Keyring

RING = Keyring.parse("k1:bus-test-secret-0123456789")
JOBS = tuple(f"job-{i}" for i in range(40))


def test_one_shard_publishes_to_the_single_stream_of_an_unpartitioned_bus(redis_conn: redis.Redis) -> None:
    ControlStream(redis_conn, RING).publish([ControlEvent("job.advance", JOBS)])
    assert stream_key(0) == STREAM == "agentbus:control"
    assert redis_conn.keys("agentbus:control*") == [b"agentbus:control"]


def test_an_event_is_split_so_each_shard_gets_only_its_own_jobs(redis_conn: redis.Redis) -> None:
    stream = ControlStream(redis_conn, RING, shards=4)
    stream.ensure_group(range(4))
    stream.publish([ControlEvent("job.submitted", JOBS), ControlEvent("job.cancel", ("job-1",))])
    got = stream.read("c", shards=[0, 1, 2, 3], block_ms=10)
    seen: dict[str, list[str]] = {}
    for e in got:
        assert {shard_of(j, 4) for j in e.event.job_ids} == {e.shard}
        seen.setdefault(e.event.kind, []).extend(e.event.job_ids)
    assert sorted(seen["job.submitted"]) == sorted(JOBS)
    assert seen["job.cancel"] == ["job-1"]


def test_a_reader_of_some_shards_sees_only_theirs_and_acks_per_shard(redis_conn: redis.Redis) -> None:
    stream = ControlStream(redis_conn, RING, shards=4)
    stream.ensure_group(range(4))
    stream.publish([ControlEvent("job.advance", JOBS)])
    mine = stream.read("a", shards=[1, 3], block_ms=10)
    assert {e.shard for e in mine} == {1, 3}
    assert sorted(j for e in mine for j in e.event.job_ids) == sorted(j for j in JOBS if shard_of(j, 4) in (1, 3))
    stream.ack_entries(mine)
    # acknowledged: a successor taking shard 1 over finds nothing left to claim there
    assert stream.claim_stale("b", min_idle_ms=0, shard=1) == []
    # shard 0 was never read: still there for whoever takes it
    assert {e.shard for e in stream.read("b", shards=[0], block_ms=10)} == {0}


def test_unacknowledged_entries_of_a_shard_pass_to_its_next_holder(redis_conn: redis.Redis) -> None:
    stream = ControlStream(redis_conn, RING, shards=2)
    stream.ensure_group(range(2))
    stream.publish([ControlEvent("job.advance", JOBS)])
    read = stream.read("dead", shards=[0, 1], block_ms=10)
    taken = stream.claim_stale("heir", min_idle_ms=0, shard=1)
    assert sorted(e.id for e in taken) == sorted(e.id for e in read if e.shard == 1)


def test_shard_zero_lease_is_the_lease_of_an_unpartitioned_deployment(redis_conn: redis.Redis) -> None:
    assert lease_name(0) == "orchestrator" and lease_name(2) == "orchestrator.2"
    redis_conn.set("agentbus:lease:orchestrator.2", "someone")
    assert free_leases(redis_conn, [lease_name(k) for k in range(3)]) == [True, True, False]


def test_the_roster_counts_orchestrators_until_they_stop_beating(redis_conn: redis.Redis) -> None:
    a = Roster(redis_conn, "a", ttl_ms=60_000)
    b = Roster(redis_conn, "b", ttl_ms=300)
    assert a.beat() == 1
    assert b.beat() == 2
    assert a.beat() == 2  # beating again does not count twice
    deadline = time.monotonic() + 5
    while a.beat() != 1 and time.monotonic() < deadline:  # b stopped beating: it drops out after its TTL
        time.sleep(0.05)
    assert a.beat() == 1
    a.leave()
    assert b.beat() == 1


def test_renewing_several_leases_at_once_keeps_only_those_still_held(redis_conn: redis.Redis) -> None:
    mine = [Lease(redis_conn, lease_name(k), "a", ttl_ms=60_000) for k in range(3)]
    assert all(lease.acquire() for lease in mine)
    redis_conn.set("agentbus:lease:orchestrator.1", "b")  # taken over while "a" was paused
    assert renew_all(redis_conn, mine) == [True, False, True]
    assert [lease.holder() for lease in mine] == ["a", "b", "a"]
