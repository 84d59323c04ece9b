"""The API process's one Redis listener for job notices (bus/watch.py), on a real Redis."""

from __future__ import annotations

import asyncio
import json
import threading
import uuid

import redis

from agentbus.bus import JobNotifier, JobWatch
from agentbus.bus.notify import NOTICES
from agentbus.domain import JobState
from agentbus.domain.messages import JobEnd, JobNotices


async def _until(check, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not check():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.01)


def test_a_notice_wakes_the_waiters_of_that_job_only(redis_url: str, redis_conn: redis.Redis) -> None:
    async def scenario() -> None:
        watch = JobWatch(redis_url)
        await watch.start()
        try:
            await _until(lambda: watch.healthy)
            job_a, job_b = f"a{uuid.uuid4().hex}", f"b{uuid.uuid4().hex}"  # pub/sub spans Redis databases
            with watch.watch(job_a) as a, watch.watch(job_b) as b:
                JobNotifier(redis_conn).finished([job_a])
                await _until(a.is_set)
                assert not b.is_set()
                a.clear()
                JobNotifier(redis_conn).changed([job_a])
                await _until(a.is_set)
                assert not b.is_set()
            assert watch.waiting == 0  # leaving the watch forgets the waiter
        finally:
            await watch.stop()

    asyncio.run(scenario())


def test_a_waiter_for_the_end_only_sleeps_through_changes(redis_url: str, redis_conn: redis.Redis) -> None:
    """A long-poll for a result is woken when its job finishes, not each time it changes."""

    async def scenario() -> None:
        watch = JobWatch(redis_url)
        await watch.start()
        try:
            await _until(lambda: watch.healthy)
            job = f"e{uuid.uuid4().hex}"
            with watch.watch_end(job) as end, watch.watch(job) as every:
                JobNotifier(redis_conn).changed([job])
                await _until(every.is_set)
                assert not end.event.is_set()
                JobNotifier(redis_conn).finished([job])
                await _until(end.event.is_set)
            assert watch.waiting == 0
        finally:
            await watch.stop()

    asyncio.run(scenario())


def test_without_redis_the_watch_is_unhealthy_and_waiters_still_wake_on_their_timer() -> None:
    async def scenario() -> None:
        watch = JobWatch("redis://127.0.0.1:1/0", reconnect_s=0.1)
        await watch.start()
        try:
            await asyncio.sleep(0.3)
            assert not watch.healthy
            with watch.watch("job-a") as a:
                await watch.wait(a, 0.05)  # a timer, not a notice, ends the wait
        finally:
            await watch.stop()

    asyncio.run(scenario())


def test_the_api_shuts_down_right_after_its_listener_started(sqlite_url: str, redis_url: str) -> None:
    """An API stopped right after it started (a deploy's rollback, a test client) must stop: a
    cancellation that redis-py's read swallowed once left the listener running and the shutdown hung."""
    from starlette.testclient import TestClient

    from agentbus.api import create_app
    from agentbus.config import Settings
    from agentbus.examples import app as examples

    def start_and_stop(times: int) -> None:
        for _ in range(times):
            with TestClient(create_app(Settings(database_url=sqlite_url, redis_url=redis_url), examples)):
                pass

    worker = threading.Thread(target=start_and_stop, args=(5,), daemon=True)
    worker.start()
    worker.join(60)
    assert not worker.is_alive(), "the API's shutdown hung"


def test_a_job_expected_is_still_open_until_its_end_is_heard_and_no_longer_than_the_subscription(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    async def scenario() -> None:
        watch = JobWatch(redis_url, reconnect_s=0.05)
        watch.expect("before-start", "acme")  # not listening: nothing can be known
        assert not watch.still_open("before-start", "acme")
        await watch.start()
        try:
            await _until(lambda: watch.healthy)
            job, other = f"x{uuid.uuid4().hex}", f"y{uuid.uuid4().hex}"
            await asyncio.to_thread(watch.expect, job, "acme")  # the API expects from its threads
            watch.expect(other, "acme")
            assert watch.still_open(job, "acme")
            assert not watch.still_open(job, "umbrella")  # another tenant reads the record (a 404)
            JobNotifier(redis_conn).changed([job])
            await asyncio.sleep(0.2)
            assert watch.still_open(job, "acme")  # a change is not the end
            JobNotifier(redis_conn).finished([job])
            await _until(lambda: not watch.still_open(job, "acme"))
            # the listener loses its connection: notices may have been missed meanwhile
            db = redis_conn.connection_pool.connection_kwargs.get("db", 0)
            for client in redis_conn.client_list(_type="pubsub"):  # this test's database only
                if int(client["db"]) == db:
                    redis_conn.client_kill_filter(_id=client["id"])
            await _until(lambda: not watch.still_open(other, "acme"))
        finally:
            await watch.stop()

    asyncio.run(scenario())


def test_a_finished_notice_hands_its_end_to_the_end_waiters_of_that_job(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    """A long-poll answers from the end it was handed; a bare or unreadable notice hands none (read the record)."""

    async def scenario() -> None:
        watch = JobWatch(redis_url)
        await watch.start()
        try:
            await _until(lambda: watch.healthy)
            job, other = f"f{uuid.uuid4().hex}", f"g{uuid.uuid4().hex}"
            end = JobEnd(job, "acme", JobState.SUCCEEDED, {"answer": 42})
            with watch.watch_end(job) as waiter, watch.watch_end(other) as bystander:
                JobNotifier(redis_conn).finished([end])
                await _until(waiter.event.is_set)
                assert waiter.end == end
                assert bystander.end is None and not bystander.event.is_set()
                waiter.event.clear()
                JobNotifier(redis_conn).finished([job])  # a bare notice (the API's cancel): the latest counts
                await _until(waiter.event.is_set)
                assert waiter.end is None
                waiter.event.clear()
                waiter.end = end
                malformed = JobNotices.join([json.dumps({"job_id": job, "state": "finished"})], [])
                redis_conn.publish(NOTICES, malformed)  # an end that cannot be read: heard as a bare notice
                await _until(waiter.event.is_set)
                assert waiter.end is None
                waiter.event.clear()
                redis_conn.publish(NOTICES, b"{")  # garbage names no job: nobody wakes ...
                JobNotifier(redis_conn).finished([JobEnd(other, "acme", JobState.SUCCEEDED, 1)])
                await _until(bystander.event.is_set)  # ... as the next notice, heard after it, shows
                assert not waiter.event.is_set() and bystander.end == JobEnd(other, "acme", JobState.SUCCEEDED, 1)
            assert watch.waiting == 0
        finally:
            await watch.stop()

    asyncio.run(scenario())
