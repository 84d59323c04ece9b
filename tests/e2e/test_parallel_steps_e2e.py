"""Parallel steps through the real roles: ``ctx.start`` a task and a sub-agent at once, ``ctx.wait_any``
moves on with the first call to finish, and the job's end cancels the call it never waited for."""

from __future__ import annotations

from _cluster import Cluster, wait_until


def test_start_gather_and_wait_any_run_through_the_cluster(running: Cluster) -> None:
    job = running.client.submit("side_by_side", {"n": 4})["id"]
    done = running.wait(job, timeout=45)  # well before the 60 s call it started and left
    assert done["status"] == "succeeded"
    assert done["result"] == {"square": 16, "sum": sum(i * i for i in range(4)), "first": 25}

    def slow_call_state() -> str | None:
        rows = [t for t in running.client.tasks(job).tasks if t.name == "slow"]
        return rows[0].state if rows and rows[0].state in ("cancelled", "failed") else None

    assert wait_until(slow_call_state, 20, "the call left running to be cancelled") == "cancelled"
