"""A user's own App, loaded by every role with --app / AGENTBUS_APP."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from _cluster import Cluster

pytestmark = pytest.mark.e2e

USER_APP = """
from agentbus import App, Context

app = App("mine")

@app.task
def shout(ctx: Context, word: str) -> str:
    return word.upper() + "!"

@app.agent
def chorus(ctx: Context, words: list[str]) -> str:
    return " ".join(ctx.map(shout, words))
"""


def test_every_role_runs_the_users_app(cluster: Cluster, tmp_path: Path) -> None:
    (tmp_path / "myagents.py").write_text(textwrap.dedent(USER_APP))
    cluster.env["PYTHONPATH"] = str(tmp_path)
    cluster.env["AGENTBUS_APP"] = "myagents:app"
    cluster.orchestrator()
    cluster.worker("w1")
    cluster.api()
    types = {t["name"] for t in cluster.client.job_types()}
    assert types == {"shout", "chorus", "memory.store", "memory.search", "memory.knn_batch"}  # + the built-ins
    job = cluster.client.submit("chorus", {"words": ["we", "are", "here"]})
    assert cluster.wait(job["id"])["result"] == "WE! ARE! HERE!"
