"""The bus on a real Redis: control stream, lease, dispatch over RQ, heartbeats, the RQ worker."""

from __future__ import annotations

import json
import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import redis
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from agentbus.bus import AgentbusWorker, ControlStream, Dispatcher, Fleet, Lease, queue_name, run_worker
from agentbus.bus.queues import CHUNK_FUNC, queue_depths
from agentbus.bus.stream import GROUP, STREAM
from agentbus.domain import ControlEvent, Dispatch, TaskCall, Unavailable
from agentbus.security import Keyring

RING = Keyring.parse("k1:bus-test-secret-0123456789")
OTHER_RING = Keyring.parse("k1:not-the-cluster-secret-000")


def until(check: Callable[[], bool], within: float = 5.0) -> bool:
    """Poll ``check`` until it holds; a bound against hanging, not a timing assertion."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if check():
            return True
        time.sleep(0.02)
    return check()


def event(*job_ids: str, kind: str = "job.advance") -> ControlEvent:
    return ControlEvent(kind, job_ids)  # type: ignore[arg-type]


def dispatch(did: str, *names: str) -> Dispatch:
    calls = tuple(
        TaskCall(f"job-{did}-{i}", f"job-{did}", name, {"message": f"m{i}"}, 1, 0, 30.0, 0.5)
        for i, name in enumerate(names or ("echo",))
    )
    return Dispatch(did, calls)


def pending_ids(conn: redis.Redis) -> list[bytes]:
    return [p["message_id"] for p in conn.xpending_range(STREAM, GROUP, "-", "+", 100)]


# -- the control stream -------------------------------------------------------------------------


def test_publish_read_ack(redis_conn: redis.Redis) -> None:
    stream = ControlStream(redis_conn, RING)
    stream.ensure_group()
    stream.ensure_group()  # twice is fine
    stream.publish([event("a"), event("b", "c", kind="job.submitted")])
    entries = stream.read("orch-1", block_ms=10)
    assert [e.event for e in entries] == [event("a"), event("b", "c", kind="job.submitted")]
    assert pending_ids(redis_conn) == [e.id for e in entries]
    assert stream.read("orch-1", block_ms=10) == []  # delivered once
    stream.ack([e.id for e in entries])
    assert pending_ids(redis_conn) == []
    assert stream.rejected == 0


def test_entries_are_signed_json(redis_conn: redis.Redis) -> None:
    ControlStream(redis_conn, RING).publish([event("a")])
    ((_, fields),) = redis_conn.xrange(STREAM)
    assert RING.open(fields[b"m"]) == {"kind": "job.advance", "job_ids": ["a"]}


def test_unsigned_or_tampered_entries_are_dropped_and_counted(redis_conn: redis.Redis) -> None:
    stream = ControlStream(redis_conn, RING)
    stream.ensure_group()
    good = RING.seal({"kind": "job.cancel", "job_ids": ["x"]})
    tampered = json.loads(good)
    tampered["body"] = json.dumps({"kind": "job.cancel", "job_ids": ["someone-else"]})
    redis_conn.xadd(STREAM, {"m": json.dumps({"kind": "job.cancel", "job_ids": ["x"]})})  # unsigned
    redis_conn.xadd(STREAM, {"m": json.dumps(tampered)})
    redis_conn.xadd(STREAM, {"m": OTHER_RING.seal({"kind": "job.cancel", "job_ids": ["x"]})})  # wrong key
    redis_conn.xadd(STREAM, {"m": RING.seal({"kind": "rm -rf", "job_ids": ["x"]})})  # signed but malformed
    redis_conn.xadd(STREAM, {"other": "field"})
    redis_conn.xadd(STREAM, {"m": good})
    entries = stream.read("orch-1", block_ms=10)
    assert [e.event for e in entries] == [event("x", kind="job.cancel")]
    assert stream.rejected == 5
    assert pending_ids(redis_conn) == [entries[0].id]  # the dropped ones are acknowledged


def test_read_recovers_after_redis_loses_the_stream(redis_conn: redis.Redis) -> None:
    stream = ControlStream(redis_conn, RING)
    stream.ensure_group()
    stream.publish([event("before")])
    assert [e.event for e in stream.read("orch-1", block_ms=10)] == [event("before")]
    redis_conn.flushdb()
    assert stream.read("orch-1", block_ms=10) == []  # re-creates the group
    stream.publish([event("after")])
    assert [e.event for e in stream.read("orch-1", block_ms=10)] == [event("after")]


def test_read_before_any_group_exists_creates_it(redis_conn: redis.Redis) -> None:
    stream = ControlStream(redis_conn, RING)
    assert stream.read("orch-1", block_ms=10) == []
    stream.publish([event("a")])
    assert [e.event for e in stream.read("orch-1", block_ms=10)] == [event("a")]


def test_claim_stale_hands_unacked_entries_of_a_dead_consumer_to_another(redis_conn: redis.Redis) -> None:
    stream = ControlStream(redis_conn, RING)
    stream.ensure_group()
    stream.publish([event("a"), event("b")])
    taken = stream.read("dead", block_ms=10)
    assert len(taken) == 2
    assert stream.claim_stale("alive", min_idle_ms=3_600_000) == []  # not idle long enough
    claimed = stream.claim_stale("alive", min_idle_ms=0)
    assert [e.event for e in claimed] == [event("a"), event("b")]
    owners = {p["consumer"] for p in redis_conn.xpending_range(STREAM, GROUP, "-", "+", 100)}
    assert owners == {b"alive"}
    stream.ack([e.id for e in claimed])
    assert stream.claim_stale("alive", min_idle_ms=0) == []


def test_claim_stale_after_a_flush_recreates_the_group(redis_conn: redis.Redis) -> None:
    stream = ControlStream(redis_conn, RING)
    redis_conn.flushdb()
    assert stream.claim_stale("alive", min_idle_ms=0) == []
    stream.publish([event("a")])
    assert [e.event for e in stream.read("alive", block_ms=10)] == [event("a")]


def test_stream_on_a_closed_port_is_unavailable() -> None:
    conn = redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1)
    with pytest.raises(Unavailable):
        ControlStream(conn, RING).publish([event("a")])
    with pytest.raises(Unavailable):
        ControlStream(conn, RING).read("c", block_ms=10)


# -- the lease ----------------------------------------------------------------------------------


def test_only_one_owner_holds_the_lease(redis_conn: redis.Redis) -> None:
    a = Lease(redis_conn, "orchestrator", "a", ttl_ms=60_000)
    b = Lease(redis_conn, "orchestrator", "b", ttl_ms=60_000)
    assert a.acquire()
    assert not b.acquire()
    assert a.holder() == b.holder() == "a"
    assert a.renew()
    assert not b.renew()
    assert a.acquire()  # the holder acquiring again keeps it
    assert a.holder() == "a"


def test_lease_passes_to_the_other_owner_after_expiry(redis_conn: redis.Redis) -> None:
    a = Lease(redis_conn, "orchestrator", "a", ttl_ms=300)
    b = Lease(redis_conn, "orchestrator", "b", ttl_ms=300)
    assert a.acquire()
    assert not b.acquire()
    assert until(b.acquire)
    assert b.holder() == "b"
    assert not a.renew()


def test_released_lease_is_free(redis_conn: redis.Redis) -> None:
    a = Lease(redis_conn, "orchestrator", "a", ttl_ms=60_000)
    b = Lease(redis_conn, "orchestrator", "b", ttl_ms=60_000)
    assert a.acquire()
    b.release()  # not the holder: nothing happens
    assert a.holder() == "a"
    a.release()
    assert a.holder() is None
    assert b.acquire()


def test_holder_retakes_the_lease_after_a_flush(redis_conn: redis.Redis) -> None:
    a = Lease(redis_conn, "orchestrator", "a", ttl_ms=60_000)
    assert a.acquire()
    redis_conn.flushdb()
    assert a.renew()
    assert a.holder() == "a"


# -- dispatch over RQ ---------------------------------------------------------------------------


def test_send_creates_rq_jobs_with_signed_json_payloads(redis_conn: redis.Redis) -> None:
    dispatcher = Dispatcher(redis_conn, RING)
    d1, d2 = dispatch("d1", "echo", "echo"), dispatch("d2", "square")
    dispatcher.send("cpu", [d1, d2])
    dispatcher.send("cpu", [])

    queue = Queue(queue_name("cpu"), connection=redis_conn, serializer=JSONSerializer)
    assert queue.name == "agentbus.cpu"
    assert queue.job_ids == ["d1", "d2"]
    assert queue_depths(redis_conn)["agentbus.cpu"][0] == 2  # what the metrics and KEDA read

    for d in (d1, d2):
        raw = redis_conn.hget(f"rq:job:{d.dispatch_id}", "data")
        assert raw is not None
        decoded = json.loads(zlib.decompress(raw))  # JSON on the wire, never pickle
        assert decoded[0] == CHUNK_FUNC
        job = Job.fetch(d.dispatch_id, connection=redis_conn, serializer=JSONSerializer)
        assert job.func_name == CHUNK_FUNC
        (envelope,) = job.args
        assert Dispatch.from_dict(RING.open(envelope)) == d


def test_send_at_front_jumps_the_queue(redis_conn: redis.Redis) -> None:
    dispatcher = Dispatcher(redis_conn, RING)
    dispatcher.send("gpu", [dispatch("late")])
    dispatcher.send("gpu", [dispatch("urgent")], at_front=True)
    assert Queue("agentbus.gpu", connection=redis_conn).job_ids == ["urgent", "late"]


def test_statuses_follow_rq_and_report_lost_dispatches(redis_conn: redis.Redis) -> None:
    dispatcher = Dispatcher(redis_conn, RING)
    dispatcher.send("cpu", [dispatch("d1")])
    assert dispatcher.statuses(["d1", "d1", "never-sent"]) == {"d1": ("queued", None), "never-sent": (None, None)}
    redis_conn.flushdb()
    assert dispatcher.statuses(["d1"]) == {"d1": (None, None)}


def test_queue_name_prefixes_once() -> None:
    assert queue_name("cpu") == "agentbus.cpu"
    assert queue_name("agentbus.cpu") == "agentbus.cpu"


# -- heartbeats ---------------------------------------------------------------------------------


def test_fleet_heartbeat_alive_and_workers(redis_conn: redis.Redis) -> None:
    fleet = Fleet(redis_conn, ttl_s=60)
    fleet.heartbeat("w1", {"role": "worker-cpu", "queues": ["cpu"]})
    fleet.heartbeat("w2", {"role": "worker-gpu", "queues": ["gpu"], "gpu": {"model": "H100"}})
    assert fleet.alive(["w1", "w2", "w3", "w1"]) == {"w1": True, "w2": True, "w3": False}
    assert fleet.alive([]) == {}
    workers = sorted(fleet.workers(), key=lambda w: w["id"])
    assert [(w["id"], w["role"]) for w in workers] == [("w1", "worker-cpu"), ("w2", "worker-gpu")]
    assert workers[1]["gpu"] == {"model": "H100"}
    assert all(isinstance(w["seen"], float) for w in workers)
    fleet.forget("w1")
    assert fleet.alive(["w1"]) == {"w1": False}
    assert [w["id"] for w in fleet.workers()] == ["w2"]


def test_fleet_forgets_a_worker_that_stops_beating(redis_conn: redis.Redis) -> None:
    fleet = Fleet(redis_conn, ttl_s=0.2)
    fleet.heartbeat("w1", {"role": "worker-cpu"})
    assert fleet.alive(["w1"]) == {"w1": True}
    assert until(lambda: not fleet.alive(["w1"])["w1"])
    assert fleet.workers() == [] and fleet.heartbeats() == []
    fleet.heartbeat("w1", {"role": "worker-cpu"})  # back after its key expired and the listing dropped it
    assert [w["id"] for w in fleet.workers()] == ["w1"]


def test_fleet_lists_lost_workers_for_an_hour_and_every_worker_again_after_a_flush(redis_conn: redis.Redis) -> None:
    fleet = Fleet(redis_conn, ttl_s=60)
    fleet.heartbeat("w1", {"role": "worker-cpu"})
    fleet.mark_lost("w0", {"id": "w0", "role": "worker-cpu"})
    assert [w["id"] for w in fleet.lost()] == ["w0"]
    assert isinstance(fleet.lost()[0]["lost_at"], float)
    redis_conn.flushdb()
    assert fleet.workers() == [] and fleet.lost() == []
    fleet.heartbeat("w1", {"role": "worker-cpu"})  # the next beat after a flush lists it again
    assert [w["id"] for w in fleet.workers()] == ["w1"]


def test_fleet_with_no_workers(redis_conn: redis.Redis) -> None:
    assert Fleet(redis_conn).workers() == []


# -- the RQ worker ------------------------------------------------------------------------------


def make_worker(conn: redis.Redis, executed: list[Dispatch], queues: list[str] | None = None) -> AgentbusWorker:
    return AgentbusWorker(
        queues or ["cpu"],
        connection=conn,
        name=f"test-worker-{time.monotonic_ns()}",
        executor=lambda dispatch, origin: executed.append(dispatch),
        keyring=RING,
        on_cancel=lambda task_id: None,
    )


def test_worker_executes_a_signed_dispatch(redis_conn: redis.Redis) -> None:
    Dispatcher(redis_conn, RING).send("cpu", [dispatch("d-ok", "echo", "square")])
    executed: list[Dispatch] = []
    worker = make_worker(redis_conn, executed)
    run_worker(worker, burst=True)
    assert executed == [dispatch("d-ok", "echo", "square")]
    assert worker.rejected == 0
    assert Queue("agentbus.cpu", connection=redis_conn).count == 0


def test_worker_refuses_forged_and_tampered_jobs(redis_conn: redis.Redis, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    queue = Queue("agentbus.cpu", connection=redis_conn, serializer=JSONSerializer)
    # 1. a forged RQ job naming a function of its choice
    queue.enqueue("os.system", f"touch {canary}")
    # 2. agentbus's entry point with a tampered payload
    good = RING.seal(dispatch("d-tampered").to_dict())
    env = json.loads(good)
    env["body"] = json.dumps(dispatch("d-tampered", "always_fails").to_dict())
    queue.enqueue(CHUNK_FUNC, json.dumps(env), job_id="d-tampered")
    # 3. agentbus's entry point with an unsigned payload
    queue.enqueue(CHUNK_FUNC, json.dumps(dispatch("d-unsigned").to_dict()), job_id="d-unsigned")
    # 4. a payload signed with another key
    queue.enqueue(CHUNK_FUNC, OTHER_RING.seal(dispatch("d-foreign").to_dict()), job_id="d-foreign")
    # 5. a genuine payload replayed under another RQ job id
    queue.enqueue(CHUNK_FUNC, RING.seal(dispatch("d-original").to_dict()), job_id="d-replayed")
    # 6. and one genuine dispatch, sent last
    Dispatcher(redis_conn, RING).send("cpu", [dispatch("d-genuine")])

    executed: list[Dispatch] = []
    worker = make_worker(redis_conn, executed)
    run_worker(worker, burst=True)

    assert not canary.exists()
    assert executed == [dispatch("d-genuine")]
    assert worker.rejected == 5
    assert queue.count == 0


def test_worker_counts_each_refused_job_once(redis_conn: redis.Redis, tmp_path: Path) -> None:
    queue = Queue("agentbus.cpu", connection=redis_conn, serializer=JSONSerializer)
    queue.enqueue("os.system", f"touch {tmp_path / 'canary'}")
    queue.enqueue(CHUNK_FUNC, "not an envelope", job_id="d-bad")
    worker = make_worker(redis_conn, [])
    run_worker(worker, burst=True)
    assert worker.rejected == 2


def test_worker_survives_a_pickled_job(redis_conn: redis.Redis, tmp_path: Path) -> None:
    canary = tmp_path / "canary"
    Queue("agentbus.cpu", connection=redis_conn).enqueue("os.system", f"touch {canary}")  # RQ's default: pickle
    Dispatcher(redis_conn, RING).send("cpu", [dispatch("d-after")])
    executed: list[Dispatch] = []
    run_worker(make_worker(redis_conn, executed), burst=True)
    assert not canary.exists()
    assert executed == [dispatch("d-after")]


class _Room:
    """A capacity with room for ``n`` calls, and no calls held."""

    def __init__(self, n: int) -> None:
        self.room = n
        self.busy = False

    def wait_for_room(self, timeout: float) -> bool:
        return True


def test_worker_takes_several_dispatches_at_once_and_leaves_them_as_rq_would(redis_conn: redis.Redis) -> None:
    sent = [dispatch(f"d{i}") for i in range(12)]
    Dispatcher(redis_conn, RING).send("cpu", sent)
    batches: list[list[str]] = []
    name = f"test-worker-{time.monotonic_ns()}"
    worker = AgentbusWorker(
        ["cpu"],
        connection=redis_conn,
        name=name,
        executor=lambda d, origin: pytest.fail("take_many is given"),
        keyring=RING,
        on_cancel=lambda task_id: None,
        capacity=_Room(3),
        take_many=lambda taken: batches.append([d.dispatch_id for d, _ in taken]),
    )
    run_worker(worker, burst=True)
    # as many as the free slots hold per round trip, in queue order, and at most half of what
    # waits (another worker takes a share of a backlog)
    ids = [d.dispatch_id for d in sent]
    assert batches == [ids[0:3], ids[3:6], ids[6:9], ids[9:10], ids[10:11], ids[11:12]]
    for d in sent:
        # the orchestrator's reconciler reads these; the job's hash outlives it a while, as RQ's does
        assert Dispatcher(redis_conn, RING).statuses([d.dispatch_id])[d.dispatch_id] == ("finished", name)
        assert 0 < redis_conn.ttl(f"rq:job:{d.dispatch_id}") <= 60


def test_a_dispatch_taken_is_started_by_its_worker_until_the_executor_has_it(redis_conn: redis.Redis) -> None:
    Dispatcher(redis_conn, RING).send("cpu", [dispatch("d-seen")])
    seen: list[tuple[str | None, str | None]] = []

    def executor(d: Dispatch, origin: str) -> None:
        # a worker that dies here leaves "started" under its name: the reconciler dispatches it again
        seen.append(Dispatcher(redis_conn, RING).statuses([d.dispatch_id])[d.dispatch_id])

    worker = AgentbusWorker(
        ["cpu"], connection=redis_conn, name="w-seen", executor=executor, keyring=RING, on_cancel=lambda t: None
    )
    run_worker(worker, burst=True)
    assert seen == [("started", "w-seen")]


def test_a_dispatch_the_executor_could_not_take_is_failed_for_the_reconciler(redis_conn: redis.Redis) -> None:
    Dispatcher(redis_conn, RING).send("cpu", [dispatch("d-down"), dispatch("d-next")])

    def executor(d: Dispatch, origin: str) -> None:
        if d.dispatch_id == "d-down":
            raise Unavailable("the store is down")

    worker = AgentbusWorker(
        ["cpu"], connection=redis_conn, name="w-down", executor=executor, keyring=RING, on_cancel=lambda t: None
    )
    run_worker(worker, burst=True)
    statuses = Dispatcher(redis_conn, RING).statuses(["d-down", "d-next"])
    assert statuses == {"d-down": ("failed", "w-down"), "d-next": ("finished", "w-down")}


def test_an_id_pushed_without_its_job_is_skipped_and_not_created(redis_conn: redis.Redis) -> None:
    redis_conn.rpush("rq:queue:agentbus.cpu", b"forged-no-such-job")
    Dispatcher(redis_conn, RING).send("cpu", [dispatch("d-real")])
    executed: list[Dispatch] = []
    worker = make_worker(redis_conn, executed)
    run_worker(worker, burst=True)
    assert executed == [dispatch("d-real")]
    assert worker.rejected == 0
    assert not redis_conn.exists("rq:job:forged-no-such-job")


def test_a_dispatch_popped_while_redis_failed_is_taken_when_it_answers(
    redis_conn: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    Dispatcher(redis_conn, RING).send("cpu", [dispatch("d-popped")])
    executed: list[Dispatch] = []
    worker = make_worker(redis_conn, executed)
    take, failed = worker._take, []

    def flaky(**kw: object) -> object:
        if not failed:  # the BLPOP popped it; the script's round trip is lost once
            failed.append(True)
            raise redis.exceptions.ConnectionError("lost")
        return take(**kw)

    monkeypatch.setattr(worker, "_take", flaky)
    with pytest.raises(redis.exceptions.ConnectionError):
        worker._take_blocking()
    assert redis_conn.llen("rq:queue:agentbus.cpu") == 0
    run_worker(worker, burst=True)
    assert executed == [dispatch("d-popped")]
    assert Dispatcher(redis_conn, RING).statuses(["d-popped"])["d-popped"][0] == "finished"


def test_a_take_does_not_reach_a_lower_priority_while_a_higher_one_waits(redis_conn: redis.Redis) -> None:
    high, normal = [dispatch(f"h{i}") for i in range(4)], [dispatch(f"n{i}") for i in range(4)]
    Dispatcher(redis_conn, RING).send("cpu", normal)
    Dispatcher(redis_conn, RING).send("cpu.high", high)
    batches: list[list[str]] = []
    worker = AgentbusWorker(
        ["cpu.high", "cpu"],
        connection=redis_conn,
        name=f"test-worker-{time.monotonic_ns()}",
        executor=lambda d, origin: pytest.fail("take_many is given"),
        keyring=RING,
        on_cancel=lambda task_id: None,
        capacity=_Room(8),  # room for all of them: still the high ones first, as RQ's dequeue_any
        take_many=lambda taken: batches.append([d.dispatch_id for d, _ in taken]),
    )
    run_worker(worker, burst=True)
    order = [i for b in batches for i in b]
    assert order == [d.dispatch_id for d in high + normal]
    assert all(b[0][0] == b[-1][0] for b in batches)  # no batch mixes the two
