"""``ctx.run(task, ...)`` is typed with the task's parameters and return type: checked with mypy's API.

``typecheck/typed_agents.py`` is correct code whose inferred types are asserted; each bad snippet below
must make mypy report the error a user needs to see.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

mypy_api = pytest.importorskip("mypy.api")

HERE = Path(__file__).parent
GOOD = HERE / "typecheck" / "typed_agents.py"

EXPECTED = {  # as mypy names them, less "builtins." (older versions print it)
    "R1": "int",
    "R2": "int",
    "R3": "str",  # an async task's awaited value, not a coroutine
    "R4": "list[int]",
    "R5": "agentbus.domain.context.Handle[int]",
    "R6": "list[int]",
    "R7": "int",
    "R8": "list[int]",
    "R9": "list[dict[str, Any]]",
    "R10": "int",  # the decorated task is still its function
    "R11": "list[object]",
}

BAD = """
from agentbus import AgentContext, App, TaskContext

app = App("bad")


@app.task
def score(ctx: TaskContext, text: str, weight: int = 1) -> int:
    return len(text)


@app.agent
def child(ctx: AgentContext, n: int) -> int:
    return n


@app.agent
def agent(ctx: AgentContext) -> None:
    ctx.run(score, 5)  # L1
    ctx.run(score, "x", weight="heavy")  # L2
    ctx.run(score)  # L3
    name: str = ctx.run(score, "x")  # L4
    ctx.call_agent(child, n="three")  # L5
    ctx.call_agent(score, "x")  # L6


@app.task
def misuse(ctx: TaskContext) -> None:
    ctx.run(score, "x")  # L7
"""


def check(path: Path, cache: Path) -> list[str]:
    out, err, _ = mypy_api.run(
        ["--strict", "--follow-imports=silent", "--cache-dir", str(cache), "--no-error-summary", str(path)]
    )
    assert not err, err
    return out.splitlines()


def marker_lines(text: str, marker: str) -> dict[str, int]:
    return {m: i for i, line in enumerate(text.splitlines(), 1) for m in re.findall(rf"# ({marker}\d+)$", line)}


def test_correct_agent_code_passes_and_every_call_has_the_tasks_types(tmp_path: Path) -> None:
    lines = check(GOOD, tmp_path / "cache")
    errors = [line for line in lines if ": error:" in line]
    assert errors == []
    revealed = {
        int(line.split(":")[1]): line.split('Revealed type is "')[1].rstrip('"').replace("builtins.", "")
        for line in lines
        if "Revealed" in line
    }
    at = marker_lines(GOOD.read_text(), "R")
    assert {m: revealed.get(at[m]) for m in EXPECTED} == EXPECTED


def test_bad_calls_are_type_errors_on_their_lines(tmp_path: Path) -> None:
    bad = tmp_path / "bad_agents.py"
    bad.write_text(BAD)
    errors = [line for line in check(bad, tmp_path / "cache") if ": error:" in line]
    flagged = {int(line.split(":")[1]) for line in errors}
    at = marker_lines(BAD, "L")
    assert {m: at[m] in flagged for m in at} == dict.fromkeys(at, True), "\n".join(errors)
    text = "\n".join(errors)
    assert '"TaskContext" has no attribute "run"' in text  # a task is not an agent
