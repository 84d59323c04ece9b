"""Settings: small frozen dataclasses read once from the environment by the entry point."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from agentbus.domain.errors import ConfigError, InvalidInput
from agentbus.domain.retention import DEFAULT_RETENTION_S, parse_age

DEV_SECRET = "agentbus-dev-secret-change-me"


def _float(env: Mapping[str, str], key: str, default: float) -> float:
    raw = env.get(key)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{key} must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ConfigError(f"{key} must be a finite number, got {raw!r}")
    return value


def _int(env: Mapping[str, str], key: str, default: int) -> int:
    return int(_float(env, key, default))


def _age(env: Mapping[str, str], key: str, default: float) -> float:
    """``30d``, ``12h``... (``domain.retention.parse_age``); ``0`` or ``off``: 0, i.e. never."""
    raw = env.get(key, "").strip().lower()
    if raw == "":
        return default
    if raw in ("0", "off", "never"):
        return 0.0
    try:
        return parse_age(raw)
    except InvalidInput as exc:
        raise ConfigError(f"{key}: {exc.message}") from None


def _cidrs(env: Mapping[str, str], key: str) -> tuple[str, ...]:
    """A comma-separated list of networks (``10.0.0.0/8, 172.16.0.1``), checked now, not per request."""
    import ipaddress

    nets = tuple(n.strip() for n in env.get(key, "").split(",") if n.strip())
    for net in nets:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ConfigError(f"{key}: {net!r} is not an IP address or network (CIDR)") from None
    return nets


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1000**3,
    "gib": 1 << 30,
}


def _size(env: Mapping[str, str], key: str, default: int) -> int:
    """A size in bytes: ``805306368``, ``768MiB``, ``768M``, ``1GB``, ``0.75GiB``."""
    raw = env.get(key, "").strip()
    if raw == "":
        return default
    number = raw.rstrip("BbKkMmGgIi ")
    unit = raw[len(number) :].strip().lower()
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        raise ConfigError(f"{key} must be a size such as 805306368, 768MiB or 1GB, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{key} must be a size of 0 or more bytes, got {raw!r}")
    return int(value)


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///.agentbus/agentbus.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    secret: str = DEV_SECRET
    app: str = "agentbus.examples:app"
    api_url: str = "http://127.0.0.1:8000"
    api_key: str = ""
    max_body_bytes: int = 1_048_576
    # orchestrator
    lease_ttl_s: float = 10.0
    shards: int = 1
    """Control-stream partitions, each with a lease (domain/shards.py); the same in every role of a deployment."""
    reconcile_interval_s: float = 2.0
    reconcile_after_s: float = 5.0
    timer_interval_s: float = 0.1
    dispatch_chunk: int = 256
    timeout_grace_s: float = 5.0
    # workers
    heartbeat_interval_s: float = 2.0
    worker_ttl_s: float = 10.0
    shutdown_grace_s: float = 30.0
    worker_concurrency: int = 0
    """Calls in flight per worker process; 0: the role's default (100 on worker-cpu, 1 on worker-gpu)."""
    worker_max_abandoned: int = 50
    """Threads of timed-out or cancelled sync calls a worker tolerates before it drains and exits."""
    orphan_grace_s: float = 10.0
    # streamed output (ctx.emit; docs/workers.md "Streamed output")
    output_buffer: int = 1000
    """Outputs a call holds in its worker before they are sent, and a job's output stream keeps, at most."""
    output_ttl_s: float = 3600.0
    """A job's output stream expires this long after its last output."""
    output_max_bytes: int = 65_536
    """Largest ``ctx.emit`` (its JSON text)."""
    """How long a live worker's ``running`` call may be missing from its heartbeats before it is re-run."""
    # messages: how long a signed message stays valid (and its nonce is remembered against replays)
    stream_max_age_s: float = 3600.0
    dispatch_max_age_s: float = 86400.0
    # limits
    rate_read: str = "100/s:200"
    rate_write: str = "50/s:100"
    tenant_rate_factor: float = 4.0
    authfail_rate: str = "1/s:10"
    max_running_jobs: int = 10_000
    max_tasks_per_job: int = 100_000
    max_calls_per_replay: int = 10_000
    """New task calls one replay may schedule; a larger fan-out is built over several turns of the loop."""
    max_result_bytes: int = 1_048_576
    max_json_depth: int = 32
    max_array_length: int = 10_000
    breaker_fail_max: int = 3
    breaker_reset_s: float = 5.0
    # api: forwarded client addresses (X-Forwarded-For) are believed only from these CIDRs
    trusted_proxies: tuple[str, ...] = ()
    # api: PostgreSQL connections of one process, and how long a request waits for one (then 503)
    db_pool_size: int = 32
    db_pool_timeout_s: float = 5.0
    # api: HTTP connection limits (a request head must arrive within header_timeout_s)
    http_header_timeout_s: float = 10.0
    http_keepalive_s: float = 5.0
    http_max_concurrency: int = 4096
    http_max_header_bytes: int = 16_384
    # memory
    embedder: str = "hash"
    memory_max_batch: int = 1000
    max_memory_items: int = 1_000_000
    memory_budget: int = 640 << 20  # bytes of vector caches a replica holds (fits a 1 GB replica)
    # webhooks
    webhook_allow_private: bool = False
    webhook_secret: str = ""
    # retention: finished jobs (and their steps, events, approvals, deliveries) older than this are
    # deleted by the orchestrator, ``retention_batch`` rows per transaction; 0 keeps everything
    retention_s: float = DEFAULT_RETENTION_S
    retention_interval_s: float = 300.0
    retention_batch: int = 1000
    # observability: /metrics (and /healthz, /readyz on the orchestrator and workers) on this port; 0: none
    metrics_port: int = 9090
    log_level: str = "warning"
    log_format: str = "text"
    tracing: str = ""
    """OpenTelemetry traces: "" off, otlp, console, or file:DIR (observability/tracing.py)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if env is None else env
        d = cls()
        s = cls(
            database_url=env.get("AGENTBUS_DATABASE_URL", d.database_url),
            redis_url=env.get("AGENTBUS_REDIS_URL", d.redis_url),
            secret=env.get("AGENTBUS_SECRET", d.secret),
            app=env.get("AGENTBUS_APP", d.app),
            api_url=env.get("AGENTBUS_API_URL", d.api_url),
            api_key=env.get("AGENTBUS_API_KEY", d.api_key),
            max_body_bytes=_int(env, "AGENTBUS_MAX_BODY_BYTES", d.max_body_bytes),
            lease_ttl_s=_float(env, "AGENTBUS_LEASE_TTL", d.lease_ttl_s),
            shards=_int(env, "AGENTBUS_SHARDS", d.shards),
            reconcile_interval_s=_float(env, "AGENTBUS_RECONCILE_INTERVAL", d.reconcile_interval_s),
            reconcile_after_s=_float(env, "AGENTBUS_RECONCILE_AFTER", d.reconcile_after_s),
            timer_interval_s=_float(env, "AGENTBUS_TIMER_INTERVAL", d.timer_interval_s),
            dispatch_chunk=_int(env, "AGENTBUS_DISPATCH_CHUNK", d.dispatch_chunk),
            timeout_grace_s=_float(env, "AGENTBUS_TIMEOUT_GRACE", d.timeout_grace_s),
            heartbeat_interval_s=_float(env, "AGENTBUS_HEARTBEAT_INTERVAL", d.heartbeat_interval_s),
            worker_ttl_s=_float(env, "AGENTBUS_WORKER_TTL", d.worker_ttl_s),
            shutdown_grace_s=_float(env, "AGENTBUS_SHUTDOWN_GRACE", d.shutdown_grace_s),
            worker_concurrency=_int(env, "AGENTBUS_WORKER_CONCURRENCY", d.worker_concurrency),
            worker_max_abandoned=_int(env, "AGENTBUS_WORKER_MAX_ABANDONED", d.worker_max_abandoned),
            orphan_grace_s=_float(env, "AGENTBUS_ORPHAN_GRACE", d.orphan_grace_s),
            output_buffer=_int(env, "AGENTBUS_OUTPUT_BUFFER", d.output_buffer),
            output_ttl_s=_float(env, "AGENTBUS_OUTPUT_TTL", d.output_ttl_s),
            output_max_bytes=_int(env, "AGENTBUS_OUTPUT_MAX_BYTES", d.output_max_bytes),
            stream_max_age_s=_float(env, "AGENTBUS_STREAM_MAX_AGE", d.stream_max_age_s),
            dispatch_max_age_s=_float(env, "AGENTBUS_DISPATCH_MAX_AGE", d.dispatch_max_age_s),
            rate_read=env.get("AGENTBUS_RATE_READ", d.rate_read),
            rate_write=env.get("AGENTBUS_RATE_WRITE", d.rate_write),
            tenant_rate_factor=_float(env, "AGENTBUS_TENANT_RATE_FACTOR", d.tenant_rate_factor),
            authfail_rate=env.get("AGENTBUS_AUTHFAIL_RATE", d.authfail_rate),
            max_running_jobs=_int(env, "AGENTBUS_MAX_RUNNING_JOBS", d.max_running_jobs),
            max_tasks_per_job=_int(env, "AGENTBUS_MAX_TASKS_PER_JOB", d.max_tasks_per_job),
            max_calls_per_replay=_int(env, "AGENTBUS_MAX_CALLS_PER_REPLAY", d.max_calls_per_replay),
            max_result_bytes=_int(env, "AGENTBUS_MAX_RESULT_BYTES", d.max_result_bytes),
            max_json_depth=_int(env, "AGENTBUS_MAX_JSON_DEPTH", d.max_json_depth),
            max_array_length=_int(env, "AGENTBUS_MAX_ARRAY_LENGTH", d.max_array_length),
            breaker_fail_max=_int(env, "AGENTBUS_BREAKER_FAIL_MAX", d.breaker_fail_max),
            breaker_reset_s=_float(env, "AGENTBUS_BREAKER_RESET", d.breaker_reset_s),
            trusted_proxies=_cidrs(env, "AGENTBUS_TRUSTED_PROXIES"),
            db_pool_size=_int(env, "AGENTBUS_DB_POOL_SIZE", d.db_pool_size),
            db_pool_timeout_s=_float(env, "AGENTBUS_DB_POOL_TIMEOUT", d.db_pool_timeout_s),
            http_header_timeout_s=_float(env, "AGENTBUS_HTTP_HEADER_TIMEOUT", d.http_header_timeout_s),
            http_keepalive_s=_float(env, "AGENTBUS_HTTP_KEEPALIVE", d.http_keepalive_s),
            http_max_concurrency=_int(env, "AGENTBUS_HTTP_MAX_CONCURRENCY", d.http_max_concurrency),
            http_max_header_bytes=_int(env, "AGENTBUS_HTTP_MAX_HEADER_BYTES", d.http_max_header_bytes),
            embedder=env.get("AGENTBUS_EMBEDDER", d.embedder),
            memory_max_batch=_int(env, "AGENTBUS_MEMORY_MAX_BATCH", d.memory_max_batch),
            max_memory_items=_int(env, "AGENTBUS_MAX_MEMORY_ITEMS", d.max_memory_items),
            memory_budget=_size(env, "AGENTBUS_MEMORY_BUDGET", d.memory_budget),
            webhook_allow_private=env.get("AGENTBUS_WEBHOOK_ALLOW_PRIVATE", "").lower() in ("1", "true", "yes"),
            webhook_secret=env.get("AGENTBUS_WEBHOOK_SECRET", ""),
            retention_s=_age(env, "AGENTBUS_RETENTION", d.retention_s),
            retention_interval_s=_float(env, "AGENTBUS_RETENTION_INTERVAL", d.retention_interval_s),
            retention_batch=_int(env, "AGENTBUS_RETENTION_BATCH", d.retention_batch),
            metrics_port=_int(env, "AGENTBUS_METRICS_PORT", d.metrics_port),
            log_level=env.get("AGENTBUS_LOG_LEVEL", d.log_level).lower(),
            log_format=env.get("AGENTBUS_LOG_FORMAT", d.log_format).lower(),
            tracing=env.get("AGENTBUS_TRACING", d.tracing),
        )
        s = replace(s, **{k: v for k, v in overrides.items() if v is not None})
        if s.secret in (DEV_SECRET, "") and env.get("AGENTBUS_ENV", "dev") == "production":
            raise ConfigError("AGENTBUS_SECRET is unset or the development default: set your own in production")
        if s.max_body_bytes < 1024:
            raise ConfigError("AGENTBUS_MAX_BODY_BYTES must be at least 1024")
        if not 1 <= s.memory_max_batch <= 10_000:
            raise ConfigError("AGENTBUS_MEMORY_MAX_BATCH must be from 1 to 10000")
        if s.db_pool_size < 1 or s.db_pool_timeout_s <= 0:
            raise ConfigError("AGENTBUS_DB_POOL_SIZE must be at least 1 and AGENTBUS_DB_POOL_TIMEOUT above 0")
        if s.http_header_timeout_s <= 0 or s.http_keepalive_s <= 0 or s.http_max_concurrency < 1:
            raise ConfigError("AGENTBUS_HTTP_HEADER_TIMEOUT, _KEEPALIVE and _MAX_CONCURRENCY must be positive")
        if s.worker_concurrency < 0:
            raise ConfigError("AGENTBUS_WORKER_CONCURRENCY must be at least 1 (or 0 for the role's default)")
        if s.retention_interval_s <= 0 or not 1 <= s.retention_batch <= 100_000:
            raise ConfigError("AGENTBUS_RETENTION_INTERVAL must be above 0, AGENTBUS_RETENTION_BATCH from 1 to 100000")
        if s.dispatch_chunk < 1:
            raise ConfigError("AGENTBUS_DISPATCH_CHUNK must be at least 1")
        if s.max_calls_per_replay < 1:
            raise ConfigError("AGENTBUS_MAX_CALLS_PER_REPLAY must be at least 1")
        if s.output_buffer < 1 or s.output_ttl_s <= 0 or s.output_max_bytes < 1:
            raise ConfigError("AGENTBUS_OUTPUT_BUFFER, _TTL and _MAX_BYTES must be positive")
        if not 0 <= s.metrics_port <= 65535:
            raise ConfigError("AGENTBUS_METRICS_PORT must be a port number (0: no metrics port)")
        if s.log_level not in ("debug", "info", "warning", "error", "critical"):
            raise ConfigError(f"AGENTBUS_LOG_LEVEL must be debug, info, warning, error, critical: {s.log_level!r}")
        if s.log_format not in ("text", "json"):
            raise ConfigError(f"AGENTBUS_LOG_FORMAT must be text or json, got {s.log_format!r}")
        return s


def keyrings(settings: Settings) -> tuple[Any, Any]:
    """The keyring for control-stream messages and the one for queue dispatches (longer-lived)."""
    from agentbus.security import Keyring

    return (
        Keyring.parse(settings.secret, settings.stream_max_age_s),
        Keyring.parse(settings.secret, settings.dispatch_max_age_s),
    )


__all__ = ["DEV_SECRET", "Settings", "keyrings"]
