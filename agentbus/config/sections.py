"""Every setting, declared once: its name, type, default, environment variable, parser, check and help.

Small frozen sections; ``Settings`` has the fields of all of them (``settings.lease_ttl_s``) and
``settings.section(Orchestrator)`` gives one alone. ``docs/configuration.md`` is generated from
these declarations (``python -m agentbus.config``); a test fails when the two differ.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentbus.config._fields import (
    _age,
    _bool,
    _cidrs,
    _float,
    _int,
    _lower,
    _size,
    _str,
    above,
    at_least,
    between,
    one_of,
    rate,
    setting,
    tracing,
    url,
)
from agentbus.domain.output import MAX_OUTPUT_BYTES, OUTPUT_BUFFER, OUTPUT_TTL_S
from agentbus.domain.retention import DEFAULT_RETENTION_S
from agentbus.observability.logs import FORMATS, LEVELS

DEV_SECRET = "agentbus-dev-secret-change-me"


@dataclass(frozen=True)
class Core:
    """Where the state lives, what runs, and the key every message is signed with (every role)."""

    database_url: str = setting(
        "sqlite:///.agentbus/agentbus.db",
        "AGENTBUS_DATABASE_URL",
        "postgresql://user:pw@host:5432/db (libpq options such as ?sslmode= pass through) or sqlite:///path.db",
        _str,
        url("postgresql", "postgres", "sqlite"),
        url=True,
    )
    redis_url: str = setting(
        "redis://127.0.0.1:6379/0",
        "AGENTBUS_REDIS_URL",
        "redis://:pw@host:6379/0 (rediss:// for TLS)",
        _str,
        url("redis", "rediss", "unix"),
        url=True,
    )
    app: str = setting("agentbus.examples:app", "AGENTBUS_APP", "module:attr of your App", _str)
    secret: str = setting(
        DEV_SECRET,
        "AGENTBUS_SECRET",
        "signs every queue and stream message (HMAC); must be set in production",
        _str,
        secret=True,
    )
    environment: str = setting(
        "dev",
        "AGENTBUS_ENV",
        "production: refuse to start with an unset or development secret",
        _lower,
    )
    stream_max_age_s: float = setting(
        3600.0,
        "AGENTBUS_STREAM_MAX_AGE",
        "seconds a signed control-stream message stays valid (its nonce is remembered as long)",
        _float,
        above(0),
    )
    dispatch_max_age_s: float = setting(
        86400.0,
        "AGENTBUS_DISPATCH_MAX_AGE",
        "seconds a signed queue dispatch stays valid (a call may wait in its queue this long)",
        _float,
        above(0),
    )


@dataclass(frozen=True)
class Client:
    """Where the command-line client finds the API."""

    api_url: str = setting(
        "http://127.0.0.1:8000", "AGENTBUS_API_URL", "the API the CLI talks to", _str, url("http", "https")
    )
    api_key: str = setting("", "AGENTBUS_API_KEY", "the CLI's API key (ab_...)", _str, secret=True)


@dataclass(frozen=True)
class Api:
    """The HTTP API: request sizes, connections, proxies, its PostgreSQL pool."""

    max_body_bytes: int = setting(
        1_048_576, "AGENTBUS_MAX_BODY_BYTES", "largest request body (413 over it)", _int, at_least(1024)
    )
    trusted_proxies: tuple[str, ...] = setting(
        (),
        "AGENTBUS_TRUSTED_PROXIES",
        "comma-separated CIDRs whose X-Forwarded-For the API believes (your load balancer)",
        _cidrs,
    )
    key_cache_s: float = setting(
        5.0,
        "AGENTBUS_KEY_CACHE",
        "seconds an API replica trusts a key it looked up: a revoked key is refused within this long",
        _float,
        at_least(0),
    )
    console_session_s: float = setting(
        8 * 3600.0,
        "AGENTBUS_CONSOLE_SESSION",
        "how long a web console sign-in lasts",
        _age,
        above(0),
    )
    events_keepalive_s: float = setting(
        15.0,
        "AGENTBUS_EVENTS_KEEPALIVE",
        "seconds between two comment lines on a quiet event stream, so that proxies keep it open",
        _float,
        above(0),
    )
    db_pool_size: int = setting(
        32, "AGENTBUS_DB_POOL_SIZE", "PostgreSQL connections of one API process", _int, at_least(1)
    )
    db_pool_timeout_s: float = setting(
        5.0,
        "AGENTBUS_DB_POOL_TIMEOUT",
        "seconds a request waits for a pooled connection before it is answered 503",
        _float,
        above(0),
    )
    http_header_timeout_s: float = setting(
        10.0,
        "AGENTBUS_HTTP_HEADER_TIMEOUT",
        "seconds a request head may take to arrive before the connection is closed",
        _float,
        above(0),
    )
    http_keepalive_s: float = setting(
        5.0, "AGENTBUS_HTTP_KEEPALIVE", "seconds an idle keep-alive connection stays open", _float, above(0)
    )
    http_max_concurrency: int = setting(
        4096,
        "AGENTBUS_HTTP_MAX_CONCURRENCY",
        "connections and requests in flight per process; beyond it, 503",
        _int,
        at_least(1),
    )
    http_max_header_bytes: int = setting(
        16_384, "AGENTBUS_HTTP_MAX_HEADER_BYTES", "largest request head", _int, at_least(1024)
    )


@dataclass(frozen=True)
class Orchestrator:
    """The orchestrator's lease, loops and batches."""

    lease_ttl_s: float = setting(
        10.0,
        "AGENTBUS_LEASE_TTL",
        "seconds the active orchestrator's lease lasts; a standby takes over within this of its death",
        _float,
        above(0),
    )
    reconcile_interval_s: float = setting(
        2.0, "AGENTBUS_RECONCILE_INTERVAL", "seconds between two passes of the reconciler", _float, above(0)
    )
    reconcile_after_s: float = setting(
        5.0,
        "AGENTBUS_RECONCILE_AFTER",
        "seconds a job may go without progress before the reconciler advances it",
        _float,
        at_least(0),
    )
    timer_interval_s: float = setting(
        0.1, "AGENTBUS_TIMER_INTERVAL", "seconds between two checks of due timers (ctx.sleep)", _float, above(0)
    )
    dispatch_chunk: int = setting(
        256, "AGENTBUS_DISPATCH_CHUNK", "task calls per queued dispatch, at most", _int, at_least(1)
    )
    timeout_grace_s: float = setting(
        5.0,
        "AGENTBUS_TIMEOUT_GRACE",
        "seconds past a call's timeout before the reaper fails it (the worker usually does first)",
        _float,
        at_least(0),
    )
    orphan_grace_s: float = setting(
        10.0,
        "AGENTBUS_ORPHAN_GRACE",
        "seconds a live worker's running call may be missing from its heartbeats before it is re-run",
        _float,
        at_least(0),
    )
    shards: int = setting(
        1,
        "AGENTBUS_SHARDS",
        "control-stream partitions; every role must use the same value",
        _int,
        at_least(1),
    )


@dataclass(frozen=True)
class Worker:
    """Worker processes: heartbeats, concurrency, shutdown."""

    heartbeat_interval_s: float = setting(
        2.0, "AGENTBUS_HEARTBEAT_INTERVAL", "seconds between two heartbeats of a worker", _float, above(0)
    )
    worker_ttl_s: float = setting(
        10.0,
        "AGENTBUS_WORKER_TTL",
        "seconds without a heartbeat before a worker counts as lost and its calls are re-run",
        _float,
        above(0),
    )
    shutdown_grace_s: float = setting(
        30.0,
        "AGENTBUS_SHUTDOWN_GRACE",
        "seconds a stopping worker waits for its calls in flight",
        _float,
        at_least(0),
    )
    worker_concurrency: int = setting(
        0,
        "AGENTBUS_WORKER_CONCURRENCY",
        "calls in flight per worker process; 0: the role's default (100 on worker-cpu, 1 on worker-gpu)",
        _int,
        at_least(0),
    )
    worker_max_abandoned: int = setting(
        50,
        "AGENTBUS_WORKER_MAX_ABANDONED",
        "threads of timed-out or cancelled sync calls a worker tolerates before it drains and exits",
        _int,
        at_least(1),
    )


@dataclass(frozen=True)
class Output:
    """Streamed output (ctx.emit; docs/workers.md "Streamed output")."""

    output_buffer: int = setting(
        OUTPUT_BUFFER,
        "AGENTBUS_OUTPUT_BUFFER",
        "outputs a call holds in its worker before they are sent, and a job's output stream keeps, at most",
        _int,
        at_least(1),
    )
    output_ttl_s: float = setting(
        OUTPUT_TTL_S,
        "AGENTBUS_OUTPUT_TTL",
        "seconds a job's output stream lives after its last output",
        _float,
        above(0),
    )
    output_max_bytes: int = setting(
        MAX_OUTPUT_BYTES, "AGENTBUS_OUTPUT_MAX_BYTES", "largest ctx.emit (its JSON text)", _int, at_least(1)
    )


@dataclass(frozen=True)
class Limits:
    """What one tenant, key, job or request may use; the circuit breakers."""

    rate_read: str = setting(
        "100/s:200", "AGENTBUS_RATE_READ", "reads per API key: rate/s:burst (or /m, /h)", _str, rate
    )
    rate_write: str = setting("50/s:100", "AGENTBUS_RATE_WRITE", "writes per API key: rate/s:burst", _str, rate)
    tenant_rate_factor: float = setting(
        4.0, "AGENTBUS_TENANT_RATE_FACTOR", "a tenant's rate: this many times a key's", _float, above(0)
    )
    authfail_rate: str = setting(
        "1/s:10", "AGENTBUS_AUTHFAIL_RATE", "failed sign-ins per client address: rate/s:burst", _str, rate
    )
    max_running_jobs: int = setting(
        10_000, "AGENTBUS_MAX_RUNNING_JOBS", "open jobs per tenant; a new one beyond it is 429", _int, at_least(1)
    )
    max_tasks_per_job: int = setting(
        100_000, "AGENTBUS_MAX_TASKS_PER_JOB", "task calls one job may make (TooManyTasks)", _int, at_least(1)
    )
    max_calls_per_replay: int = setting(
        10_000,
        "AGENTBUS_MAX_CALLS_PER_REPLAY",
        "new task calls one replay may schedule; a larger fan-out is built over several turns",
        _int,
        at_least(1),
    )
    max_result_bytes: int = setting(
        1_048_576, "AGENTBUS_MAX_RESULT_BYTES", "largest task result (the call fails)", _int, at_least(1)
    )
    max_json_depth: int = setting(
        32, "AGENTBUS_MAX_JSON_DEPTH", "deepest nesting of a request's JSON (413)", _int, at_least(1)
    )
    max_array_length: int = setting(
        10_000, "AGENTBUS_MAX_ARRAY_LENGTH", "longest array in a request's JSON (413)", _int, at_least(1)
    )
    breaker_fail_max: int = setting(
        3,
        "AGENTBUS_BREAKER_FAIL_MAX",
        "failures in a row before the API stops calling PostgreSQL or Redis for a while (503)",
        _int,
        at_least(1),
    )
    breaker_reset_s: float = setting(
        5.0, "AGENTBUS_BREAKER_RESET", "seconds an open circuit breaker waits before it tries again", _float, above(0)
    )


@dataclass(frozen=True)
class Memory:
    """Agent memory (docs/memory.md)."""

    embedder: str = setting("hash", "AGENTBUS_EMBEDDER", "hash, or minilm (with agentbus[minilm])", _lower)
    memory_max_batch: int = setting(
        1000, "AGENTBUS_MEMORY_MAX_BATCH", "items one memory write may carry (413)", _int, between(1, 10_000)
    )
    max_memory_items: int = setting(
        1_000_000, "AGENTBUS_MAX_MEMORY_ITEMS", "live memory items per tenant (429)", _int, at_least(1)
    )
    memory_budget: int = setting(
        640 << 20,
        "AGENTBUS_MEMORY_BUDGET",
        "vector caches one API replica or worker holds; the default fits a 1 GB replica",
        _size,
    )


@dataclass(frozen=True)
class Webhooks:
    """Webhooks the orchestrator sends when a job finishes or asks a person (docs/hitl.md)."""

    webhook_allow_private: bool = setting(
        False,
        "AGENTBUS_WEBHOOK_ALLOW_PRIVATE",
        "true: webhooks may go to private, loopback and link-local addresses",
        _bool,
    )
    webhook_secret: str = setting(
        "", "AGENTBUS_WEBHOOK_SECRET", "signs webhooks (HMAC); empty: AGENTBUS_SECRET", _str, secret=True
    )
    webhook_max_attempts: int = setting(
        8,
        "AGENTBUS_WEBHOOK_MAX_ATTEMPTS",
        "tries of one delivery before it is marked failed",
        _int,
        at_least(1),
    )
    webhook_max_backoff_s: float = setting(
        300.0,
        "AGENTBUS_WEBHOOK_MAX_BACKOFF",
        "longest wait between two tries of a delivery, in seconds (the wait doubles from 1 s)",
        _float,
        above(0),
    )


@dataclass(frozen=True)
class Retention:
    """How long finished jobs are kept (docs/deploy.md "Retention")."""

    retention_s: float = setting(
        DEFAULT_RETENTION_S,
        "AGENTBUS_RETENTION",
        "finished jobs older than this are deleted; 0 or off keeps everything",
        _age,
        at_least(0),
    )
    retention_interval_s: float = setting(
        300.0, "AGENTBUS_RETENTION_INTERVAL", "seconds between two purges by the orchestrator", _float, above(0)
    )
    retention_batch: int = setting(
        1000, "AGENTBUS_RETENTION_BATCH", "rows deleted per transaction", _int, between(1, 100_000)
    )


@dataclass(frozen=True)
class Observability:
    """Logs, metrics and traces (docs/observability.md)."""

    metrics_port: int = setting(
        9090,
        "AGENTBUS_METRICS_PORT",
        "/metrics (and /healthz, /readyz on the orchestrator and workers) on this port; 0: none",
        _int,
        between(0, 65535),
    )
    log_level: str = setting(
        "warning",
        "AGENTBUS_LOG_LEVEL",
        "debug, info, warning, error or critical",
        _lower,
        one_of(*LEVELS),
    )
    log_format: str = setting("text", "AGENTBUS_LOG_FORMAT", "text, or json lines", _lower, one_of(*FORMATS))
    tracing: str = setting(
        "",
        "AGENTBUS_TRACING",
        "OpenTelemetry traces: empty (off), otlp, console, or file:DIR",
        _str,
        tracing,
    )


SECTIONS: tuple[type, ...] = (
    Core,
    Client,
    Api,
    Orchestrator,
    Worker,
    Output,
    Limits,
    Memory,
    Webhooks,
    Retention,
    Observability,
)
"""In the order the reference (docs/configuration.md, ``agentbus config``) lists them."""

__all__ = [
    "DEV_SECRET",
    "SECTIONS",
    "Api",
    "Client",
    "Core",
    "Limits",
    "Memory",
    "Observability",
    "Orchestrator",
    "Output",
    "Retention",
    "Webhooks",
    "Worker",
]
