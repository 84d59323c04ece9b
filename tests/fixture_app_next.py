"""The tests' App in a newer build (tests/e2e/test_rolling_deploy_e2e.py): all of ``fixture_app``
plus a task that workers of the older build lack, and an agent that calls it and an old task."""

from __future__ import annotations

from typing import Any

from agentbus import AgentContext, App, TaskContext

from fixture_app import app as previous
from fixture_app import timed

app = App("tests-next")
app.include(previous)


@app.task
def shout(ctx: TaskContext, text: str) -> str:
    """The task only the new build has."""
    return text.upper()


@app.agent
def upgraded(ctx: AgentContext, n: int = 4) -> dict[str, Any]:
    new = ctx.map(shout, [{"text": f"t{i}"} for i in range(n)], unpack=True)
    old = ctx.map(timed, [{"label": "old", "i": i, "seconds": 0.0} for i in range(n)], unpack=True)
    return {"new": new, "old": len(old)}
