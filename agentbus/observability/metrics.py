"""Every agentbus metric, and the one-line functions the roles call to record an event.

Labels are bounded: ``type`` and ``task`` are names from the App's registry, ``queue`` a routing
target (``cpu``, ``gpu.8gb``, a queue a task names), ``priority`` one of high|normal|low,
``route`` a route template. No label ever holds a job, task, tenant or request id.
Gauges read from Redis or PostgreSQL (queue depth, open jobs) are computed when Prometheus
scrapes, through the callables a role registers (``watch_*``), each cached for a few seconds
so that several scrapers cost one read.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from prometheus_client import REGISTRY, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

log = logging.getLogger("agentbus.observability")

QUEUE_PREFIX = "agentbus."
# short calls (a lookup, a cache hit) up to long agent calls (an LLM, a GPU kernel)
CALL_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900)
WAIT_BUCKETS = (0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)
FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)

# -- jobs ------------------------------------------------------------------------------------------
JOBS_SUBMITTED = Counter(
    "agentbus_jobs_submitted", "Jobs accepted, by job type (children of agents included).", ["type"]
)
JOBS_FINISHED = Counter(
    "agentbus_jobs_finished", "Jobs that reached a final state, by type and status.", ["type", "status"]
)
# -- task calls (workers) --------------------------------------------------------------------------
TASK_CALLS = Counter(
    "agentbus_task_calls",
    "Task calls a worker finished, by task, queue and outcome (succeeded, failed, retrying, cancelled).",
    ["task", "queue", "outcome"],
)
CALL_DURATION = Histogram(
    "agentbus_task_call_duration_seconds", "How long a call ran on a worker.", ["task", "queue"], buckets=CALL_BUCKETS
)
QUEUE_WAIT = Histogram(
    "agentbus_queue_wait_seconds",
    "From a dispatch entering its queue to a worker taking it.",
    ["queue", "priority"],
    buckets=WAIT_BUCKETS,
)
# Metrics without labels export a sample from the start: those of one role are registered by
# ``for_role`` only in that role, so that an API never reports a lease it cannot hold.
SLOTS = Gauge("agentbus_worker_slots", "This worker's call slots, busy or free.", ["state"], registry=None)
# -- orchestrator ----------------------------------------------------------------------------------
LEASE_HELD = Gauge(
    "agentbus_orchestrator_lease_held", "1 while this orchestrator holds the lease (is active).", registry=None
)
SHARDS_HELD = Gauge(
    "agentbus_orchestrator_shards_held", "How many control-stream shards this orchestrator holds.", registry=None
)
REPLAY = Histogram(
    "agentbus_replay_duration_seconds",
    "Advancing one job: load its journal, replay, record.",
    buckets=FAST_BUCKETS,
    registry=None,
)
DISPATCH_LAG = Histogram(
    "agentbus_dispatch_lag_seconds",
    "From a control event's write to the orchestrator handling it (the oldest of each batch read).",
    buckets=WAIT_BUCKETS,
    registry=None,
)
RECONCILER = Counter(
    "agentbus_reconciler_actions",
    "What the reconciler did: jobs advanced again, queued calls re-dispatched.",
    ["action"],
)
REAPER = Counter(
    "agentbus_reaper_actions",
    "What the reaper did: workers marked lost, calls recovered from lost "
    "workers, calls failed for overrunning their timeout.",
    ["action"],
)
SCHEDULER = Counter(
    "agentbus_scheduler_actions",
    "What the scheduler did: jobs for later submitted (those over a minute late), schedule ticks fired and skipped.",
    ["action"],
)
APPROVALS_EXPIRED = Counter(
    "agentbus_approvals_expired", "Approvals whose deadline fired (jobs affected).", registry=None
)
# -- api -------------------------------------------------------------------------------------------
HTTP_REQUESTS = Counter(
    "agentbus_http_requests", "HTTP requests, by method, route template and status.", ["method", "route", "status"]
)
HTTP_DURATION = Histogram(
    "agentbus_http_request_duration_seconds",
    "HTTP request handling time (to the end of the response).",
    ["method", "route"],
    buckets=FAST_BUCKETS,
)
RATE_LIMITED = Counter(
    "agentbus_rate_limited", "Requests refused with a 429, by reason (rate, authfail, open_jobs).", ["reason"]
)
# -- memory ----------------------------------------------------------------------------------------
MEMORY_SEARCH = Histogram(
    "agentbus_memory_search_duration_seconds", "A memory search, refresh included.", buckets=FAST_BUCKETS, registry=None
)
MEMORY_INDEX = Gauge(
    "agentbus_memory_index_items", "Vectors this process holds in its memory search cache.", registry=None
)
_ROLE_METRICS = {
    "api": (MEMORY_SEARCH, MEMORY_INDEX),
    "orchestrator": (LEASE_HELD, SHARDS_HELD, REPLAY, DISPATCH_LAG, APPROVALS_EXPIRED),
    "worker": (SLOTS, MEMORY_SEARCH, MEMORY_INDEX),
}
_registered: set[str] = set()


def for_role(role: str) -> None:
    """Register the metrics of ``role`` (api, orchestrator, worker-cpu, worker-gpu) in this process."""
    for m in _ROLE_METRICS.get(role.split("-", 1)[0], ()):
        if m._name not in _registered:
            REGISTRY.register(m)
            _registered.add(m._name)


_on = True


def disable() -> None:
    """Metrics off in this process (``--metrics-port 0``): the recording calls return at once."""
    global _on
    _on = False


def replay_timer() -> contextlib.AbstractContextManager[Any]:
    return REPLAY.time() if _on else contextlib.nullcontext()


def queue_labels(rq_queue: str) -> tuple[str, str]:
    """``agentbus.gpu.8gb.high`` → (``gpu.8gb``, ``high``); the plain queue is priority ``normal``."""
    name = rq_queue.removeprefix(QUEUE_PREFIX)
    for level in ("high", "low"):
        if name.endswith("." + level):
            return name[: -len(level) - 1], level
    return name, "normal"


def job_submitted(job_type: str) -> None:
    if not _on:
        return
    JOBS_SUBMITTED.labels(job_type).inc()


def job_finished(job_type: str, status: str) -> None:
    if not _on:
        return
    JOBS_FINISHED.labels(job_type, status).inc()


def call_finished(task: str, rq_queue: str, outcome: str, started: float | None) -> None:
    if not _on:
        return
    queue = queue_labels(rq_queue)[0]
    TASK_CALLS.labels(task, queue, outcome).inc()
    if started is not None:
        CALL_DURATION.labels(task, queue).observe(max(0.0, time.time() - started))


def dispatch_taken(rq_queue: str, enqueued_at: float | None) -> None:
    if not _on:
        return
    if enqueued_at is not None:
        QUEUE_WAIT.labels(*queue_labels(rq_queue)).observe(max(0.0, time.time() - enqueued_at))


def stream_lag(entry_ids: Iterable[bytes | str]) -> None:
    """Stream entry ids start with their write time in ms: the oldest one's age is the lag."""
    if not _on:
        return
    ms = (i.decode() if isinstance(i, bytes) else i for i in entry_ids)
    oldest = min((int(i.split("-", 1)[0]) for i in ms), default=None)
    if oldest is not None:
        DISPATCH_LAG.observe(max(0.0, time.time() - oldest / 1000))


def reconciled(action: str, n: int = 1) -> None:
    if not _on:
        return
    if n:
        RECONCILER.labels(action).inc(n)


def reaped(action: str, n: int = 1) -> None:
    if not _on:
        return
    if n:
        REAPER.labels(action).inc(n)


def scheduled(action: str, n: int = 1) -> None:
    if not _on:
        return
    if n:
        SCHEDULER.labels(action).inc(n)


def approvals_expired(n: int) -> None:
    if not _on:
        return
    if n:
        APPROVALS_EXPIRED.inc(n)


def rate_limited(reason: str) -> None:
    if not _on:
        return
    RATE_LIMITED.labels(reason).inc()


def http_request(method: str, route: str, status: int, seconds: float) -> None:
    if not _on:
        return
    HTTP_REQUESTS.labels(method, route, str(status)).inc()
    HTTP_DURATION.labels(method, route).observe(seconds)


def watch_lease(held: Callable[[], int]) -> None:
    """``held``: how many shards this orchestrator holds; the lease is held while it holds any."""
    LEASE_HELD.set_function(lambda: 1.0 if held() else 0.0)
    SHARDS_HELD.set_function(lambda: float(held()))


def watch_slots(busy: Callable[[], int], total: int) -> None:
    SLOTS.labels("busy").set_function(lambda: float(busy()))
    SLOTS.labels("free").set_function(lambda: float(max(0, total - busy())))


def watch_memory_index(size: Callable[[], int]) -> None:
    MEMORY_INDEX.set_function(lambda: float(size()))


# -- gauges read from Redis or PostgreSQL at scrape time ---------------------------------------------
class _Polled(Collector):
    """A gauge family filled by ``read()`` at scrape time, cached ``ttl_s``; a failing read is skipped."""

    def __init__(
        self, name: str, doc: str, labels: list[str], read: Callable[[], Mapping[Any, float]], ttl_s: float = 5.0
    ) -> None:
        self.name, self.doc, self.labels, self.read, self.ttl_s = name, doc, labels, read, ttl_s
        self._cached: tuple[float, Mapping[Any, float]] = (0.0, {})
        self._lock = threading.Lock()

    def describe(self) -> Iterable[GaugeMetricFamily]:
        return [GaugeMetricFamily(self.name, self.doc, labels=self.labels)]

    def collect(self) -> Iterable[GaugeMetricFamily]:
        with self._lock:
            at, values = self._cached
            if time.monotonic() - at > self.ttl_s:
                try:
                    values = self.read()
                    self._cached = (time.monotonic(), values)
                except Exception as exc:  # a scrape while Redis or PostgreSQL is away: no sample
                    log.debug("metric %s not read: %s", self.name, exc)
                    return []
        family = GaugeMetricFamily(self.name, self.doc, labels=self.labels)
        for key, value in values.items():
            family.add_metric(list(key) if isinstance(key, tuple) else ([key] if self.labels else []), value)
        return [family]


_polled: dict[str, _Polled] = {}


def _register(collector: _Polled) -> None:
    """One collector per name in this process: a later registration replaces the earlier one."""
    old = _polled.pop(collector.name, None)
    if old is not None:
        REGISTRY.unregister(old)
    REGISTRY.register(collector)
    _polled[collector.name] = collector


def watch_queues(read: Callable[[], Mapping[str, tuple[int, float | None]]]) -> None:
    """``read()`` → {rq queue name: (length, enqueue time of its oldest dispatch or None)}."""

    def depth() -> dict[tuple[str, str], float]:
        return {queue_labels(q): float(n) for q, (n, _) in read().items()}

    def age() -> dict[tuple[str, str], float]:
        now = time.time()
        return {queue_labels(q): max(0.0, now - t) for q, (_, t) in read().items() if t is not None}

    _register(
        _Polled(
            "agentbus_queue_depth",
            "Dispatches waiting in each queue (one carries one or more calls).",
            ["queue", "priority"],
            depth,
        )
    )
    _register(
        _Polled(
            "agentbus_queue_oldest_age_seconds",
            "Age of the oldest dispatch waiting in each queue.",
            ["queue", "priority"],
            age,
        )
    )


def watch_jobs(read: Callable[[], Mapping[str, int]], pending_approvals: Callable[[], int]) -> None:
    """Open jobs by state (waiting_human is a job waiting for a person) and approvals pending."""
    _register(
        _Polled(
            "agentbus_jobs",
            "Open jobs by state (submitted, running, waiting_human).",
            ["state"],
            lambda: {k: float(v) for k, v in read().items()},
            ttl_s=10.0,
        )
    )
    _register(
        _Polled(
            "agentbus_approvals_pending",
            "Approvals waiting for an answer.",
            [],
            lambda: {(): float(pending_approvals())},
            ttl_s=10.0,
        )
    )


BREAKER_STATES = {"closed": 0.0, "half-open": 0.5, "open": 1.0}


def watch_breakers(states: Callable[[], Mapping[str, str]]) -> None:
    """``states()`` → {dependency: closed|half-open|open}; exported as 0, 0.5, 1."""
    _register(
        _Polled(
            "agentbus_breaker_state",
            "Circuit breaker per dependency: 0 closed, 0.5 half-open, 1 open.",
            ["dependency"],
            lambda: {k: BREAKER_STATES.get(v, 1.0) for k, v in states().items()},
            ttl_s=0.0,
        )
    )
