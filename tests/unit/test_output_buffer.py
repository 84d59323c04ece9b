"""The rules of streamed output in one process: what an emit accepts, what a call's buffer keeps and
counts, and that an outcome waits for its call's outputs (docs/workers.md "Streamed output")."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest

from agentbus.domain import InvalidInput, PayloadTooLarge, TaskContext, Unavailable
from agentbus.domain.output import (
    Output,
    OutputBuffer,
    OutputRecord,
    OutputsDropped,
    check_output,
    record_from_json,
    record_to_json,
)
from agentbus.worker._outputs import OutputSender


def out(seq: int, task: str = "t1", attempt: int = 1, data: Any = None) -> Output:
    return Output("j1", task, "chat", attempt, seq, json.dumps(seq if data is None else data), 1.0)


@pytest.mark.parametrize(
    "data",
    [float("nan"), float("inf"), "a\x00b", {"k\x00": 1}, "\ud800", {1, 2}, object(), b"bytes"],
)
def test_an_emit_that_json_or_postgresql_cannot_hold_is_refused(data: Any) -> None:
    with pytest.raises(InvalidInput, match=r"ctx\.emit"):
        check_output(data)


def test_an_emit_over_the_size_cap_is_refused_with_its_size() -> None:
    assert check_output("x" * 8, max_bytes=10) == '"xxxxxxxx"'
    with pytest.raises(PayloadTooLarge, match="12 bytes, over the limit of 10"):
        check_output("x" * 10, max_bytes=10)


def test_a_task_context_numbers_its_emits_and_refuses_bad_data_without_sending() -> None:
    got: list[Output] = []
    ctx = TaskContext("j1", "t1", "chat", 2, emit=got.append, max_output_bytes=100)
    ctx.emit({"token": "a"})
    with pytest.raises(InvalidInput):
        ctx.emit(float("nan"))
    ctx.emit("b")
    assert [(o.task_id, o.attempt, o.seq, o.data) for o in got] == [("t1", 2, 0, {"token": "a"}), ("t1", 2, 1, "b")]


def test_a_call_that_was_cancelled_or_timed_out_sends_no_more() -> None:
    got: list[Output] = []
    ctx = TaskContext("j1", "t1", "chat", 1, emit=got.append)
    ctx.emit("before")
    ctx.cancel()  # what the worker does at the deadline or a cancel; the sync thread may go on
    ctx.emit("after")
    assert [o.data for o in got] == ["before"]


def test_an_emitted_value_changed_afterwards_is_sent_as_it_was() -> None:
    got: list[Output] = []
    ctx = TaskContext("j1", "t1", "chat", 1, emit=got.append)
    value = {"tokens": ["a"]}
    ctx.emit(value)
    value["tokens"].append("b")
    assert got[0].data == {"tokens": ["a"]}


def test_a_full_call_keeps_its_newest_outputs_and_counts_the_rest_before_them() -> None:
    buf = OutputBuffer(limit=3)
    for seq in range(10):
        buf.put(out(seq))
    buf.put(out(0, task="t2"))
    taken = buf.take()
    dropped = [r for r in taken if isinstance(r, OutputsDropped)]
    assert [(d.task_id, d.count) for d in dropped] == [("t1", 7)] and "buffer full" in dropped[0].reason
    assert [(r.task_id, r.seq) for r in taken if isinstance(r, Output)] == [("t1", 7), ("t1", 8), ("t1", 9), ("t2", 0)]
    assert taken.index(dropped[0]) == 0  # the reader hears of the gap before what follows it
    assert buf.dropped_total == 7 and buf.take() == []


def test_a_failed_send_is_counted_as_dropped_and_reported_with_the_next_batch() -> None:
    buf = OutputBuffer(limit=100)
    buf.put(out(0))
    buf.put(out(1))
    buf.lost(buf.take(), "redis unavailable")
    buf.put(out(2))
    taken = buf.take()
    assert isinstance(taken[0], OutputsDropped) and (taken[0].count, taken[0].reason) == (2, "redis unavailable")
    assert [r.seq for r in taken[1:] if isinstance(r, Output)] == [2]
    # a drop notice that could not be sent either keeps its count (counted once in the total)
    buf.lost(taken, "redis unavailable")
    again = buf.take()
    assert isinstance(again[0], OutputsDropped) and again[0].count == 3 and buf.dropped_total == 3


def test_records_survive_their_wire_form() -> None:
    for rec in (out(3, data={"token": "é"}), OutputsDropped("j1", "t1", 1, 5, "buffer full")):
        back = record_from_json("j1", record_to_json(rec))
        assert back == rec


def test_an_emit_never_waits_for_a_slow_send_and_an_outcome_waits_for_its_outputs() -> None:
    gate = threading.Event()
    sent: list[list[OutputRecord]] = []

    def slow_append(records: list[OutputRecord]) -> None:
        gate.wait(10)
        sent.append(records)

    sender = OutputSender(slow_append, limit=1000)
    sender.start()
    order: list[str] = []
    for seq in range(500):
        sender.put(out(seq))
    assert sent == []  # every emit returned while the first send is still held
    sender.then(lambda: order.append("outcome"))
    assert order == []
    gate.set()
    sender.close(10)
    assert order == ["outcome"]
    seqs = [r.seq for batch in sent for r in batch if isinstance(r, Output)]
    assert seqs == list(range(500)) and sender.dropped == 0


def test_when_redis_is_away_outputs_are_dropped_and_counted_and_outcomes_still_go() -> None:
    def down(records: list[OutputRecord]) -> None:
        raise Unavailable("redis unavailable: refused")

    sender = OutputSender(down, limit=1000)
    sender.start()
    for seq in range(5):
        sender.put(out(seq))
    done = threading.Event()
    sender.then(done.set)
    assert done.wait(10)
    sender.close(10)
    assert sender.dropped == 5
