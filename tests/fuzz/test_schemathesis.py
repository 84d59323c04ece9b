"""schemathesis against the API's own /openapi.json, with a valid key, on real PostgreSQL and Redis.

Every operation gets generated valid and invalid requests. No response may be a 500, every
response must use a documented status code and content type and match its schema, and
invalid input must be rejected with a 4xx.

Then every operation gets what JSON, PostgreSQL or UTF-8 cannot hold (NUL, lone surrogates,
NaN/Infinity, numbers beyond float range, crafted cursors) in each of its parameters and in
each value of its body: none may be a 500 or an undocumented status.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as oa

from agentbus.api import create_app
from agentbus.api.openapi import document
from agentbus.config import Settings
from agentbus.examples import app as examples
from agentbus.security import keys
from agentbus.store import Repositories

CHECKS = [
    schemathesis.checks.not_a_server_error,
    oa.status_code_conformance,
    oa.content_type_conformance,
    oa.response_schema_conformance,
    oa.negative_data_rejection,
]


@pytest.fixture
def api(pg_url: str, redis_url: str) -> Iterator[tuple[Any, dict[str, str]]]:
    store = Repositories.from_url(pg_url)
    token, _ = store.keys.create_key("fuzz", keys.SCOPES)
    store.close()
    unlimited = "1000000/s:1000000"
    web = create_app(
        Settings(
            database_url=pg_url, redis_url=redis_url, rate_read=unlimited, rate_write=unlimited, authfail_rate=unlimited
        ),
        examples,
    )
    yield web, {"Authorization": f"Bearer {token}"}
    web.state.repos.close()


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


def _cursor(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


CURSORS = [_cursor("1|\x00"), _cursor("nan|x"), _cursor("1e400|x"), _cursor("inf|x"), _cursor("1|"), "\x00"]
# A URL cannot carry a lone surrogate (percent-decoding replaces it), so parameters get the rest.
PARAMETER_VALUES = ["\x00", "a\x00b", "NaN", "-Infinity", "1e400", "9" * 400, "\u00b2", *CURSORS]
TOO_BIG = 1.2345e300  # stands for a literal the JSON encoder cannot write (1e400), swapped in the text
BODY_VALUES: list[Any] = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    float("nan"),
    float("inf"),
    float("-inf"),
    10**400,
    TOO_BIG,
]


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Paths to every value in a JSON body (the body itself included)."""
    yield path
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _leaves(v, (*path, i))


def _replace(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replace(value[path[0]], path[1:], new)
    return copy


def _raw(body: Any) -> bytes:
    """JSON as a careless client writes it: NaN, Infinity and escaped lone surrogates included."""
    return json.dumps(body).replace(repr(TOO_BIG), "1e400").encode()


def hostile_variants(case: Any, declared: dict[str, Any]) -> Iterator[Any]:
    """``case`` with each parameter, then each body value, replaced by each hostile value."""
    for p in declared.get("parameters", []):
        where = {"path": case.path_parameters, "query": case.query}.get(p["in"])
        if where is None:
            continue
        values = CURSORS if p["name"] == "cursor" else PARAMETER_VALUES
        for v in values:
            variant = case.derive()
            target = variant.path_parameters if p["in"] == "path" else variant.query
            target[p["name"]] = v
            yield variant
    if "requestBody" in declared and isinstance(case.body, dict | list):
        for path in _leaves(case.body):
            for v in BODY_VALUES:
                variant = case.derive()
                variant.body = _raw(_replace(case.body, path, v))
                yield variant


def test_no_operation_answers_500_to_values_json_or_postgresql_cannot_hold(api: tuple[Any, dict[str, str]]) -> None:
    web, headers = api
    paths = document(examples)["paths"]
    sent: list[int] = []
    for op in operations(web, headers):
        declared = paths[op.path][op.method.lower()]
        if not declared.get("parameters") and "requestBody" not in declared:
            continue

        @given(case=op.as_strategy(generation_mode=GenerationMode.POSITIVE), declared=st.just(declared))
        @settings(
            max_examples=2, derandomize=True, deadline=None, suppress_health_check=list(HealthCheck), database=None
        )
        def call(case: Any, declared: dict[str, Any]) -> None:
            case.query.pop("wait", None)  # a long-poll would only slow the run down
            for variant in hostile_variants(case, declared):
                r = variant.call(headers=headers)
                where = f"{variant.method} {r.request.url} {r.request.body!r}"
                assert r.status_code != 500, f"{where} answered 500"
                assert str(r.status_code) in declared["responses"], f"{where}: undocumented {r.status_code}"
                sent.append(r.status_code)

        call()
    assert len(sent) > 500
