"""The RQ worker agentbus runs: RQ's SimpleWorker, executing only signed agentbus dispatches.

RQ keeps doing what it does (queues, registries, worker registration, ``rq info``);
the worker refuses any RQ job whose function is not agentbus's dispatch entry and
never imports a function named in Redis: it verifies the signed payload and hands
the ``Dispatch`` to the executor it was given.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Callable
from typing import Any

import redis
from rq import Queue, SimpleWorker
from rq.exceptions import DeserializationError
from rq.job import Job
from rq.serializers import JSONSerializer
from rq.timeouts import BaseDeathPenalty

from agentbus.bus.queues import CANCEL_COMMAND, CHUNK_FUNC, queue_name
from agentbus.bus.replay import ReplayGuard
from agentbus.domain.errors import MessageRejected
from agentbus.domain.messages import Dispatch
from agentbus.security.signing import Keyring

log = logging.getLogger("agentbus.worker")

Executor = Callable[[Dispatch, str], None]


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
        on_stop: Callable[[], None] | None = None,
        on_force_stop: Callable[[], None] | None = None,
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
        self._on_stop = on_stop
        self._on_force_stop = on_force_stop
        self._guard = ReplayGuard(connection, keyring.max_age)
        self.rejected = 0

    def request_stop(self, signum: int, frame: Any) -> None:
        """SIGTERM/SIGINT: finish the current call, take no new one (RQ's warm shutdown)."""
        if self._on_stop is not None:
            self._on_stop()
        super().request_stop(signum, frame)  # type: ignore[no-untyped-call]

    def request_force_stop(self, signum: int, frame: Any) -> None:
        """A second signal: stop the current call at once (it is handed back), then exit."""
        if self._on_force_stop is not None:
            self._on_force_stop()
        super().request_force_stop(signum, frame)

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
    return bool(worker.work(burst=burst, with_scheduler=False, logging_level="WARNING"))
