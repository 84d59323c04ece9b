"""Which queue a task goes to, and why — from its options and the live fleet."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from agentbus.bus.queues import queue_name
from agentbus.bus.routing import GIB, gpu_target, with_level
from agentbus.domain.app import TaskOptions
from agentbus.domain.messages import Heartbeat
from agentbus.orchestrator.ports import Workers


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


class Router:
    """``route`` over the live fleet, whose heartbeats are read at most every ``max_age_s``:
    they change slowly, and routing a fan-out must not read them once per call."""

    def __init__(self, workers: Workers, clock: Callable[[], float] = time.monotonic, max_age_s: float = 1.0) -> None:
        self.fleet = workers
        self.clock = clock
        self.max_age_s = max_age_s
        self._read_at = float("-inf")
        self._seen: list[Heartbeat] = []

    def workers(self, fresh: bool = False) -> list[Heartbeat]:
        now = self.clock()
        if fresh or now - self._read_at > self.max_age_s:
            self._read_at, self._seen = now, self.fleet.heartbeats()
        return self._seen

    def listening(self, queue: str) -> int:
        """How many live workers take calls from ``queue``."""
        return sum(1 for hb in self.workers() if queue in hb.queues or queue_name(queue) in hb.queues)

    def route(self, options: TaskOptions, priority: int) -> Route:
        decided = route(options, self.workers(), priority)
        falling_back = options.device != "cpu" and not (decided.queue or "").startswith("gpu")
        if falling_back and self.clock() - self._read_at > 0.1:
            # make sure a GPU worker did not just appear (the heartbeats read may be up to max_age_s old)
            decided = route(options, self.workers(fresh=True), priority)
        return decided
