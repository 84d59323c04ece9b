"""agentbus: a durable job bus for AI-agent workloads."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agentbus.domain import (
    AgentbusError,
    AgentContext,
    App,
    Context,
    Handle,
    NonDeterministicAgent,
    Schedule,
    SignalTimeout,
    TaskCancelled,
    TaskContext,
    TaskFailed,
    TaskTimeout,
)

if TYPE_CHECKING:
    from agentbus.client import Client

__version__ = "0.1.0"

__all__ = [
    "AgentContext",
    "AgentbusError",
    "App",
    "Client",
    "Context",
    "Handle",
    "NonDeterministicAgent",
    "Schedule",
    "SignalTimeout",
    "TaskCancelled",
    "TaskContext",
    "TaskFailed",
    "TaskTimeout",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The client (and httpx with it) loads on first use, so that workers and code that only
    # imports agentbus.domain do not pay for it.
    if name == "Client":
        from agentbus.client import Client

        return Client
    raise AttributeError(f"module 'agentbus' has no attribute {name!r}")
