"""The job-end notice (``domain.messages.JobEnd``): what a long-poll may answer from."""

from __future__ import annotations

from typing import Any

import pytest

from agentbus.bus.notify import MAX_END_BYTES, MAX_MESSAGE_BYTES, end_notice, messages
from agentbus.domain import ErrorInfo, JobState, MessageRejected
from agentbus.domain.messages import JobEnd, JobNotices
from agentbus.store.records import dumps, loads


def test_an_end_comes_back_from_json_as_it_was_sent() -> None:
    failed = JobEnd("j1", "acme", JobState.FAILED, None, ErrorInfo("TaskFailed", "boom", "Traceback ...\n"))
    done = JobEnd("j2", "acme", JobState.SUCCEEDED, {"answer": [1, 2.5, "x", None, True]})
    untraced = JobEnd("j3", "default", JobState.CANCELLED, None, ErrorInfo("Cancelled", "cancelled"))
    for end in (failed, done, untraced):
        back = JobEnd.from_json(end.to_json().encode())
        assert back == end and back.error == end.error
        assert back.error is None or back.error.traceback == end.error.traceback  # (not compared by ==)


@pytest.mark.parametrize(
    "result",
    [float("nan"), [float("inf"), 1], {"text": "lone \ud800 surrogate"}, ("a", "tuple"), {"1": {"deep": [{}]}}],
)
def test_the_result_an_end_carries_is_the_one_a_read_of_the_record_gives(result: Any) -> None:
    """NaN, infinities and lone surrogates are stored as ``holdable`` makes them: so is the notice."""
    end = JobEnd.from_json(JobEnd("j", "t", JobState.SUCCEEDED, result).to_json())
    assert end.result == loads(dumps(result))


@pytest.mark.parametrize(
    "raw",
    [
        b"1",
        b"",
        b"\xff\xfe",
        b"[]",
        b'{"job_id": "j"}',
        b'{"job_id": 1, "tenant": "t", "state": "succeeded", "result": 1, "error": null}',
        b'{"job_id": "j", "tenant": "t", "state": "finished", "result": 1, "error": null}',
        b'{"job_id": "j", "tenant": "t", "state": "failed", "result": null, "error": "boom"}',
        b'{"job_id": "j", "tenant": "t", "state": "failed", "result": null, "error": {"type": "X"}}',
    ],
)
def test_a_malformed_end_is_rejected(raw: bytes) -> None:
    with pytest.raises(MessageRejected):
        JobEnd.from_json(raw)


def test_only_an_end_no_later_change_can_undo_answers_for_the_record() -> None:
    """A failed job may be resumed: its end may be outdated by the time its notice is heard."""
    assert JobEnd("j", "t", JobState.SUCCEEDED).for_good
    assert JobEnd("j", "t", JobState.CANCELLED).for_good
    assert not JobEnd("j", "t", JobState.FAILED).for_good
    assert not JobEnd("j", "t", JobState.RUNNING).for_good


def test_a_notice_carries_the_end_unless_it_is_too_big_or_not_json() -> None:
    small = JobEnd("j", "t", JobState.SUCCEEDED, "x" * 100)
    big = JobEnd("k", "t", JobState.SUCCEEDED, "x" * MAX_END_BYTES)
    odd = JobEnd("m", "t", JobState.SUCCEEDED, {1, 2})
    [message] = messages([small, big, odd, "n"], ["c1", "c2"])
    # the big one and the one JSON cannot hold go bare, as does an id alone: their waiters read the record
    assert JobNotices.from_json(message) == JobNotices((small, "k", "m", "n"), ("c1", "c2"))
    assert JobEnd.from_json(end_notice(small)) == small


def test_a_batch_of_notices_too_big_for_one_message_goes_in_several() -> None:
    ends = [JobEnd(f"j{i}", "t", JobState.SUCCEEDED, "x" * (MAX_END_BYTES - 200)) for i in range(40)]
    sent = messages(ends, [f"c{i}" for i in range(1000)])
    assert len(sent) > 1 and all(len(m) <= MAX_MESSAGE_BYTES for m in sent)
    heard = [JobNotices.from_json(m) for m in sent]
    assert [e for n in heard for e in n.finished] == ends
    assert [c for n in heard for c in n.changed] == [f"c{i}" for i in range(1000)]
    assert messages([], []) == []


@pytest.mark.parametrize("raw", [b"{", b"[]", b'{"finished": []}', b'{"finished": {}, "changed": []}'])
def test_malformed_notices_are_rejected(raw: bytes) -> None:
    with pytest.raises(MessageRejected):
        JobNotices.from_json(raw)


def test_a_malformed_end_among_notices_is_heard_as_a_bare_notice_of_its_job() -> None:
    """Its waiters still wake and read the record; an end that names no job is dropped."""
    good = JobEnd("j", "t", JobState.SUCCEEDED, 1)
    raw = JobNotices.join([good.to_json(), '{"job_id": "k", "state": "finished"}', '{"state": 1}', "3"], ['"c"'])
    assert JobNotices.from_json(raw) == JobNotices((good, "k"), ("c",))
