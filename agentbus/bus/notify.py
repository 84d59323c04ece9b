"""Job notices over Redis pub/sub, so clients can wait without polling.

``finished``: the job reached a final state (long-polls return). ``changed``: something of the
job changed (its state, a task, an approval; event streams wake). Both are hints; the record
decides. The API process listens with one connection (``bus/watch.py``).

A finished notice carries the job's end (``JobEnd``: state, result, error, tenant) when the
sender has it and it is at most MAX_END_BYTES, so that a long-poll can answer without reading
the record; otherwise it is bare (``BARE``), and its waiters read the record.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis

from agentbus.bus.connection import translate_errors
from agentbus.domain.messages import JobEnd

log = logging.getLogger("agentbus.bus")

CHANNEL = "agentbus:job-done:"
CHANGED = "agentbus:job-changed:"
BARE = b"1"
MAX_END_BYTES = 16 * 1024
"""A larger end (a big result) is not copied to every API process: its notice is bare."""


def end_notice(end: JobEnd) -> bytes:
    """What a finished notice for ``end`` carries."""
    try:
        data = end.to_json().encode()
    except (TypeError, ValueError) as exc:  # the store could not have held it either; the record decides
        log.warning("job %s: its end is not JSON, its notice is bare: %s", end.job_id, exc)
        return BARE
    return data if len(data) <= MAX_END_BYTES else BARE


class JobNotifier:
    def __init__(self, conn: redis.Redis) -> None:
        self.conn = conn

    @translate_errors
    def finished(self, jobs: Sequence[JobEnd | str]) -> None:
        """Each job's end as committed (``JobEnd``), or its id alone: a bare notice."""
        pipe = self.conn.pipeline(transaction=False)
        for job in jobs:
            if isinstance(job, JobEnd):
                pipe.publish(CHANNEL + job.job_id, end_notice(job))
            else:
                pipe.publish(CHANNEL + job, BARE)
        pipe.execute()

    @translate_errors
    def changed(self, job_ids: Sequence[str]) -> None:
        pipe = self.conn.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.publish(CHANGED + job_id, b"1")
        pipe.execute()
