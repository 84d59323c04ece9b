"""Search modes over HTTP: ``mode=hybrid`` on GET and POST, and what the OpenAPI document says of it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from agentbus.api import create_app
from agentbus.config import Settings
from agentbus.examples import app as examples
from agentbus.security import keys
from agentbus.store import Repositories

NOTES = [
    {"id": "n1", "text": "Invoice INV-2024-0042 was refunded to the customer"},
    {"id": "n2", "text": "Invoice INV-2024-0043 is waiting for approval"},
    {"id": "n3", "text": "The customer asked for a refund of their invoice"},
]


@pytest.fixture
def client(pg_url: str, redis_url: str) -> Iterator[TestClient]:
    web = create_app(Settings(database_url=pg_url, redis_url=redis_url), examples)
    store = Repositories.from_url(pg_url)
    token, _ = store.keys.create_key("default", keys.SCOPES)
    store.close()
    try:
        with TestClient(web, headers={"Authorization": f"Bearer {token}"}) as c:
            yield c
    finally:
        web.state.repos.close()


def test_hybrid_mode_over_get_and_post(client: TestClient) -> None:
    assert client.post("/memory/store", json={"namespace": "notes", "items": NOTES}).status_code == 201
    got = client.get("/memory/search", params={"namespace": "notes", "q": "INV-2024-0042", "k": 2, "mode": "hybrid"})
    assert got.status_code == 200 and got.json()["hits"][0]["id"] == "n1"
    posted = client.post("/memory/search", json={"namespace": "notes", "q": "INV-2024-0042", "k": 2, "mode": "hybrid"})
    assert posted.status_code == 200 and posted.json()["hits"] == got.json()["hits"]
    plain = client.get("/memory/search", params={"namespace": "notes", "q": "INV-2024-0042", "k": 2})
    assert plain.status_code == 200  # mode defaults to vector
    bad = client.get("/memory/search", params={"namespace": "notes", "q": "x", "mode": "fuzzy"})
    assert bad.status_code == 422
    no_text = client.post("/memory/search", json={"namespace": "notes", "vector": [0.1] * 384, "mode": "hybrid"})
    assert no_text.status_code == 422


def test_openapi_documents_the_mode(client: TestClient) -> None:
    doc = client.get("/openapi.json").json()
    get_params = {p["name"]: p for p in doc["paths"]["/memory/search"]["get"]["parameters"]}
    assert get_params["mode"]["schema"]["enum"] == ["vector", "hybrid"]
    assert doc["components"]["schemas"]["SearchMemory"]["properties"]["mode"]["enum"] == ["vector", "hybrid"]
