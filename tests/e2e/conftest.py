"""End-to-end fixtures: the real roles as subprocesses on real PostgreSQL and Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from _cluster import Cluster


@pytest.fixture
def cluster(pg_url: str, redis_url: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Cluster]:
    c = Cluster(pg_url, redis_url, tmp_path)
    try:
        yield c
    finally:
        c.stop()
        rep = getattr(request.node, "rep_call", None)
        if rep is not None and rep.failed:
            print(c.log_tails())


@pytest.fixture
def running(cluster: Cluster) -> Cluster:
    """API, one orchestrator and two CPU workers."""
    cluster.orchestrator()
    cluster.worker("w1")
    cluster.worker("w2")
    cluster.api()
    return cluster


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    outcome = yield
    rep = outcome.get_result()  # type: ignore[attr-defined]
    setattr(item, f"rep_{rep.when}", rep)
