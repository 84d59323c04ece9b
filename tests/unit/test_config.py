"""Settings.from_env: explicit casts, read once by the entry point."""

from __future__ import annotations

import dataclasses

import pytest

from agentbus.config import DEV_SECRET, Settings
from agentbus.domain import ConfigError


def test_defaults_without_environment() -> None:
    s = Settings.from_env({})
    assert s == Settings()
    assert s.secret == DEV_SECRET
    assert s.max_body_bytes == 1_048_576


def test_environment_is_parsed() -> None:
    s = Settings.from_env(
        {
            "AGENTBUS_DATABASE_URL": "postgresql://u@db:5432/ab",
            "AGENTBUS_REDIS_URL": "redis://cache:6379/2",
            "AGENTBUS_SECRET": "s" * 32,
            "AGENTBUS_APP": "mine.agents:app",
            "AGENTBUS_API_URL": "http://api:8000",
            "AGENTBUS_MAX_BODY_BYTES": "2048",
            "AGENTBUS_LEASE_TTL": "3.5",
            "AGENTBUS_RECONCILE_INTERVAL": "1",
            "AGENTBUS_RECONCILE_AFTER": "7",
            "AGENTBUS_TIMER_INTERVAL": "0.25",
            "AGENTBUS_DISPATCH_CHUNK": "64",
            "AGENTBUS_TIMEOUT_GRACE": "2",
            "AGENTBUS_HEARTBEAT_INTERVAL": "0.5",
            "AGENTBUS_WORKER_TTL": "4",
        }
    )
    assert s.database_url == "postgresql://u@db:5432/ab"
    assert s.redis_url == "redis://cache:6379/2"
    assert s.secret == "s" * 32
    assert s.app == "mine.agents:app"
    assert s.api_url == "http://api:8000"
    assert s.max_body_bytes == 2048 and isinstance(s.max_body_bytes, int)
    assert s.lease_ttl_s == 3.5
    assert s.reconcile_interval_s == 1.0
    assert s.reconcile_after_s == 7.0
    assert s.timer_interval_s == 0.25
    assert s.dispatch_chunk == 64 and isinstance(s.dispatch_chunk, int)
    assert s.timeout_grace_s == 2.0
    assert s.heartbeat_interval_s == 0.5
    assert s.worker_ttl_s == 4.0


def test_empty_values_fall_back_to_defaults() -> None:
    s = Settings.from_env({"AGENTBUS_LEASE_TTL": "", "AGENTBUS_DISPATCH_CHUNK": ""})
    assert s.lease_ttl_s == Settings().lease_ttl_s
    assert s.dispatch_chunk == Settings().dispatch_chunk


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("AGENTBUS_MAX_BODY_BYTES", "lots"),
        ("AGENTBUS_LEASE_TTL", "ten"),
        ("AGENTBUS_DISPATCH_CHUNK", "1e"),
        ("AGENTBUS_WORKER_TTL", "5s"),
        ("AGENTBUS_MAX_BODY_BYTES", "inf"),
        ("AGENTBUS_DISPATCH_CHUNK", "nan"),
        ("AGENTBUS_LEASE_TTL", "nan"),
    ],
)
def test_bad_numbers_are_a_config_error_naming_the_variable(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        Settings.from_env({key: value})


@pytest.mark.parametrize(("key", "value"), [("AGENTBUS_MAX_BODY_BYTES", "100"), ("AGENTBUS_DISPATCH_CHUNK", "0")])
def test_out_of_range_values_are_a_config_error(key: str, value: str) -> None:
    with pytest.raises(ConfigError):
        Settings.from_env({key: value})


def test_overrides_win_over_the_environment_and_none_is_ignored() -> None:
    env = {"AGENTBUS_REDIS_URL": "redis://env:6379/0", "AGENTBUS_DATABASE_URL": "sqlite:///env.db"}
    s = Settings.from_env(env, redis_url="redis://flag:6379/1", database_url=None)
    assert s.redis_url == "redis://flag:6379/1"
    assert s.database_url == "sqlite:///env.db"


def test_overrides_are_checked_too() -> None:
    with pytest.raises(ConfigError):
        Settings.from_env({}, max_body_bytes=10)


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        Settings().redis_url = "x"  # type: ignore[misc]


def test_from_env_reads_os_environ_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AGENTBUS_REDIS_URL", "redis://from-os:6379/3")
    assert Settings.from_env().redis_url == "redis://from-os:6379/3"


@pytest.mark.parametrize("secret", [None, "", DEV_SECRET])
def test_production_refuses_an_unset_empty_or_development_secret(secret: str | None) -> None:
    env = {"AGENTBUS_ENV": "production"} | ({} if secret is None else {"AGENTBUS_SECRET": secret})
    with pytest.raises(ConfigError, match="AGENTBUS_SECRET"):
        Settings.from_env(env)


def test_production_runs_with_its_own_secret_and_dev_with_the_default() -> None:
    assert Settings.from_env({"AGENTBUS_ENV": "production", "AGENTBUS_SECRET": "s" * 32}).secret == "s" * 32
    assert Settings.from_env({}).secret == DEV_SECRET


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("AGENTBUS_DATABASE_URL", "mysql://db/x"),
        ("AGENTBUS_REDIS_URL", "cache:6379"),
        ("AGENTBUS_API_URL", "ftp://api"),
        ("AGENTBUS_RATE_READ", "fast"),
        ("AGENTBUS_WEBHOOK_ALLOW_PRIVATE", "maybe"),
        ("AGENTBUS_TRUSTED_PROXIES", "example.com"),
    ],
)
def test_urls_rates_flags_and_networks_are_checked_at_start(key: str, value: str) -> None:
    with pytest.raises(ConfigError, match=key):
        Settings.from_env({key: value})
