"""Re-run and resume through the real roles: a job fails on an outside fault, a person fixes the fault
and resumes it; the call that had succeeded is not run again, the failed one is, and the job succeeds.
A re-run of the finished job is a new job that runs everything again."""

from __future__ import annotations

from pathlib import Path

from _cluster import Cluster


def test_resume_runs_only_the_failed_call_and_rerun_runs_them_all(running: Cluster, tmp_path: Path) -> None:
    count, gate = tmp_path / "tally.log", tmp_path / "gate"
    job = running.client.submit("tally_then_gated", {"count": str(count), "gate": str(gate), "x": 3})["id"]
    failed = running.wait(job, timeout=45)
    assert failed["status"] == "failed"
    assert "gate" in failed["error"]["message"]
    assert count.read_text().count("ran") == 1

    gate.touch()  # the outside fault is fixed
    resumed = running.client.resume(job)
    assert resumed.status == "running" and resumed.error is None
    done = running.wait(job, timeout=45)
    assert done["status"] == "succeeded"
    assert done["result"] == {"first": 9, "second": 10}
    assert count.read_text().count("ran") == 1  # the journal kept the first call's result
    attempts = {t.name: t.attempt for t in running.client.tasks(job).tasks}
    assert attempts == {"tally": 1, "gated": 2}

    again = running.client.rerun(job)
    assert again.rerun_of == job and again.id != job
    assert running.wait(again.id, timeout=45)["result"] == {"first": 9, "second": 10}
    assert count.read_text().count("ran") == 2  # a re-run is a new job: every call runs again


def test_resuming_a_parent_resumes_its_failed_sub_agent(running: Cluster, tmp_path: Path) -> None:
    count, gate = tmp_path / "tally.log", tmp_path / "gate"
    job = running.client.submit("oversees", {"count": str(count), "gate": str(gate)})["id"]
    assert running.wait(job, timeout=45)["status"] == "failed"
    (child,) = [j for j in running.client.iter_jobs(type="tally_then_gated") if j.parent_id == job]
    assert child.status == "failed"

    gate.touch()
    assert running.client.resume(job).status == "running"
    done = running.wait(job, timeout=45)
    assert done["status"] == "succeeded"
    assert done["result"] == {"child": {"first": 9, "second": 10}}
    assert running.client.job(child.id).status == "succeeded"  # the same child ran on, not a new one
    assert count.read_text().count("ran") == 1


def test_a_parent_whose_sub_agent_cannot_resume_stays_failed(running: Cluster) -> None:
    job = running.client.submit("oversees", {"count": "", "gate": ""})["id"]
    assert running.wait(job, timeout=45)["status"] == "failed"
    r = running.client.http.post(f"/jobs/{job}/resume")
    assert r.status_code == 409 and "no failed step" in r.json()["error"]["message"]
    assert running.client.job(job).status == "failed"  # nothing moved, the child neither
    (child,) = [j for j in running.client.iter_jobs(type="clumsy") if j.parent_id == job]
    assert child.status == "failed"
