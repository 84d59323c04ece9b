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


@dataclass(frozen=True)
class Settings:
    database_url: str = "sqlite:///.agentbus/agentbus.db"
    redis_url: str = "redis://127.0.0.1:6379/0"
    secret: str = DEV_SECRET
    app: str = "agentbus.examples:app"
    api_url: str = "http://127.0.0.1:8000"
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
            webhook_allow_private=env.get("AGENTBUS_WEBHOOK_ALLOW_PRIVATE", "").lower() in ("1", "true", "yes"),
            webhook_secret=env.get("AGENTBUS_WEBHOOK_SECRET", ""),
        )
        s = replace(s, **{k: v for k, v in overrides.items() if v is not None})
        if s.max_body_bytes < 1024:
            raise ConfigError("AGENTBUS_MAX_BODY_BYTES must be at least 1024")
        if s.dispatch_chunk < 1:
            raise ConfigError("AGENTBUS_DISPATCH_CHUNK must be at least 1")
        return s


__all__ = ["DEV_SECRET", "Settings"]
