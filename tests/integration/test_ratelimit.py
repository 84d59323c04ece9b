"""The rate limiter against a real Redis: requests charged together admit exactly as many as fit."""

from __future__ import annotations

import asyncio

import redis

from agentbus.bus.ratelimit import Rate, RateLimiter, Verdict
from agentbus.domain import Unavailable


def _limiter(redis_url: str) -> RateLimiter:
    return RateLimiter(redis.Redis.from_url(redis_url), url=redis_url)


def test_concurrent_requests_over_the_limit_admit_exactly_the_burst(redis_url: str) -> None:
    key = [("key:k1:w", Rate(0.01, 7)), ("tenant:t1:w", Rate(0.02, 50))]

    async def scenario() -> list[Verdict]:
        limiter = _limiter(redis_url)
        await limiter.start()
        try:
            return await asyncio.gather(*(limiter.hit_async(key) for _ in range(40)))
        finally:
            await limiter.stop()

    verdicts = asyncio.run(scenario())
    admitted = [v for v in verdicts if v.allowed]
    assert len(admitted) == 7
    assert sorted(v.remaining for v in admitted) == list(range(7))
    refused = [v for v in verdicts if not v.allowed]
    assert all(v.retry_after_s > 0 and v.remaining == 0 for v in refused)


def test_a_tighter_second_bucket_limits_the_batch_and_the_refused_charge_nothing(redis_url: str) -> None:
    key = [("key:k2:w", Rate(0.01, 20)), ("tenant:t2:w", Rate(0.01, 3))]
    other_key = [("key:k3:w", Rate(0.01, 20)), ("tenant:t2:w", Rate(0.01, 3))]

    async def scenario() -> tuple[list[Verdict], Verdict]:
        limiter = _limiter(redis_url)
        await limiter.start()
        try:
            first = await asyncio.gather(*(limiter.hit_async(key) for _ in range(10)))
            return first, await limiter.hit_async(other_key)
        finally:
            await limiter.stop()

    verdicts, later = asyncio.run(scenario())
    assert sum(v.allowed for v in verdicts) == 3
    assert not later.allowed  # the tenant's bucket is full; the key's own is not
    # the key's bucket was charged for the 3 admitted only: 17 more fit there
    limiter = _limiter(redis_url)
    assert sum(limiter.hit([("key:k2:w", Rate(0.01, 20))]).allowed for _ in range(20)) == 17


def test_the_limit_holds_across_limiters_sharing_redis(redis_url: str) -> None:
    """Two API replicas, each batching its own requests: together they admit the burst, no more."""
    key = [("key:k4:r", Rate(0.01, 12))]

    async def scenario() -> list[Verdict]:
        a, b = _limiter(redis_url), _limiter(redis_url)
        await a.start()
        await b.start()
        try:
            return await asyncio.gather(*(lim.hit_async(key) for _ in range(15) for lim in (a, b)))
        finally:
            await a.stop()
            await b.stop()

    assert sum(v.allowed for v in asyncio.run(scenario())) == 12


def test_one_request_at_a_time_is_charged_as_before(redis_url: str) -> None:
    key = [("key:k5:w", Rate(1.0, 3))]

    async def scenario() -> list[Verdict]:
        limiter = _limiter(redis_url)
        await limiter.start()
        try:
            return [await limiter.hit_async(key) for _ in range(4)]
        finally:
            await limiter.stop()

    verdicts = asyncio.run(scenario())
    assert [v.allowed for v in verdicts] == [True, True, True, False]
    assert [v.remaining for v in verdicts[:3]] == [2, 1, 0]
    assert 0 < verdicts[3].retry_after_s <= 1.0
    assert verdicts[0].limit == 3


def test_redis_down_is_unavailable_for_every_waiter() -> None:
    url = "redis://127.0.0.1:1/0"  # nothing listens there
    key = [("key:k6:w", Rate(1.0, 3))]

    async def scenario() -> list[BaseException | Verdict]:
        limiter = _limiter(url)
        await limiter.start()
        try:
            return await asyncio.gather(*(limiter.hit_async(key) for _ in range(5)), return_exceptions=True)
        finally:
            await limiter.stop()

    assert all(isinstance(r, Unavailable) for r in asyncio.run(scenario()))
