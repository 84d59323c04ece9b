"""The RQ worker agentbus runs: RQ's SimpleWorker, executing only signed agentbus dispatches.

RQ keeps doing what is seen from outside: its queues (the orchestrator enqueues with RQ), the
worker's registration (``rq info``), its command channel (cancels) and maintenance. The worker
refuses any RQ job whose function is not agentbus's dispatch entry and never imports a function
named in Redis: it verifies the signed payload and hands the ``Dispatch`` to its executor.

Taking a dispatch is ours, not RQ's: one Lua script pops up to as many dispatches as the
executor has room for (from the first queue, in priority order, that holds any, and at most
half of those waiting there, so that the other workers share a backlog), marks each
``started`` by this worker and returns their payloads, and marks those taken before
``finished`` in the same round trip. RQ's ``execute_job`` spent about
seven commands and three round trips per dispatch on what agentbus keeps elsewhere: its
registries, executions, worker statistics, results and heartbeats (a call's state is its
PostgreSQL row; a worker's life is its fleet heartbeat, which the reaper watches). What the
orchestrator reads of an RQ job stays true: ``status`` and ``worker_name`` (a dispatch popped
by a worker that died before marking its calls running is ``started`` by a dead worker, and
is dispatched again), and the hash itself (kept ``result_ttl`` seconds after the dispatch was
taken, as RQ keeps a finished job). Popping and marking ``started`` happen in one step, so no
dispatch is ever out of the queue without a worker named on it.

The loop takes the next dispatches whenever the executor has free slots (a worker holds only
what it has slots for; the rest stays in Redis for the other workers), and a lost Redis
connection is waited out (retried with backoff) instead of ending the process.
"""

from __future__ import annotations

import json
import logging
import signal
import time
import uuid
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC
from typing import Any, Protocol

import redis
from rq import Queue, SimpleWorker
from rq.serializers import JSONSerializer
from rq.utils import now, utcformat, utcparse

from agentbus.bus.queues import CANCEL_COMMAND, CHUNK_FUNC, queue_name
from agentbus.bus.replay import ReplayGuard
from agentbus.domain.errors import MessageRejected
from agentbus.domain.messages import Dispatch
from agentbus.observability import metrics
from agentbus.security.signing import Keyring

log = logging.getLogger("agentbus.worker")

Executor = Callable[[Dispatch, str], None]
TakeMany = Callable[[Sequence[tuple[Dispatch, str]]], None]

REDIS_ERRORS = (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError)
RETRY_FIRST_S = 0.5
RETRY_MAX_S = 10.0
POLL_S = 1
MAX_TAKE = 16
"""Dispatches taken in one round trip at most."""
RQ_HEARTBEAT_S = 30.0
"""How often RQ's worker key is refreshed (it lives ``worker_ttl`` + 60 s: 480 s by default)."""
RESULT_TTL_S = 60
FAILURE_TTL_S = 86_400

# KEYS: the queues, in priority order. ARGV: worker name, now, how many to take, then n ids a
# BLPOP popped already, then m (id, status, ttl) of dispatches taken before, to mark done.
_TAKE = """
local worker, now, want = ARGV[1], ARGV[2], tonumber(ARGV[3])
local i = 4
local ids, from = {}, {}
local n = tonumber(ARGV[i]); i = i + 1
for _ = 1, n do ids[#ids + 1] = ARGV[i]; i = i + 1 end
local m = tonumber(ARGV[i]); i = i + 1
for _ = 1, m do
  local key = 'rq:job:' .. ARGV[i]
  if redis.call('EXISTS', key) == 1 then
    redis.call('HSET', key, 'status', ARGV[i + 1], 'ended_at', now)
    redis.call('EXPIRE', key, tonumber(ARGV[i + 2]))
  end
  i = i + 3
end
for _, q in ipairs(KEYS) do
  if #ids >= want then break end
  local waiting = redis.call('LLEN', q)
  if waiting > 0 then
    -- at most half of what waits (at least one): the other workers find the rest; and from the
    -- first queue holding any only, as RQ's dequeue_any: a lower priority waits for the next take
    local got = redis.call('LPOP', q, math.min(want - #ids, math.max(1, math.floor(waiting / 2))))
    if got then for _, id in ipairs(got) do ids[#ids + 1] = id end end
    break
  end
end
local out = {}
for _, id in ipairs(ids) do
  local key = 'rq:job:' .. id
  local f = redis.call('HMGET', key, 'data', 'origin', 'enqueued_at', 'result_ttl', 'failure_ttl')
  if f[1] then
    redis.call('HSET', key, 'status', 'started', 'worker_name', worker, 'started_at', now)
    out[#out + 1] = {id, f[1], f[2], f[3], f[4], f[5]}
  else
    out[#out + 1] = {id}
  end
end
return out
"""


class Capacity(Protocol):
    """What the loop asks the executor before it takes dispatches (the executor's slots)."""

    def wait_for_room(self, timeout: float) -> bool: ...

    @property
    def busy(self) -> bool: ...

    @property
    def room(self) -> int: ...


@dataclass(frozen=True)
class _Taken:
    """One RQ job as the take script returned it."""

    id: str
    data: bytes
    origin: str
    enqueued_at: float | None
    result_ttl: int
    failure_ttl: int
    gone: bool = False
    """Popped, but its job's hash is not there (pushed without one, or flushed): nothing to run."""

    @classmethod
    def of(cls, row: list[Any]) -> _Taken:
        rid, data, origin, enqueued, result_ttl, failure_ttl = (*row, None, None, None, None, None)[:6]
        return cls(
            _text(rid),
            data if isinstance(data, bytes) else b"",
            _text(origin),
            _timestamp(enqueued),
            _ttl(result_ttl, RESULT_TTL_S),
            _ttl(failure_ttl, FAILURE_TTL_S),
            len(row) == 1,
        )

    def args(self) -> list[Any]:
        """The job's arguments, once its function is agentbus's; MessageRejected otherwise."""
        try:
            raw = zlib.decompress(self.data)
        except zlib.error:
            raw = self.data
        try:
            func, _instance, args, kwargs = json.loads(raw)
        except (ValueError, TypeError):
            # a pickle (RQ's default serializer) or garbage: never unpickled here
            raise MessageRejected(f"refusing RQ job {self.id}: its payload is not JSON") from None
        if func != CHUNK_FUNC:
            raise MessageRejected(f"refusing RQ job {self.id}: function {func!r} is not agentbus's")
        if not isinstance(args, list) or len(args) != 1 or kwargs:
            raise MessageRejected(f"refusing RQ job {self.id}: not an agentbus dispatch")
        return args


def _text(v: Any) -> str:
    return v.decode() if isinstance(v, bytes) else str(v or "")


def _ttl(v: Any, default: int) -> int:
    try:
        n = int(v)
    except (TypeError, ValueError):
        return default
    return n if n > 0 else default


def _timestamp(v: Any) -> float | None:
    """RQ's times are naive UTC."""
    if not isinstance(v, bytes):
        return None
    try:
        return utcparse(v.decode()).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return None


class AgentbusWorker(SimpleWorker):
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
        take_many: TakeMany | None = None,
    ) -> None:
        super().__init__(
            [Queue(queue_name(q), connection=connection, serializer=JSONSerializer) for q in queues],
            name=name,
            connection=connection,
            serializer=JSONSerializer,
        )
        self._executor = executor
        self._take_many = take_many
        """Hands several dispatches to the executor at once (one store round trip for all)."""
        self._keyring = keyring
        self._on_cancel = on_cancel
        self._capacity = capacity
        self._should_stop = should_stop
        self._guard = ReplayGuard(connection, keyring.max_age)
        self._take = connection.register_script(_TAKE)
        self._queue_keys = [q.key for q in self.queues]
        self._done: list[tuple[str, str, int]] = []
        """Dispatches handed to the executor (or refused), marked done in Redis with the next take."""
        self._popped: list[str] = []
        self._rq_beat = 0.0
        self._per_dispatch = 1.0
        """Calls per dispatch lately: how many dispatches the executor's free slots hold."""
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
                self._until_redis(self._idle)  # full for a while: RQ's registration must not lapse
                continue
            try:
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()  # type: ignore[no-untyped-call]
                taken = self._take_now(self._want())
                if not taken and not burst:
                    taken = self._take_blocking()
                self._redis_back()
                if not taken:
                    if burst and (self._capacity is None or not self._capacity.busy):
                        break
                    if burst:
                        time.sleep(0.05)
                    continue
                self._run(taken)
                took_any = True
            except REDIS_ERRORS as exc:
                self._redis_lost(exc)
        try:
            if self._done:
                self._take_now(0)  # the last dispatches' status
            self.teardown()  # type: ignore[no-untyped-call]
        except REDIS_ERRORS:
            pass
        return took_any

    def _want(self) -> int:
        if self._capacity is None:
            return 1
        return max(1, min(MAX_TAKE, int(self._capacity.room / self._per_dispatch)))

    def _take_now(self, want: int, popped: Sequence[str] = ()) -> list[_Taken]:
        """One round trip: mark what was taken before done, pop and mark ``started`` up to ``want``."""
        done, self._done = self._done, []
        popped, self._popped = [*self._popped, *popped], []
        args: list[Any] = [self.name, utcformat(now()), want, len(popped), *popped, len(done)]
        for d in done:
            args.extend(d)
        try:
            rows = self._take(keys=self._queue_keys, args=args)
        except REDIS_ERRORS:
            self._done = done + self._done
            self._popped = popped  # out of its queue and not yet marked: taken when Redis answers
            raise
        self._beat_if_due()
        return [_Taken.of(r) for r in rows]

    def _take_blocking(self) -> list[_Taken]:
        """Nothing waiting: block on the queues for one dispatch (and take what came with it)."""
        got = self.connection.blpop(self._queue_keys, POLL_S)
        if got is None:
            self._beat_if_due()
            return []
        return self._take_now(self._want(), [_text(got[1])])

    def _idle(self) -> None:
        if self._done:
            self._take_now(0)
        self._beat_if_due()

    def _beat_if_due(self) -> None:
        if time.monotonic() - self._rq_beat < RQ_HEARTBEAT_S:
            return
        with self.connection.pipeline() as pipe:
            self.heartbeat(pipeline=pipe)
            pipe.execute()
        self._rq_beat = time.monotonic()

    def _run(self, taken: list[_Taken]) -> None:
        """Verify each dispatch (signature, that it is its RQ job's, first sight of its nonce) and
        hand the genuine ones to the executor; count and drop the rest."""
        opened: list[tuple[_Taken, str, Dispatch]] = []
        for t in taken:
            if t.gone:
                log.warning("skipped %s: an id in the queue without its RQ job", t.id)
                continue
            try:
                nonce, body = self._keyring.open_with_nonce(t.args()[0])
                dispatch = Dispatch.from_dict(body)
                if dispatch.dispatch_id != t.id:
                    raise MessageRejected(f"refusing RQ job {t.id}: payload belongs to {dispatch.dispatch_id}")
                opened.append((t, nonce, dispatch))
            except Exception as exc:  # a forged or foreign message (a pickle cannot even be read as JSON)
                self._refuse(t, exc)
        fresh = self._guard.first_sight([(nonce, uuid.uuid4().hex) for _, nonce, _ in opened]) if opened else []
        batch: list[tuple[_Taken, Dispatch]] = []
        for (t, _, dispatch), first in zip(opened, fresh, strict=True):
            if first:
                metrics.dispatch_taken(t.origin, t.enqueued_at)
                batch.append((t, dispatch))
            else:
                self._refuse(t, MessageRejected(f"refusing RQ job {t.id}: a replay of a dispatch that already ran"))
        if not batch:
            return
        calls = sum(len(d.calls) for _, d in batch)
        self._per_dispatch = 0.8 * self._per_dispatch + 0.2 * max(1.0, calls / len(batch))
        try:
            if self._take_many is not None:
                self._take_many([(d, t.origin) for t, d in batch])
            else:
                for t, d in batch:
                    self._executor(d, t.origin)
        except Exception:
            # as RQ would fail the job: the orchestrator's reconciler dispatches its queued calls again
            log.exception("could not take %d dispatches", len(batch))
            self._done.extend((t.id, "failed", t.failure_ttl) for t, _ in batch)
            return
        self._done.extend((t.id, "finished", t.result_ttl) for t, _ in batch)

    def _refuse(self, t: _Taken, exc: Exception) -> None:
        # a forged or foreign message (a pickle payload cannot even be read as JSON)
        self.rejected += 1
        log.warning("dropped dispatch %s: %s", t.id, exc or type(exc).__name__)
        self._done.append((t.id, "failed", t.failure_ttl))

    def _until_redis(self, fn: Callable[[], Any]) -> None:
        while not self.stopping:
            try:
                fn()
                self._redis_back()
                return
            except REDIS_ERRORS as exc:
                self._redis_lost(exc)

    def _redis_lost(self, exc: Exception) -> None:
        now_ = time.monotonic()
        if self._redis_down_since is None:
            self._redis_down_since = now_
            log.error("lost Redis (%s): waiting for it to come back", exc)
        waited = now_ - self._redis_down_since
        time.sleep(min(RETRY_MAX_S, max(RETRY_FIRST_S, waited / 2)))

    def _redis_back(self) -> None:
        if self._redis_down_since is None:
            return
        log.warning("Redis is back after %.1f s", time.monotonic() - self._redis_down_since)
        self._redis_down_since = None
        # Redis may have restarted empty: register again so that ``rq info`` shows this worker
        if not self.connection.exists(self.key):
            self.register_birth()  # type: ignore[no-untyped-call]

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
