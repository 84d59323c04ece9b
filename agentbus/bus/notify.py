"""Job notices over Redis pub/sub, so clients can wait without polling.

``finished``: the job reached a final state (long-polls return). ``changed``: something of the
job changed (its state, a task, an approval; event streams wake). Both are hints; the record
decides. The API process listens with one connection (``bus/watch.py``).

The notices of one orchestrator batch go out as one message (``JobNotices``) on one channel,
not one message per job: every API process hears every notice, and reading a message cost its
event loop as much as the rest of waking the waiter (docs/benchmarks.md, seventh pass).

A finished notice carries the job's end (``JobEnd``: state, result, error, tenant) when the
sender has it and it is at most MAX_END_BYTES, so that a long-poll can answer without reading
the record; otherwise it is bare (the job's id alone), and its waiters read the record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence

import redis

from agentbus.bus.connection import translate_errors
from agentbus.domain.messages import JobEnd, JobNotices

log = logging.getLogger("agentbus.bus")

NOTICES = "agentbus:job-notices"
MAX_END_BYTES = 16 * 1024
"""A larger end (a big result) is not copied to every API process: its notice is bare."""
MAX_MESSAGE_BYTES = 256 * 1024
"""Notices past this size go in a further message, so that no one message holds up a listener."""


def end_notice(end: JobEnd | str) -> str:
    """What a finished notice for ``end`` carries, in JSON: the end, or the job's id alone (bare)."""
    if isinstance(end, str):
        return json.dumps(end)
    try:
        data = end.to_json()
    except (TypeError, ValueError) as exc:  # the store could not have held it either; the record decides
        log.warning("job %s: its end is not JSON, its notice is bare: %s", end.job_id, exc)
        return json.dumps(end.job_id)
    return data if len(data.encode()) <= MAX_END_BYTES else json.dumps(end.job_id)


def messages(finished: Sequence[JobEnd | str], changed: Sequence[str]) -> list[str]:
    """The notices in as few messages as MAX_MESSAGE_BYTES allows (an end is at most MAX_END_BYTES)."""
    out: list[str] = []
    ends: list[str] = []
    ids: list[str] = []
    size = 0
    parts = [*((True, end_notice(e)) for e in finished), *((False, json.dumps(j)) for j in changed)]
    for is_end, part in parts:
        if size + len(part) > MAX_MESSAGE_BYTES - 64 and (ends or ids):  # 64: the message's own braces and names
            out.append(JobNotices.join(ends, ids))
            ends, ids, size = [], [], 0
        (ends if is_end else ids).append(part)
        size += len(part) + 1
    if ends or ids:
        out.append(JobNotices.join(ends, ids))
    return out


class JobNotifier:
    def __init__(self, conn: redis.Redis) -> None:
        self.conn = conn

    @translate_errors
    def notify(self, finished: Sequence[JobEnd | str] = (), changed: Sequence[str] = ()) -> None:
        """Each finished job's end as committed (``JobEnd``) or its id alone (a bare notice), and
        the jobs that changed: one message for a batch of any usual size."""
        parts = messages(finished, changed)
        if not parts:
            return
        if len(parts) == 1:
            self.conn.publish(NOTICES, parts[0])
            return
        pipe = self.conn.pipeline(transaction=False)
        for part in parts:
            pipe.publish(NOTICES, part)
        pipe.execute()

    def finished(self, jobs: Sequence[JobEnd | str]) -> None:
        self.notify(finished=jobs)

    def changed(self, job_ids: Sequence[str]) -> None:
        self.notify(changed=job_ids)
