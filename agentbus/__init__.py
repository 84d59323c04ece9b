"""agentbus: a durable job bus for AI-agent workloads."""

from agentbus.client import Client
from agentbus.domain import (
    AgentbusError,
    App,
    Context,
    NonDeterministicAgent,
    TaskCancelled,
    TaskFailed,
    TaskTimeout,
)

__version__ = "0.1.0"

__all__ = [
    "AgentbusError",
    "App",
    "Client",
    "Context",
    "NonDeterministicAgent",
    "TaskCancelled",
    "TaskFailed",
    "TaskTimeout",
    "__version__",
]
