"""Job notices over Redis pub/sub, so clients can wait without polling.

``finished``: the job reached a final state (long-polls return). ``changed``: something of the
job changed (its state, a task, an approval; event streams wake). Both are hints; the record
decides. The API process listens with one connection (``bus/watch.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import redis

from agentbus.bus.connection import translate_errors

CHANNEL = "agentbus:job-done:"
CHANGED = "agentbus:job-changed:"


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
    def changed(self, job_ids: Sequence[str]) -> None:
        pipe = self.conn.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.publish(CHANGED + job_id, b"1")
        pipe.execute()
