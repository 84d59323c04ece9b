"""Admission: calls that wait go when they can; calls sent again are routed afresh."""

from __future__ import annotations

from fakes import CPU_WORKER, Queues, Record, Workers

from agentbus.bus.routing import GIB
from agentbus.config import Settings
from agentbus.domain import App, Context, TaskState
from agentbus.domain.messages import Heartbeat
from agentbus.orchestrator.admission import Admission
from agentbus.orchestrator.dispatch import Sender
from agentbus.orchestrator.router import Router
from agentbus.store import NewStep

app = App("admission")


@app.task(concurrency_key="user-{user}", max_concurrency=2)
def per_user(ctx: Context, user: str, i: int) -> None:
    return None


@app.task(device="gpu")
def on_gpu(ctx: Context) -> None:
    return None


@app.task
def work(ctx: Context) -> None:
    return None


GPU = Heartbeat("g1", queues=("gpu",), device={"kind": "gpu", "memory_total": 16 * GIB})


def admission(workers: Workers, now: list[float] | None = None) -> tuple[Admission, Record, Queues]:
    record, queues, clock = Record(), Queues(), now or [0.0]
    router = Router(workers, clock=lambda: clock[0])
    return Admission(app, record, router, Sender(record, queues, router, Settings())), record, queues


def pending(record: Record, job_id: str, name: str, n: int, key: str | None = None) -> None:
    steps = [
        NewStep(job_id, i, "task", name, TaskState.PENDING, args={"user": "ann", "i": i}, concurrency_key=key)
        for i in range(n)
    ]
    record.add(steps)


def test_no_more_calls_of_a_key_go_than_its_max_concurrency_and_the_rest_say_why() -> None:
    a, record, queues = admission(Workers(CPU_WORKER))
    pending(record, "j", "per_user", 5, key="user-ann")
    assert a.dispatch_pending() == 2
    assert queues.calls("cpu") == ["j-0", "j-1"]
    waiting = [record.steps[f"j-{i}"] for i in range(2, 5)]
    assert {s.state for s in waiting} == {TaskState.PENDING}
    assert {s.route_reason for s in waiting} == {"waiting for a concurrency slot ('user-ann': 2 of 2 in use)"}

    record.run("j-0")
    record.succeed("j-0", None)  # a slot frees
    assert a.dispatch_pending() == 1 and queues.calls("cpu")[-1] == "j-2"


def test_a_gpu_call_waits_until_a_gpu_worker_appears() -> None:
    workers, now = Workers(CPU_WORKER), [0.0]
    a, record, queues = admission(workers, now)
    pending(record, "j", "on_gpu", 1)
    assert a.dispatch_pending() == 0 and record.steps["j-0"].route_reason == "waiting for a GPU worker"
    workers.beats.append(GPU)
    now[0] += 0.5
    assert a.dispatch_pending() == 1 and queues.calls("gpu") == ["j-0"]


def test_calls_sent_again_are_routed_afresh_and_wait_if_they_cannot_go() -> None:
    a, record, queues = admission(Workers(CPU_WORKER))
    steps = [
        NewStep("j", 0, "task", "work", TaskState.RUNNING, queue="cpu"),
        NewStep("j", 1, "task", "on_gpu", TaskState.RUNNING, queue="gpu"),
    ]
    record.add(steps)
    rows = [record.steps[s.id].row() for s in steps]
    assert a.redispatch(rows, [TaskState.RUNNING], new_attempt=True) == 1
    assert queues.calls() == ["j-0"] and record.steps["j-0"].attempt == 2
    gpu = record.steps["j-1"]
    assert (gpu.state, gpu.attempt, gpu.route_reason) == (TaskState.PENDING, 2, "waiting for a GPU worker")
