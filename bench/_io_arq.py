"""The arq side of ``bench/io.py``: a coroutine that waits (``arq bench._io_arq.WorkerSettings``)."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from arq.connections import RedisSettings

URL = os.environ.get("BENCH_IO_REDIS", "redis://127.0.0.1:6379/14")


async def wait(ctx: dict[str, Any], seconds: float) -> float:
    await asyncio.sleep(seconds)
    return seconds


class WorkerSettings:
    functions = [wait]
    redis_settings = RedisSettings.from_dsn(URL)
    max_jobs = int(os.environ.get("BENCH_IO_MAX_JOBS", "100"))
    keep_result = 300
