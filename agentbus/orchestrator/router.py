"""Which queue a task goes to, and why."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agentbus.domain.app import TaskOptions


@dataclass(frozen=True)
class Route:
    queue: str
    reason: str


def route(options: TaskOptions, workers: list[dict[str, Any]]) -> Route:
    """Pick the queue for a task from its options and the live fleet."""
    if options.queue:
        return Route(options.queue, f"queue {options.queue!r} named by the task")
    gpu_live = any("gpu" in w.get("queues", []) for w in workers)
    if options.device == "cpu":
        return Route("cpu", "cpu task")
    if options.device == "any":
        return Route("gpu", "gpu worker live") if gpu_live else Route("cpu", "no gpu worker live")
    if gpu_live:
        return Route("gpu", "gpu worker live")
    if options.fallback == "cpu":
        return Route("cpu", "no gpu worker live: fallback to cpu")
    return Route("gpu", "waiting for a GPU worker")
