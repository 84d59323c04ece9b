"""Settings: small frozen dataclasses read once from the environment by the entry point."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from agentbus.domain.errors import ConfigError

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


_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kb": 1000, "kib": 1 << 10, "m": 1 << 20, "mb": 1000**2, "mib": 1 << 20,
          "g": 1 << 30, "gb": 1000**3, "gib": 1 << 30}  # fmt: skip


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
    reconcile_interval_s: float = 2.0
    reconcile_after_s: float = 5.0
    timer_interval_s: float = 0.1
    dispatch_chunk: int = 256
    timeout_grace_s: float = 5.0
    # workers
    heartbeat_interval_s: float = 2.0
    worker_ttl_s: float = 10.0
    shutdown_grace_s: float = 30.0
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
    max_result_bytes: int = 1_048_576
    max_json_depth: int = 32
    max_array_length: int = 10_000
    breaker_fail_max: int = 3
    breaker_reset_s: float = 5.0
    # memory
    embedder: str = "hash"
    memory_max_batch: int = 1000
    max_memory_items: int = 1_000_000
    memory_budget: int = 640 << 20  # bytes of vector caches a replica holds (fits a 1 GB replica)
    # webhooks
    webhook_allow_private: bool = False
    webhook_secret: str = ""

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
            reconcile_interval_s=_float(env, "AGENTBUS_RECONCILE_INTERVAL", d.reconcile_interval_s),
            reconcile_after_s=_float(env, "AGENTBUS_RECONCILE_AFTER", d.reconcile_after_s),
            timer_interval_s=_float(env, "AGENTBUS_TIMER_INTERVAL", d.timer_interval_s),
            dispatch_chunk=_int(env, "AGENTBUS_DISPATCH_CHUNK", d.dispatch_chunk),
            timeout_grace_s=_float(env, "AGENTBUS_TIMEOUT_GRACE", d.timeout_grace_s),
            heartbeat_interval_s=_float(env, "AGENTBUS_HEARTBEAT_INTERVAL", d.heartbeat_interval_s),
            worker_ttl_s=_float(env, "AGENTBUS_WORKER_TTL", d.worker_ttl_s),
            shutdown_grace_s=_float(env, "AGENTBUS_SHUTDOWN_GRACE", d.shutdown_grace_s),
            stream_max_age_s=_float(env, "AGENTBUS_STREAM_MAX_AGE", d.stream_max_age_s),
            dispatch_max_age_s=_float(env, "AGENTBUS_DISPATCH_MAX_AGE", d.dispatch_max_age_s),
            rate_read=env.get("AGENTBUS_RATE_READ", d.rate_read),
            rate_write=env.get("AGENTBUS_RATE_WRITE", d.rate_write),
            tenant_rate_factor=_float(env, "AGENTBUS_TENANT_RATE_FACTOR", d.tenant_rate_factor),
            authfail_rate=env.get("AGENTBUS_AUTHFAIL_RATE", d.authfail_rate),
            max_running_jobs=_int(env, "AGENTBUS_MAX_RUNNING_JOBS", d.max_running_jobs),
            max_tasks_per_job=_int(env, "AGENTBUS_MAX_TASKS_PER_JOB", d.max_tasks_per_job),
            max_result_bytes=_int(env, "AGENTBUS_MAX_RESULT_BYTES", d.max_result_bytes),
            max_json_depth=_int(env, "AGENTBUS_MAX_JSON_DEPTH", d.max_json_depth),
            max_array_length=_int(env, "AGENTBUS_MAX_ARRAY_LENGTH", d.max_array_length),
            breaker_fail_max=_int(env, "AGENTBUS_BREAKER_FAIL_MAX", d.breaker_fail_max),
            breaker_reset_s=_float(env, "AGENTBUS_BREAKER_RESET", d.breaker_reset_s),
            embedder=env.get("AGENTBUS_EMBEDDER", d.embedder),
            memory_max_batch=_int(env, "AGENTBUS_MEMORY_MAX_BATCH", d.memory_max_batch),
            max_memory_items=_int(env, "AGENTBUS_MAX_MEMORY_ITEMS", d.max_memory_items),
            memory_budget=_size(env, "AGENTBUS_MEMORY_BUDGET", d.memory_budget),
            webhook_allow_private=env.get("AGENTBUS_WEBHOOK_ALLOW_PRIVATE", "").lower() in ("1", "true", "yes"),
            webhook_secret=env.get("AGENTBUS_WEBHOOK_SECRET", ""),
        )
        s = replace(s, **{k: v for k, v in overrides.items() if v is not None})
        if s.secret == DEV_SECRET and env.get("AGENTBUS_ENV", "dev") == "production":
            raise ConfigError("AGENTBUS_SECRET is the development default: set a secret of your own in production")
        if s.max_body_bytes < 1024:
            raise ConfigError("AGENTBUS_MAX_BODY_BYTES must be at least 1024")
        if not 1 <= s.memory_max_batch <= 10_000:
            raise ConfigError("AGENTBUS_MEMORY_MAX_BATCH must be from 1 to 10000")
        if s.dispatch_chunk < 1:
            raise ConfigError("AGENTBUS_DISPATCH_CHUNK must be at least 1")
        return s


def keyrings(settings: Settings) -> tuple[Any, Any]:
    """The keyring for control-stream messages and the one for queue dispatches (longer-lived)."""
    from agentbus.security import Keyring

    return (
        Keyring.parse(settings.secret, settings.stream_max_age_s),
        Keyring.parse(settings.secret, settings.dispatch_max_age_s),
    )


__all__ = ["DEV_SECRET", "Settings", "keyrings"]
