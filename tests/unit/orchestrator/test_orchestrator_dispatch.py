"""Dispatching: calls cut into queue messages, their steps queued first, only calls that count sent."""

from __future__ import annotations

from fakes import CPU_WORKER, Queues, Record, Workers

from agentbus.config import Settings
from agentbus.domain import App, Context, ScheduleTask, TaskState
from agentbus.domain.messages import Heartbeat
from agentbus.orchestrator.dispatch import Sender
from agentbus.orchestrator.plan import Call
from agentbus.orchestrator.router import Router
from agentbus.store import NewStep

app = App("dispatch")


@app.task
def work(ctx: Context, i: int) -> int:
    return i


@app.task(chunk=7)
def chunked(ctx: Context, i: int) -> int:
    return i


def calls(job_id: str, n: int, task: object = work) -> list[Call]:
    return [Call(job_id, 0, ScheduleTask(i, task, {"i": i}), "cpu task") for i in range(n)]  # type: ignore[arg-type]


def sender(*beats: Heartbeat, settings: Settings | None = None) -> tuple[Sender, Record, Queues]:
    record, queues = Record(), Queues()
    return Sender(record, queues, Router(Workers(*beats)), settings or Settings()), record, queues


def test_a_fan_out_is_cut_into_about_sixteen_messages_each_with_its_queued_steps() -> None:
    s, _, _ = sender()
    bundled = s.bundle({"cpu": calls("j1", 100)}, {"j1": "trace-1"})
    dispatches = bundled.by_queue["cpu"]
    assert len(dispatches) == 15 and {len(d.calls) for d in dispatches} == {7, 2}
    assert all(d.dispatch_id.startswith("d") and len(d.dispatch_id) == 33 for d in dispatches)
    steps = bundled.steps["j1"]
    assert len(steps) == 100 and {st.state for st in steps} == {TaskState.QUEUED}
    by_call = {st.id: st.dispatch_id for st in steps}
    assert all(by_call[c.task_id] == d.dispatch_id for d in dispatches for c in d.calls)
    first = dispatches[0].calls[0]
    assert (first.task_id, first.attempt, first.args, first.trace) == ("j1-0", 1, {"i": 0}, "trace-1")


def test_a_task_chunk_and_the_chunk_setting_size_the_messages() -> None:
    s, _, _ = sender(settings=Settings(dispatch_chunk=3))
    assert {len(d.calls) for d in s.bundle({"cpu": calls("j1", 100)}, {}).by_queue["cpu"]} == {3, 1}
    assert {len(d.calls) for d in s.bundle({"cpu": calls("j1", 14, chunked)}, {}).by_queue["cpu"]} == {7}


def test_calls_of_many_jobs_are_spread_over_the_queues_live_workers() -> None:
    two = [CPU_WORKER, Heartbeat("w2", queues=("cpu",))]
    s, _, _ = sender(*two)
    mixed = {"cpu": [*calls("a", 3), *calls("b", 3)]}
    dispatches = s.bundle(mixed, {}, spread=True).by_queue["cpu"]
    assert [len(d.calls) for d in dispatches] == [3, 3]


def test_only_calls_of_jobs_whose_replay_counted_are_sent() -> None:
    s, _, queues = sender()
    bundled = s.bundle({"cpu": [*calls("a", 2), *calls("b", 2)]}, {}, spread=True)
    s.send(bundled, moved={"b"})
    assert queues.calls() == ["b-0", "b-1"]


def test_recorded_steps_are_sent_again_only_if_they_move_from_the_expected_state() -> None:
    s, record, queues = sender()
    record.add([NewStep("j", i, "task", "work", TaskState.RETRYING, args={"i": i}, queue="cpu") for i in range(3)])
    record.steps["j-1"].state = TaskState.SUCCEEDED  # finished meanwhile: not sent again
    rows = [record.steps[f"j-{i}"].row() for i in range(3)]
    assert s.send_rows({("cpu", "cpu task"): rows}, [TaskState.RETRYING], new_attempt=True) == 2
    assert queues.calls("cpu") == ["j-0", "j-2"]
    assert {c.attempt for d in queues.sent["cpu"] for c in d.calls} == {2}  # a late outcome of attempt 1 is fenced out
    assert record.steps["j-0"].route_reason == "cpu task"
