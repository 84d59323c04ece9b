"""Redis connections and the translation of redis errors."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import redis

from agentbus.domain.errors import Unavailable

P = ParamSpec("P")
R = TypeVar("R")


def connect(url: str) -> redis.Redis:
    """A client for ``redis://host:port/db`` or ``unix:///path/redis.sock?db=0`` (bytes, as RQ wants)."""
    return redis.Redis.from_url(url, socket_connect_timeout=5, health_check_interval=30)


def translate_errors(fn: Callable[P, R]) -> Callable[P, R]:
    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            raise Unavailable(f"redis unavailable: {exc}") from None

    return wrapper


def ping(conn: redis.Redis) -> None:
    translate_errors(conn.ping)()
