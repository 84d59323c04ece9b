"""Approval deadlines: escalate to the next group or expire with the ``on_timeout`` policy.

A pure rule: these tests need neither PostgreSQL nor Redis (the store only selects the
approvals past their deadline and writes what ``on_deadline`` decides)."""

from __future__ import annotations

import subprocess
import sys

from agentbus.domain import TaskState
from agentbus.domain.deadlines import Escalate, Expire, deadline, iso, on_deadline


def test_a_question_without_a_timeout_waits_for_ever() -> None:
    assert deadline(100.0, None) is None
    assert deadline(100.0, 30.0) == 130.0


def test_escalation_moves_to_the_next_group_with_a_fresh_deadline() -> None:
    assert on_deadline("escalate", 0, 3, 60.0, now=1000.0) == Escalate(1, 1060.0)
    assert on_deadline("escalate", 1, 3, 60.0, now=2000.0) == Escalate(2, 2060.0)


def test_escalation_past_the_last_group_expires_as_a_rejection() -> None:
    then = on_deadline("escalate", 2, 3, 60.0, now=1000.0)
    assert isinstance(then, Expire) and then.step_state is TaskState.SUCCEEDED
    assert then.result["approved"] is False and then.result["timed_out"] is True
    assert then.result["by"] == "timeout" and then.result["comment"] == "no answer within 60s"


def test_approve_and_reject_answer_in_the_persons_place() -> None:
    approve = on_deadline("approve", 0, 1, 5.0, now=0.0)
    reject = on_deadline("reject", 0, 1, 5.0, now=0.0)
    assert isinstance(approve, Expire) and approve.result["approved"] is True and approve.error is None
    assert isinstance(reject, Expire) and reject.result["approved"] is False
    assert approve.result["at"] == iso(0.0) == "1970-01-01T00:00:00Z"


def test_fail_fails_the_agents_call_with_approval_expired() -> None:
    then = on_deadline("fail", 0, 1, 5.0, now=0.0)
    assert isinstance(then, Expire) and then.step_state is TaskState.FAILED and then.result is None
    assert then.error is not None and then.error.type == "ApprovalExpired"
    assert then.error.message == "no answer within 5s"


def test_the_rules_run_without_the_store_or_a_database_driver() -> None:
    # what the pure functions are for: in a fresh interpreter, the rules load and decide with no
    # store, no peewee and no PostgreSQL driver imported
    code = (
        "import sys\n"
        "from agentbus.domain.deadlines import on_deadline\n"
        "from agentbus.domain.retry import after_failure\n"
        "from agentbus.domain.states import resumes, JobState\n"
        "assert on_deadline('escalate', 0, 2, 1.0, 0.0).level == 1\n"
        "assert after_failure(1, 1, 1.0, 0.0).not_before == 1.0\n"
        "assert resumes(JobState.WAITING_HUMAN, 0)\n"
        "loaded = [m for m in ('peewee', 'psycopg2', 'agentbus.store') if m in sys.modules]\n"
        "assert not loaded, loaded\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
