"""The CLI as a user runs it (``python -m agentbus ...`` in its own process) against the real roles."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from _cluster import Cluster, wait_until

AGENTBUS = [sys.executable, "-m", "agentbus"]


def agentbus(c: Cluster, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    """One CLI command in a fresh process, in an 80-column terminal."""
    return subprocess.run(
        [*AGENTBUS, *args],
        env={**c.env, "COLUMNS": "80", **env},
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
    )


def as_json(proc: subprocess.CompletedProcess[str]) -> Any:
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def pending(c: Cluster, job_id: str) -> dict[str, Any]:
    rows = wait_until(lambda: c.client.approvals(status="pending", job=job_id)["approvals"], 60, "the question")
    return dict(rows[0])


def test_readme_editorial_example_waits_tells_how_to_answer_and_prints_the_result(running: Cluster) -> None:
    waiting = subprocess.Popen(
        [*AGENTBUS, "submit", "editorial", "--input", '{"topic": "bees"}', "--wait"],
        env=running.env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    told: list[str] = []
    reader = threading.Thread(target=lambda: told.extend(iter(waiting.stderr.readline, "")))  # type: ignore[union-attr]
    reader.start()
    hint = wait_until(lambda: next((s for s in told if "agentbus approvals approve" in s), None), 60, "the hint")
    # the hint is a command that works as printed, run by someone else in another process
    command = shlex.split(hint.strip())
    assert command[:3] == ["agentbus", "approvals", "approve"] and "--input" in command
    answered = subprocess.run([*AGENTBUS, *command[1:]], env=running.env, capture_output=True, text=True, timeout=60)
    assert answered.returncode == 0, answered.stderr
    out, _ = waiting.communicate(timeout=120)
    reader.join(10)
    assert waiting.returncode == 0, "".join(told)
    result = json.loads(out)
    assert result["status"] == "succeeded"
    assert result["result"]["outcome"] == "published" and result["result"]["published"] == "..."


def test_ids_are_whole_in_80_columns_and_any_unique_prefix_names_one(running: Cluster, tmp_path: Path) -> None:
    jobs = [running.client.submit("echo", {"message": f"m{i}"})["id"] for i in range(17)]
    listed = agentbus(running, "jobs", "list", "--limit", "20")
    assert listed.returncode == 0, listed.stderr
    assert all(j in listed.stdout for j in jobs), listed.stdout  # whole, on one line
    # a unique prefix works; a shared one lists the matches; one that matches nothing is "not found"
    first = jobs[0]
    unique = next(first[:n] for n in range(4, 33) if sum(j.startswith(first[:n]) for j in jobs) == 1)
    assert as_json(agentbus(running, "jobs", "show", unique, "--output", "json"))["id"] == first
    shared = next(ch for ch, n in Counter(j[0] for j in jobs).items() if n > 1)  # 17 ids, 16 hex digits
    ambiguous = agentbus(running, "jobs", "show", shared)
    assert ambiguous.returncode == 2
    assert "ambiguous" in ambiguous.stderr and all(j in ambiguous.stderr for j in jobs if j.startswith(shared))
    assert agentbus(running, "jobs", "show", "zzzz").returncode == 3

    # approvals: the id is whole in the table, a job id prefix names its question,
    # and the question says what to fill in
    job = running.client.submit("editorial", {"topic": "ants"})["id"]
    question = pending(running, job)
    table = agentbus(running, "approvals", "list")
    assert table.returncode == 0 and question["id"] in table.stdout, table.stdout
    shown = agentbus(running, "approvals", "show", job[:8])
    assert shown.returncode == 0, shown.stderr
    assert "title (string)" in shown.stdout and "priority (integer, optional)" in shown.stdout
    assert f"agentbus approvals approve {question['id']} --input " in shown.stdout
    lacking = agentbus(running, "approvals", "approve", job[:8])
    assert lacking.returncode == 2
    assert "needs --input with title" in lacking.stderr and "agentbus approvals approve" in lacking.stderr
    assert running.client.approval(question["id"])["status"] == "pending"
    answer = tmp_path / "answer.json"
    answer.write_text('{"title": "Ants"}')
    done = as_json(agentbus(running, "approvals", "approve", job[:8], "--input", f"@{answer}"))
    assert done["status"] == "approved" and done["input"] == {"title": "Ants"}
    assert running.wait(job)["result"]["published"] == "Ants"

    job = running.client.submit("editorial", {"topic": "owls"})["id"]
    pending(running, job)
    done = as_json(agentbus(running, "approvals", "approve", job, "--input", "-", stdin='{"title": "Owls"}'))
    assert done["input"] == {"title": "Owls"}


def test_json_output_and_exit_codes(running: Cluster) -> None:
    ok = running.client.submit("echo", {"message": "hi"})["id"]
    bad = running.client.submit("always_fails", {"reason": "nope"})["id"]
    running.wait(ok)
    running.wait(bad)
    page = as_json(agentbus(running, "jobs", "list", "-o", "json"))
    assert {j["id"] for j in page["jobs"]} == {ok, bad} and page["next_cursor"] is None
    shown = as_json(agentbus(running, "jobs", "show", ok, "-o", "json"))
    assert shown["status"] == "succeeded" and shown["progress"]["done"] == 1 and shown["tasks"]
    assert {t["name"] for t in as_json(agentbus(running, "types", "-o", "json"))["job_types"]} >= {"echo", "editorial"}
    assert as_json(agentbus(running, "workers", "-o", "json"))["workers"]
    assert as_json(agentbus(running, "approvals", "list", "-o", "json")) == {"approvals": [], "next_cursor": None}

    assert as_json(agentbus(running, "jobs", "results", ok)) == {
        "id": ok,
        "status": "succeeded",
        "result": "hi",
        "error": None,
    }
    failed = agentbus(running, "jobs", "results", bad)
    assert failed.returncode == 1 and json.loads(failed.stdout)["error"]["message"] == "nope"
    assert agentbus(running, "jobs", "show", "0" * 32).returncode == 3
    assert agentbus(running, "submit", "echo", "--input", "{not json").returncode == 2
    assert agentbus(running, "submit", "echo", "--input", '{"nope": 1}').returncode == 2
    assert agentbus(running, "jobs", "list", AGENTBUS_API_KEY="ab_wrong").returncode == 5
    gone = agentbus(running, "jobs", "list", AGENTBUS_API_URL="http://127.0.0.1:9")
    assert gone.returncode == 6 and "cannot reach" in gone.stderr
    slow = running.client.submit("nap", {"seconds": 30})["id"]
    assert agentbus(running, "jobs", "results", slow, "--wait", "0.5").returncode == 4
    gave_up = agentbus(running, "submit", "nap", "--input", '{"seconds": 30}', "--wait", "--timeout", "2")
    assert gave_up.returncode == 4 and "did not finish within 2s" in gave_up.stderr
    running.new_key("other")
    (other,) = [k for k in as_json(agentbus(running, "keys", "list", "-o", "json"))["keys"] if k["tenant"] == "other"]
    assert other["revoked_at"] is None and "secret_hash" not in other
    assert agentbus(running, "keys", "revoke", other["id"][:12]).returncode == 0
    assert as_json(agentbus(running, "keys", "list", "--tenant", "other", "-o", "json"))["keys"][0]["revoked_at"]
    version = agentbus(running, "--version")
    assert version.returncode == 0 and re.fullmatch(r"agentbus \d+\.\d+\.\d+\S*\n", version.stdout)
