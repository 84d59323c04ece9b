"""The app serves exactly the route table, and lets each request in as its row says (in-process)."""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from agentbus.api import create_app
from agentbus.api.operation import ANY_KEY, PUBLIC, Operation
from agentbus.api.table import OPERATIONS
from agentbus.config import Settings
from agentbus.examples import app as examples
from agentbus.security import keys
from agentbus.store import Repositories


@pytest.fixture
def web(sqlite_url: str, redis_url: str) -> Iterator[TestClient]:
    app = create_app(Settings(database_url=sqlite_url, redis_url=redis_url, authfail_rate="100/s:100"), examples)
    # no lifespan: what these tests send never waits on a job notice
    yield TestClient(app)
    app.state.repos.close()


def key(database_url: str, scopes: tuple[str, ...]) -> dict[str, str]:
    store = Repositories.from_url(database_url)
    token, _ = store.keys.create_key("acme", scopes)
    store.close()
    return {"Authorization": f"Bearer {token}"}


def url(op: Operation) -> str:
    return re.sub(r"{\w+}", "x", op.path)


def test_the_app_serves_the_route_table_and_the_console_beside_it(web: TestClient) -> None:
    served = []
    for route in web.app.routes:  # type: ignore[attr-defined]
        if isinstance(route, Mount) or route.path == "/ui":  # the console: its own pages, its own sign-in
            assert route.path == "/ui"
            continue
        assert isinstance(route, Route)
        served += [(m, route.path, route.endpoint) for m in sorted(route.methods or ()) if m != "HEAD"]
    assert sorted(served, key=str) == sorted(((op.method, op.path, op.handler) for op in OPERATIONS), key=str)


def test_each_route_needs_the_access_its_row_declares(web: TestClient, sqlite_url: str) -> None:
    for op in OPERATIONS:
        unauthenticated = web.request(op.method, url(op))
        if op.access is PUBLIC:
            assert unauthenticated.status_code not in (401, 403), op.path
            continue
        assert unauthenticated.status_code == 401, (op.method, op.path)
        if op.access is ANY_KEY:
            narrow = key(sqlite_url, ("jobs:read",))
            assert web.request(op.method, url(op), headers=narrow).status_code not in (401, 403), op.path
            continue
        others = tuple(s for s in keys.SCOPES if s not in (op.access, "admin"))
        refused = web.request(op.method, url(op), headers=key(sqlite_url, others))
        assert refused.status_code == 403, (op.method, op.path)
        assert repr(op.access) in refused.json()["error"]["message"]
        only = key(sqlite_url, (str(op.access),))
        assert web.request(op.method, url(op), headers=only).status_code not in (401, 403), (op.method, op.path)


def test_a_route_no_row_declares_is_401_without_a_key_and_404_with_any_key(web: TestClient, sqlite_url: str) -> None:
    assert web.get("/nope").status_code == 401
    assert web.post("/jobs/x/nope").status_code == 401
    narrow = key(sqlite_url, ("memory:read",))
    assert web.get("/nope", headers=narrow).status_code == 404
    assert web.post("/jobs/x/nope", headers=narrow).status_code == 404
    assert web.post("/healthz").status_code == 405  # a public path with another method: no key asked
    assert web.delete("/jobs", headers=narrow).status_code == 405
