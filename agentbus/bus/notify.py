"""Job-finished notices over Redis pub/sub, so clients can wait without polling."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence

import redis

from agentbus.bus.connection import translate_errors

CHANNEL = "agentbus:job-done:"


class JobNotifier:
    def __init__(self, conn: redis.Redis) -> None:
        self.conn = conn

    @translate_errors
    def finished(self, job_ids: Sequence[str]) -> None:
        pipe = self.conn.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.publish(CHANNEL + job_id, b"1")
        pipe.execute()

    @translate_errors
    def wait(self, job_id: str, timeout: float, is_done: Callable[[], bool]) -> bool:
        """Block until the job is done or ``timeout`` passes; returns whether it is done.

        Pub/sub is only a hint: ``is_done`` (a read of the record) decides, and is asked again
        every second in case a notice was lost.
        """
        pubsub = self.conn.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        try:
            pubsub.subscribe(CHANNEL + job_id)
            deadline = time.monotonic() + timeout
            while True:
                if is_done():
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                pubsub.get_message(timeout=min(1.0, remaining))
        finally:
            pubsub.close()
