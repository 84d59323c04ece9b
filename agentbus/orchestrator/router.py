"""Which queue a task goes to, and why — from its options and the live fleet."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from agentbus.bus.routing import GIB, gpu_target, with_level
from agentbus.domain.app import TaskOptions
from agentbus.domain.messages import Heartbeat


@dataclass(frozen=True)
class Route:
    queue: str | None
    """The RQ queue (with its priority level), or None: wait as pending."""
    reason: str


def route(options: TaskOptions, workers: Sequence[Heartbeat], priority: int = 0) -> Route:
    """The routing policy (docs/workers.md):

    * ``device="cpu"``: the CPU queue;
    * ``device="gpu"``: the GPU queue (of the task's memory tier) when a live GPU worker with
      enough memory exists; else the CPU queue if ``fallback="cpu"``; else wait;
    * ``device="any"``: an idle GPU worker's queue if there is one, else the CPU queue.
    """
    if options.queue:
        return Route(with_level(options.queue, priority), f"queue {options.queue!r} named by the task")
    if options.device == "cpu":
        return Route(with_level("cpu", priority), "cpu task")
    need = options.gpu_memory
    fit = [w for w in workers if w.gpu and int(w.device.get("memory_total", 0)) >= need]
    want = f"a GPU worker with {need / GIB:g} GB" if need else "a GPU worker"
    target = with_level(gpu_target(need), priority)
    cpu = with_level("cpu", priority)
    if options.device == "any":
        idle = [w for w in fit if w.free > 0]
        if idle:
            return Route(target, f"device any: {len(idle)} idle GPU worker(s) live")
        return Route(cpu, f"device any: no idle {want}, CPU")
    if fit:
        return Route(target, f"{len(fit)} live GPU worker(s) can take it")
    if options.fallback == "cpu":
        return Route(cpu, f"no live {want}: fallback to CPU")
    return Route(None, f"waiting for {want}")
