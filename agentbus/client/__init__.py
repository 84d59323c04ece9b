"""Python clients of the HTTP API: ``Client`` (blocking) and ``AsyncClient`` (asyncio), same methods.

Errors come back as the server raised them (``agentbus.domain.errors``: ``NotFound``,
``ValidationFailed``, ``RateLimited``, ...); see docs/client.md.
"""

from agentbus.client._async import AsyncClient
from agentbus.client._protocol import EventDecoder, Retry
from agentbus.client._sync import Client
from agentbus.client.records import (
    Approval,
    ApprovalPage,
    Event,
    Job,
    JobError,
    JobPage,
    JobResult,
    JobType,
    MemoryHit,
    MemoryItem,
    Namespace,
    Schedule,
    Signal,
    Stored,
    Task,
    TaskPage,
    Worker,
)

__all__ = [
    "Approval",
    "ApprovalPage",
    "AsyncClient",
    "Client",
    "Event",
    "EventDecoder",
    "Job",
    "JobError",
    "JobPage",
    "JobResult",
    "JobType",
    "MemoryHit",
    "MemoryItem",
    "Namespace",
    "Retry",
    "Schedule",
    "Signal",
    "Stored",
    "Task",
    "TaskPage",
    "Worker",
]
