"""Celery app and no-op task for the Celery baseline in ``bench/_baselines.py``.

Started by ``measure_celery`` as ``celery -A bench._noop_tasks worker ...``; configured only through
environment variables so that the worker processes and the measuring process agree:

- ``AGENTBUS_BENCH_REDIS_URL``: broker and result backend (default ``redis://127.0.0.1:6379/14``);
- ``AGENTBUS_BENCH_QUEUE``: the queue the run uses (default ``agentbus-bench``);
- ``AGENTBUS_BENCH_READY_KEY``: a Redis key each worker INCRs once it is ready to consume;
- ``AGENTBUS_BENCH_RESULT_TTL``: seconds the results are kept (default 600).

This module imports celery at import time; ``bench._baselines`` never imports it at module level.
"""

from __future__ import annotations

import os
from typing import Any

import redis
from celery import Celery
from celery.signals import worker_ready

REDIS_URL = os.environ.get("AGENTBUS_BENCH_REDIS_URL", "redis://127.0.0.1:6379/14")
QUEUE = os.environ.get("AGENTBUS_BENCH_QUEUE", "agentbus-bench")
READY_KEY = os.environ.get("AGENTBUS_BENCH_READY_KEY", "")
RESULT_TTL = int(os.environ.get("AGENTBUS_BENCH_RESULT_TTL", "600"))
TASK_NAME = "bench.noop"

app = Celery("agentbus_bench", broker=REDIS_URL, backend=REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    result_expires=RESULT_TTL,
    task_ignore_result=False,
    worker_send_task_events=False,
    broker_connection_retry_on_startup=True,
    # Celery defaults kept on purpose: acks on receipt (task_acks_late=False), prefetch multiplier 4.
)


@app.task(name=TASK_NAME)  # type: ignore[untyped-decorator]
def noop() -> None:
    """Do nothing; the worker stores a (null) result in the Redis result backend."""
    return None


@worker_ready.connect  # type: ignore[untyped-decorator]
def _announce_ready(**_: Any) -> None:
    """Tell the measuring process this worker has started consuming."""
    if READY_KEY:
        client = redis.Redis.from_url(REDIS_URL)
        try:
            client.incr(READY_KEY)
            client.expire(READY_KEY, 3600)
        finally:
            client.close()
