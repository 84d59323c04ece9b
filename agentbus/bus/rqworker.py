"""The RQ worker agentbus runs: RQ's SimpleWorker, executing only signed agentbus dispatches.

RQ keeps doing what it does (queues, registries, worker registration, ``rq info``);
the worker refuses any RQ job whose function is not agentbus's dispatch entry and
never imports a function named in Redis: it verifies the signed payload and hands
the ``Dispatch`` to the executor it was given.

The loop is ours, not ``Worker.work``: the executor takes a dispatch and returns at once
(its calls run concurrently), so the loop takes the next dispatch whenever the executor has
a free slot, and a worker holds only what it has slots for; the rest stays in Redis for the
other workers. And a lost Redis connection is waited out (retried with backoff) instead of
ending the process (RQ's loop quits on most Redis errors).
"""

from __future__ import annotations

import json
import logging
import signal
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import DequeueTimeout, DeserializationError
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import BaseDeathPenalty

from agentbus.bus.queues import CANCEL_COMMAND, CHUNK_FUNC, queue_name
from agentbus.bus.replay import ReplayGuard
from agentbus.domain.errors import MessageRejected
from agentbus.domain.messages import Dispatch
from agentbus.observability import metrics
from agentbus.security.signing import Keyring

log = logging.getLogger("agentbus.worker")

Executor = Callable[[Dispatch, str], None]

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0
POLL_S = 1


class Capacity(Protocol):
    """What the loop asks the executor before it takes a dispatch (the executor's slots)."""

    def wait_for_room(self, timeout: float) -> bool: ...

    @property
    def busy(self) -> bool: ...


class _NoDeathPenalty(BaseDeathPenalty):
    """Timeouts are enforced per call by the executor, not per RQ job."""

    def setup_death_penalty(self) -> None:
        pass

    def cancel_death_penalty(self) -> None:
        pass


def _func_name(job: Job) -> str | None:
    """The RQ job's function name, or None when its payload is not JSON (a pickle, garbage)."""
    try:
        return job.func_name
    except DeserializationError:
        return None


def _timestamp(at: datetime | None) -> float | None:
    """RQ's times are naive UTC datetimes."""
    return None if at is None else at.replace(tzinfo=UTC).timestamp()


class DispatchJob(Job):
    executor: Executor | None = None
    keyring: Keyring | None = None
    guard: ReplayGuard | None = None

    def _execute(self) -> Any:
        func_name = _func_name(self)
        if func_name != CHUNK_FUNC:
            raise MessageRejected(f"refusing RQ job {self.id}: function {func_name!r} is not agentbus's")
        if self.executor is None or self.keyring is None or len(self.args) != 1 or self.kwargs:
            raise MessageRejected(f"refusing RQ job {self.id}: not an agentbus dispatch")
        nonce, body = self.keyring.open_with_nonce(self.args[0])
        dispatch = Dispatch.from_dict(body)
        if dispatch.dispatch_id != self.id:
            raise MessageRejected(f"refusing RQ job {self.id}: payload belongs to {dispatch.dispatch_id}")
        if self.guard is not None and not self.guard.first_sight([(nonce, uuid.uuid4().hex)])[0]:
            raise MessageRejected(f"refusing RQ job {self.id}: a replay of a dispatch that already ran")
        metrics.dispatch_taken(self.origin, _timestamp(self.enqueued_at))
        self.executor(dispatch, self.origin)
        return None


class AgentbusWorker(SimpleWorker):
    death_penalty_class = _NoDeathPenalty
    job_class = DispatchJob

    def __init__(
        self,
        queues: list[str],
        *,
        connection: redis.Redis,
        name: str,
        executor: Executor,
        keyring: Keyring,
        on_cancel: Callable[[str], None],
        capacity: Capacity | None = None,
        should_stop: Callable[[], bool] | None = None,
    ) -> None:
        super().__init__(
            [Queue(queue_name(q), connection=connection, serializer=JSONSerializer) for q in queues],
            name=name,
            connection=connection,
            serializer=JSONSerializer,
            job_class=DispatchJob,
        )
        self._executor = executor
        self._keyring = keyring
        self._on_cancel = on_cancel
        self._capacity = capacity
        self._should_stop = should_stop
        self._guard = ReplayGuard(connection, keyring.max_age)
        self.rejected = 0
        self.stop_requests = 0
        self._redis_down_since: float | None = None

    # -- signals: the first SIGTERM/SIGINT stops taking work (the caller drains), a second forces --
    def _install_signal_handlers(self) -> None:
        signal.signal(signal.SIGINT, self._on_signal)
        signal.signal(signal.SIGTERM, self._on_signal)

    def _on_signal(self, signum: int, frame: Any) -> None:
        self.stop_requests += 1
        self._stop_requested = True

    @property
    def stopping(self) -> bool:
        return self._stop_requested or (self._should_stop is not None and self._should_stop())

    def serve(self, burst: bool = False) -> bool:
        """Take dispatches while there is room, until asked to stop (or, in burst mode, until the
        queues are empty and every call taken has finished)."""
        self._install_signal_handlers()
        took_any = False
        self._until_redis(lambda: self.bootstrap("WARNING"))
        while not self.stopping:
            if self._capacity is not None and not self._capacity.wait_for_room(POLL_S):
                self._until_redis(self.heartbeat)  # full for a while: RQ's registration must not lapse
                continue
            try:
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()  # type: ignore[no-untyped-call]
                result = self.queue_class.dequeue_any(
                    self._ordered_queues,
                    None if burst else POLL_S,
                    connection=self.connection,
                    job_class=self.job_class,
                    serializer=self.serializer,
                    death_penalty_class=self.death_penalty_class,
                )
                self._redis_back()
                if result is None:
                    if burst and (self._capacity is None or not self._capacity.busy):
                        break
                    if burst:
                        time.sleep(0.05)
                    continue
                job, queue = result
                self.execute_job(job, queue)
                took_any = True
                self.heartbeat()
            except DequeueTimeout:
                self._until_redis(self.heartbeat)  # (an error raised in this handler would escape the loop)
            except REDIS_ERRORS as exc:
                self._redis_lost(exc)
        try:
            self.teardown()  # type: ignore[no-untyped-call]
        except REDIS_ERRORS:
            pass
        return took_any

    def _until_redis(self, fn: Callable[[], Any]) -> None:
        while not self.stopping:
            try:
                fn()
                self._redis_back()
                return
            except REDIS_ERRORS as exc:
                self._redis_lost(exc)

    def _redis_lost(self, exc: Exception) -> None:
        now = time.monotonic()
        if self._redis_down_since is None:
            self._redis_down_since = now
            log.error("lost Redis (%s): waiting for it to come back", exc)
        waited = now - self._redis_down_since
        time.sleep(min(RETRY_MAX_S, max(RETRY_FIRST_S, waited / 2)))

    def _redis_back(self) -> None:
        if self._redis_down_since is None:
            return
        log.warning("Redis is back after %.1f s", time.monotonic() - self._redis_down_since)
        self._redis_down_since = None
        # Redis may have restarted empty: register again so that ``rq info`` shows this worker
        if not self.connection.exists(self.key):
            self.register_birth()  # type: ignore[no-untyped-call]

    def execute_job(self, job: Job, queue: Queue) -> None:
        # A forged job naming os.system or a pickle payload gets no executor; DispatchJob refuses it
        # and handle_exception counts it once.
        assert isinstance(job, DispatchJob)
        job.executor = self._executor if _func_name(job) == CHUNK_FUNC else None
        job.keyring = self._keyring
        job.guard = self._guard
        super().execute_job(job, queue)

    def handle_exception(self, job: Job, *exc_info: Any) -> None:
        if exc_info and isinstance(exc_info[1], MessageRejected | DeserializationError):
            # a forged or foreign message (a pickle payload cannot even be read as JSON)
            self.rejected += 1
            log.warning("dropped dispatch %s: %s", job.id, exc_info[1] or type(exc_info[1]).__name__)
            return
        super().handle_exception(job, *exc_info)

    def handle_payload(self, message: dict[str, Any]) -> None:
        try:
            payload = json.loads(message["data"].decode())
        except (ValueError, KeyError, AttributeError):
            return
        if payload.get("command") == CANCEL_COMMAND and isinstance(payload.get("task_id"), str):
            self._on_cancel(payload["task_id"])
            return
        super().handle_payload(message)  # type: ignore[no-untyped-call]


def run_worker(worker: AgentbusWorker, burst: bool = False) -> bool:
    return worker.serve(burst=burst)
