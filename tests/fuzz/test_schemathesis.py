"""schemathesis against the API's own /openapi.json, with a valid key, on real PostgreSQL and Redis.

Every operation gets generated valid and invalid requests. No response may be a 500, every
response must use a documented status code and content type and match its schema, and
invalid input must be rejected with a 4xx.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as oa

from agentbus.api import create_app
from agentbus.api.openapi import document
from agentbus.config import Settings
from agentbus.examples import app as examples
from agentbus.security import keys
from agentbus.store import Store

CHECKS = [
    schemathesis.checks.not_a_server_error,
    oa.status_code_conformance,
    oa.content_type_conformance,
    oa.response_schema_conformance,
    oa.negative_data_rejection,
]


@pytest.fixture
def api(pg_url: str, redis_url: str) -> Iterator[tuple[Any, dict[str, str]]]:
    store = Store.from_url(pg_url)
    token, _ = store.create_key("fuzz", keys.SCOPES)
    store.close()
    unlimited = "1000000/s:1000000"
    web = create_app(
        Settings(
            database_url=pg_url, redis_url=redis_url, rate_read=unlimited, rate_write=unlimited, authfail_rate=unlimited
        ),
        examples,
    )
    yield web, {"Authorization": f"Bearer {token}"}
    web.state.agentbus.store.close()


def operations(web: Any, headers: dict[str, str]) -> list[Any]:
    schema = schemathesis.openapi.from_asgi("/openapi.json", web, headers=headers)
    ops = [result.ok() for result in schema.get_all_operations()]
    paths = document(examples)["paths"]
    documented = sum(len(methods) for path, methods in paths.items() if path != "/openapi.json")
    assert len(ops) == documented, "every documented operation is fuzzed (schemathesis skips the schema's own URL)"
    return ops


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_api_conforms_to_its_schema(api: tuple[Any, dict[str, str]], mode: GenerationMode) -> None:
    """(schemathesis' own pytest plugin does not run under pytest 9 yet: drive its strategies directly.)"""
    web, headers = api
    exercised = 0
    for op in operations(web, headers):

        @given(case=op.as_strategy(generation_mode=mode))
        @settings(
            max_examples=40, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def call(case: Any) -> None:
            if isinstance(case.query, dict):
                case.query.pop("wait", None)  # a long-poll would only slow the run down
            case.call_and_validate(headers=headers, checks=CHECKS)

        try:
            call()
            exercised += 1
        except Unsatisfiable:  # no invalid request exists for it (no parameters, no body): nothing to fuzz
            assert mode == GenerationMode.NEGATIVE, op.label
    assert exercised >= (14 if mode == GenerationMode.POSITIVE else 8)
