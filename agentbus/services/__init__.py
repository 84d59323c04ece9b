"""Services that combine the store with a compute package, shared by several roles."""

from agentbus.services.memory import JobMemory, MemoryService

__all__ = ["JobMemory", "MemoryService"]
