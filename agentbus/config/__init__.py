"""Settings: read once from the environment by the entry point, then passed down.

Each setting is declared once, in a small section of ``config/sections.py``; ``Settings`` has the
fields of every section, so that a role reads ``settings.lease_ttl_s`` and a test builds
``Settings(lease_ttl_s=1)``. The reference, ``docs/configuration.md``, and ``agentbus config`` are
generated from the same declarations (``config/reference.py``).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
from typing import Any, TypeVar

from agentbus.config._fields import declared
from agentbus.config.sections import (
    DEV_SECRET,
    SECTIONS,
    Api,
    Client,
    Core,
    Limits,
    Memory,
    Observability,
    Orchestrator,
    Output,
    Retention,
    Webhooks,
    Worker,
)
from agentbus.domain.errors import ConfigError

S = TypeVar("S")


@dataclass(frozen=True)
class Settings(Core, Client, Api, Orchestrator, Worker, Output, Limits, Memory, Webhooks, Retention, Observability):
    """Every setting of every section (``config/sections.py`` declares them)."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """The settings from ``env`` (``os.environ`` by default); an unset or empty variable keeps the default.

        ``overrides`` (command-line options) win over the environment; ``None`` ones are ignored.
        Every value is checked, whatever its source: a bad one is a ``ConfigError`` naming its variable.
        """
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f, spec in declared(cls):
            raw = env.get(spec.env, "")
            if raw.strip() == "":
                continue
            try:
                values[f.name] = spec.parse(raw)
            except ValueError as exc:
                raise ConfigError(f"{spec.env} {exc}") from None
        s = replace(cls(**values), **{k: v for k, v in overrides.items() if v is not None})
        s.check()
        return s

    def check(self) -> None:
        """Raise ``ConfigError`` for the first value its setting's check refuses."""
        for f, spec in declared(type(self)):
            problem = spec.check(getattr(self, f.name)) if spec.check else None
            if problem:
                raise ConfigError(f"{spec.env} {problem}")
        if self.environment == "production" and self.secret in (DEV_SECRET, ""):
            raise ConfigError("AGENTBUS_SECRET is unset or the development default: set your own in production")

    def section(self, cls: type[S]) -> S:
        """One section's settings alone, e.g. ``settings.section(Orchestrator)`` for a role that needs no more."""
        if cls not in SECTIONS:
            raise TypeError(f"{cls.__name__} is not a settings section")
        return cls(**{f.name: getattr(self, f.name) for f in fields(cls)})  # type: ignore[arg-type]


def keyrings(settings: Settings) -> tuple[Any, Any]:
    """The keyring for control-stream messages and the one for queue dispatches (longer-lived)."""
    from agentbus.security import Keyring

    return (
        Keyring.parse(settings.secret, settings.stream_max_age_s),
        Keyring.parse(settings.secret, settings.dispatch_max_age_s),
    )


__all__ = ["DEV_SECRET", "Settings", "keyrings"]
