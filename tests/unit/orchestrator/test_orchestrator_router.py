"""Routing: which queue a call goes to, from its options and the live fleet (docs/workers.md)."""

from __future__ import annotations

from fakes import Workers

from agentbus.bus.routing import GIB
from agentbus.domain import TaskOptions
from agentbus.domain.messages import CallInfo, Heartbeat
from agentbus.orchestrator.router import Route, Router, route

CPU = Heartbeat("c1", queues=("cpu",), concurrency=4)
GPU_16 = Heartbeat("g1", queues=("gpu.16gb", "gpu"), device={"kind": "gpu", "memory_total": 16 * GIB}, concurrency=1)
GPU_BUSY = Heartbeat(
    "g2", device={"kind": "gpu", "memory_total": 16 * GIB}, concurrency=1, calls=(CallInfo("j-0", "t", 1, 0, 30.0),)
)


def test_a_cpu_task_goes_to_the_cpu_queue_at_its_priority_level() -> None:
    assert route(TaskOptions(), [], 0).queue == "cpu"
    assert route(TaskOptions(), [], 5).queue == "cpu.high"
    assert route(TaskOptions(), [], -1).queue == "cpu.low"


def test_a_queue_named_by_the_task_wins_over_its_device() -> None:
    assert route(TaskOptions(device="gpu", queue="special"), [], 0) == Route(
        "special", "queue 'special' named by the task"
    )


def test_a_gpu_task_goes_to_its_memory_tier_when_a_worker_fits_and_waits_otherwise() -> None:
    need_8 = TaskOptions(device="gpu", gpu_memory=8 * GIB)
    assert route(need_8, [GPU_16]).queue == "gpu.8gb"
    waits = route(TaskOptions(device="gpu", gpu_memory=40 * GIB), [GPU_16, CPU])
    assert waits.queue is None and waits.reason == "waiting for a GPU worker with 40 GB"


def test_a_gpu_task_with_a_cpu_fallback_runs_on_cpu_when_no_gpu_worker_fits() -> None:
    r = route(TaskOptions(device="gpu", fallback="cpu"), [CPU])
    assert r.queue == "cpu" and "fallback to CPU" in r.reason


def test_device_any_takes_an_idle_gpu_worker_else_the_cpu() -> None:
    assert route(TaskOptions(device="any"), [GPU_16]).queue == "gpu"
    assert route(TaskOptions(device="any"), [GPU_BUSY]).queue == "cpu"


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_the_router_reads_the_fleet_at_most_once_a_second_for_calls_that_find_a_queue() -> None:
    fleet, clock = Workers(CPU), Clock()
    router = Router(fleet, clock)
    for _ in range(100):
        router.route(TaskOptions(device="any"), 0)
    assert fleet.reads == 1
    clock.now += 1.5
    router.route(TaskOptions(), 0)
    assert fleet.reads == 2


def test_a_gpu_call_about_to_wait_looks_again_for_a_gpu_worker_that_just_appeared() -> None:
    fleet, clock = Workers(CPU), Clock()
    router = Router(fleet, clock)
    assert router.route(TaskOptions(device="gpu"), 0).queue is None
    fleet.beats.append(GPU_16)
    clock.now += 0.5  # within the second the fleet is kept, but the call would wait: read again
    assert router.route(TaskOptions(device="gpu"), 0).queue == "gpu"


def test_listening_counts_the_workers_of_a_queue() -> None:
    router = Router(Workers(CPU, GPU_16, Heartbeat("c2", queues=("cpu",))), Clock())
    assert router.listening("cpu") == 2 and router.listening("gpu") == 1 and router.listening("other") == 0
