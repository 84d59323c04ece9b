"""Job output streams in a real Redis (bus/output.py): numbered, capped, expiring, read without a thread."""

from __future__ import annotations

import asyncio
import json
import uuid

import redis

from agentbus.bus import JobWatch, OutputStream
from agentbus.bus.output import stream_key
from agentbus.domain.output import Output, OutputsDropped


def outs(job_id: str, n: int, task: str = "t1", start: int = 0) -> list[Output]:
    return [Output(job_id, task, "chat", 1, seq, json.dumps({"i": seq}), 1.0) for seq in range(start, start + n)]


def test_outputs_are_numbered_per_job_in_order_and_read_back_after_a_cursor(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    stream = OutputStream(redis_conn, maxlen=100, ttl_s=60)
    a, b = f"a{uuid.uuid4().hex}", f"b{uuid.uuid4().hex}"
    stream.append([*outs(a, 3), *outs(b, 2, task="t9")])
    stream.append([*outs(a, 2, start=3), OutputsDropped(a, "t1", 1, 4, "buffer full")])

    async def scenario() -> None:
        watch = JobWatch(redis_url)
        try:
            page = await watch.outputs.read(a, 0)
            assert [n for n, _ in page.records] == [1, 2, 3, 4, 5, 6] and page.missed == 0
            assert [r.seq for _, r in page.records if isinstance(r, Output)] == [0, 1, 2, 3, 4]
            assert isinstance(page.records[-1][1], OutputsDropped) and page.records[-1][1].count == 4
            later = await watch.outputs.read(a, 4)
            assert [n for n, _ in later.records] == [5, 6]
            other = await watch.outputs.read(b, 0)
            assert [(r.task_id, r.seq) for _, r in other.records if isinstance(r, Output)] == [("t9", 0), ("t9", 1)]
        finally:
            await watch.stop()

    asyncio.run(scenario())
    assert 0 < redis_conn.ttl(stream_key(a)) <= 60  # nothing outlives the job for long


def test_a_reader_behind_the_cap_is_told_how_many_it_missed(redis_url: str, redis_conn: redis.Redis) -> None:
    stream = OutputStream(redis_conn, maxlen=10, ttl_s=60)
    job = f"j{uuid.uuid4().hex}"
    for start in range(0, 1000, 50):
        stream.append(outs(job, 50, start=start))

    async def scenario() -> None:
        watch = JobWatch(redis_url)
        try:
            page = await watch.outputs.read(job, 0)
            first = page.records[0][0]
            assert page.missed == first - 1 > 0  # MAXLEN ~ keeps at least the latest 10
            assert page.records[-1][0] == 1000 and len(page.records) == 1000 - first + 1
            assert [n for n, _ in page.records] == list(range(first, 1001))
        finally:
            await watch.stop()

    asyncio.run(scenario())


def test_an_append_wakes_the_output_waiters_of_that_job_only(redis_url: str, redis_conn: redis.Redis) -> None:
    async def scenario() -> None:
        watch = JobWatch(redis_url)
        await watch.start()
        try:
            deadline = asyncio.get_running_loop().time() + 10
            while not watch.healthy:
                assert asyncio.get_running_loop().time() < deadline
                await asyncio.sleep(0.01)
            a, b = f"a{uuid.uuid4().hex}", f"b{uuid.uuid4().hex}"
            with watch.watch_outputs(a) as out_a, watch.watch_outputs(b) as out_b, watch.watch(a) as record_a:
                OutputStream(redis_conn).append(outs(a, 1))
                await asyncio.wait_for(out_a.wait(), 10)
                assert not out_b.is_set() and not record_a.is_set()  # tokens do not re-read the record
        finally:
            await watch.stop()

    asyncio.run(scenario())


def test_a_reader_keeps_up_when_a_job_silent_past_the_expiry_numbers_its_outputs_again(
    redis_url: str, redis_conn: redis.Redis
) -> None:
    stream = OutputStream(redis_conn, ttl_s=60)
    job = f"j{uuid.uuid4().hex}"
    stream.append(outs(job, 5))
    redis_conn.delete(stream_key(job), stream_key(job) + ":n")  # what the expiry does to a silent job
    stream.append(outs(job, 2, start=5))

    async def scenario() -> None:
        watch = JobWatch(redis_url)
        try:
            page = await watch.outputs.read(job, 5)  # a cursor from before the expiry
            assert [(n, r.seq) for n, r in page.records if isinstance(r, Output)] == [(1, 5), (2, 6)]
        finally:
            await watch.stop()

    asyncio.run(scenario())
