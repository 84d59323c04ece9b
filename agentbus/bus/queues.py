"""Task dispatch over RQ queues: one RQ job carries one signed ``Dispatch`` (a batch of calls)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC

import redis
from rq import Queue
from rq.command import send_command
from rq.serializers import JSONSerializer
from rq.utils import utcparse

from agentbus.bus.connection import translate_errors
from agentbus.domain.messages import Dispatch
from agentbus.security.signing import Keyring

QUEUE_PREFIX = "agentbus."
# The RQ job's function name. Workers never import it: they check it and run the signed payload.
CHUNK_FUNC = "agentbus.bus.queues.execute_dispatch"
CANCEL_COMMAND = "agentbus-cancel"


def execute_dispatch(envelope: str) -> None:  # pragma: no cover - never called: see AgentbusWorker
    raise RuntimeError("agentbus dispatches run only in an agentbus worker")


def queue_name(name: str) -> str:
    """RQ queue for a routing name: ``cpu`` → ``agentbus.cpu``."""
    return name if name.startswith(QUEUE_PREFIX) else QUEUE_PREFIX + name


class Dispatcher:
    def __init__(self, conn: redis.Redis, keyring: Keyring, result_ttl: int = 60, failure_ttl: int = 86_400):
        self.conn = conn
        self.keyring = keyring
        self.result_ttl = result_ttl
        self.failure_ttl = failure_ttl
        self._queues: dict[str, Queue] = {}

    def queue(self, name: str) -> Queue:
        qn = queue_name(name)
        q = self._queues.get(qn)
        if q is None:
            q = self._queues[qn] = Queue(qn, connection=self.conn, serializer=JSONSerializer)
        return q

    @translate_errors
    def send(self, name: str, dispatches: Sequence[Dispatch], at_front: bool = False) -> None:
        if not dispatches:
            return
        q = self.queue(name)
        datas = [
            Queue.prepare_data(
                CHUNK_FUNC,
                args=[self.keyring.seal(d.to_dict())],
                job_id=d.dispatch_id,
                timeout=-1,
                result_ttl=self.result_ttl,
                failure_ttl=self.failure_ttl,
                description=f"{len(d.calls)} x {d.calls[0].name}" if d.calls else "empty",
                at_front=at_front,
            )
            for d in dispatches
        ]
        with self.conn.pipeline() as pipe:
            q.enqueue_many(datas, pipeline=pipe)
            pipe.execute()

    @translate_errors
    def statuses(self, dispatch_ids: Sequence[str]) -> dict[str, tuple[str | None, str | None]]:
        """RQ's status of each dispatch and the worker that took it; (None, None) when Redis lost it."""
        ids = list(dict.fromkeys(dispatch_ids))
        pipe = self.conn.pipeline(transaction=False)
        for d in ids:
            pipe.hmget(f"rq:job:{d}", ["status", "worker_name"])
        out: dict[str, tuple[str | None, str | None]] = {}
        for d, (status, worker) in zip(ids, pipe.execute(), strict=True):
            out[d] = (
                status.decode() if isinstance(status, bytes) else None,
                worker.decode() if isinstance(worker, bytes) and worker else None,
            )
        return out

    @translate_errors
    def cancel_call(self, worker_name: str, task_id: str) -> None:
        """Ask a worker to stop a running call (RQ's command channel)."""
        send_command(self.conn, worker_name, CANCEL_COMMAND, task_id=task_id)


@translate_errors
def queue_depths(conn: redis.Redis) -> dict[str, tuple[int, float | None]]:
    """Every agentbus queue RQ knows: {name: (dispatches waiting, when the oldest was enqueued)}."""
    keys = sorted(k.decode() if isinstance(k, bytes) else str(k) for k in conn.smembers(Queue.redis_queues_keys))
    keys = [k for k in keys if k.startswith(Queue.redis_queue_namespace_prefix + QUEUE_PREFIX)]
    if not keys:
        return {}
    pipe = conn.pipeline(transaction=False)
    for k in keys:
        pipe.llen(k)
        pipe.lindex(k, 0)  # RQ pushes on the right and pops on the left: the head waited longest
    answers = pipe.execute()
    heads = [h.decode() if isinstance(h, bytes) else None for h in answers[1::2]]
    enqueued: list[object] = [None] * len(heads)
    if any(heads):
        for h in heads:
            pipe.hget(f"rq:job:{h}", "enqueued_at")
        enqueued = pipe.execute()
    out: dict[str, tuple[int, float | None]] = {}
    for k, n, head, at in zip(keys, answers[0::2], heads, enqueued, strict=True):
        when = None
        if head is not None and isinstance(at, bytes):
            try:
                when = utcparse(at.decode()).replace(tzinfo=UTC).timestamp()
            except ValueError:
                pass
        out[k.removeprefix(Queue.redis_queue_namespace_prefix)] = (int(n), when)
    return out
