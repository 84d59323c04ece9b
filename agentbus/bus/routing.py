"""Queue names: a routing target plus a priority level, and what each worker listens to.

A task goes to ``<target>[.high|.low]``: target ``cpu``, ``gpu``, ``gpu.<N>gb`` (a GPU with
at least N GiB) or a queue the task names. A worker lists its queues high first, so RQ's
in-order dequeue takes higher-priority work first; a GPU worker serves every memory tier
its device satisfies, largest first (work only it can do before work anyone can).

Each worker also listens on ``<target>@<build>`` for each of its targets, ``build`` naming the
set of task names its App has: while workers of several builds share a target (a rolling
deploy), a call for a task that only some builds have goes to such a queue (docs/workers.md).
"""

from __future__ import annotations

GIB = 2**30
GPU_TIERS_GB = (2, 4, 8, 12, 16, 24, 32, 40, 48, 80, 96, 128, 192)
LEVELS = ("high", "", "low")


def level(priority: int) -> str:
    return "high" if priority > 0 else "low" if priority < 0 else ""


def with_level(target: str, priority: int) -> str:
    lv = level(priority)
    return f"{target}.{lv}" if lv else target


def gpu_target(memory_needed: int) -> str:
    """``gpu`` for no requirement, else the smallest tier that covers it."""
    if memory_needed <= 0:
        return "gpu"
    for gb in GPU_TIERS_GB:
        if gb * GIB >= memory_needed:
            return f"gpu.{gb}gb"
    return f"gpu.{-(-memory_needed // GIB)}gb"


def gpu_targets(memory_total: int) -> list[str]:
    """The GPU targets a device with ``memory_total`` bytes can serve, most demanding first."""
    tiers = [f"gpu.{gb}gb" for gb in reversed(GPU_TIERS_GB) if gb * GIB <= memory_total]
    return [*tiers, "gpu"]


BUILD_SEP = "@"


def build_target(target: str, build: str) -> str:
    """The target served only by workers of ``build`` (those with the same task names)."""
    return f"{target}{BUILD_SEP}{build}"


def listen_order(targets: list[str]) -> list[str]:
    """Every level of every target, high-priority queues first."""
    return [f"{t}.{lv}" if lv else t for lv in LEVELS for t in targets]


def strip_level(name: str) -> str:
    for lv in ("high", "low"):
        if name.endswith("." + lv):
            return name[: -len(lv) - 1]
    return name
