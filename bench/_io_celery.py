"""The Celery side of ``bench/io.py``: a task that waits (``celery -A bench._io_celery worker``)."""

from __future__ import annotations

import os
import time

from celery import Celery

URL = os.environ.get("BENCH_IO_REDIS", "redis://127.0.0.1:6379/14")

app = Celery("bench_io", broker=URL, backend=URL)
app.conf.update(
    task_serializer="json",
    result_serializer="json",
    accept_content=["json"],
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
    worker_send_task_events=False,
)


@app.task(name="bench_io.wait")
def wait(seconds: float) -> float:
    time.sleep(seconds)
    return seconds
