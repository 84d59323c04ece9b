"""The route table is the one declaration of the API's operations: each says who may call it,
and the OpenAPI document is derived from it (no service needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from agentbus.api.openapi import document
from agentbus.api.operation import ANY_KEY, PUBLIC, Open, Operation, Reply, RouteTable
from agentbus.api.routes import healthz
from agentbus.api.table import OPERATIONS
from agentbus.examples import app as examples
from agentbus.security import keys


def test_every_operation_says_who_may_call_it() -> None:
    for op in OPERATIONS:
        assert isinstance(op.access, Open) or op.access in keys.SCOPES, (op.method, op.path, op.access)
    # the health checks are open because their rows say so, not because a path prefix lets them through
    assert {op.path for op in OPERATIONS if op.access is PUBLIC} == {"/healthz", "/readyz"}


def test_a_row_without_its_access_is_refused() -> None:
    with pytest.raises(TypeError, match="access"):
        Operation("GET", "/x", healthz, operation_id="x", summary="x", replies={"200": Reply("x")})  # type: ignore[call-arg]


def test_each_operation_is_declared_once_with_its_path_parameters() -> None:
    assert len({(op.method, op.path) for op in OPERATIONS}) == len(OPERATIONS)
    assert len({op.operation_id for op in OPERATIONS}) == len(OPERATIONS)
    for op in OPERATIONS:
        in_path = re.findall(r"{(\w+)}", op.path)
        declared = [p["name"] for p in op.parameters if p["in"] == "path"]
        assert declared == in_path, op.path


def _scope(method: str, path: str) -> dict[str, Any]:
    return {"type": "http", "method": method, "path": path, "root_path": ""}


def test_a_request_finds_its_operation_as_the_router_matches_it() -> None:
    table = RouteTable(OPERATIONS)
    found = table.find(_scope("GET", "/jobs/j1/results"))
    assert found is not None and found.operation_id == "get_results"
    head = table.find(_scope("HEAD", "/jobs/j1"))  # a GET route answers HEAD too
    assert head is not None and head.operation_id == "get_job"
    search = table.find(_scope("POST", "/memory/search"))  # not the namespace "search"
    assert search is not None and search.access == "memory:read"
    assert table.find(_scope("DELETE", "/memory/search")).operation_id == "memory_delete_namespace"  # type: ignore[union-attr]
    assert table.find(_scope("GET", "/nope")) is None
    assert table.find(_scope("DELETE", "/jobs")) is None  # a path of the table, not with this method
    assert table.find(_scope("GET", "/jobs/")) is None  # paths are exact
    wrong_method = table.find(_scope("POST", "/healthz"))  # a public path stays public: the router says 405
    assert wrong_method is not None and wrong_method.access is PUBLIC


def test_the_openapi_paths_are_the_table() -> None:
    paths = document(examples)["paths"]
    documented = {(method.upper(), path) for path, item in paths.items() for method in item}
    assert documented == {(op.method, op.path) for op in OPERATIONS}
    for op in OPERATIONS:
        declared = paths[op.path][op.method.lower()]
        assert declared["operationId"] == op.operation_id
        if op.access is PUBLIC:
            assert declared["x-access"] == "no key" and "401" not in declared["responses"]
        elif op.access is ANY_KEY:
            assert declared["x-access"] == "any key"
            assert {"401", "429"} <= set(declared["responses"]) and "403" not in declared["responses"]
        else:
            assert declared["x-access"] == op.access
            assert {"401", "403", "429"} <= set(declared["responses"])


def test_every_body_an_operation_reads_is_a_component() -> None:
    doc = document(examples)
    schemas = doc["components"]["schemas"]
    for op in OPERATIONS:
        if op.body is None:
            continue
        assert op.body.__name__ in schemas, op.operation_id
        body = doc["paths"][op.path][op.method.lower()]["requestBody"]
        assert body["content"]["application/json"]["schema"] == {"$ref": f"#/components/schemas/{op.body.__name__}"}
    # a job's body is one variant per job type, each with that type's input schema
    assert len(schemas["SubmitJob"]["oneOf"]) == len([*examples.tasks, *examples.agents])


def test_the_scope_table_of_docs_security_md_is_the_route_table() -> None:
    text = (Path(__file__).parents[2] / "docs" / "security.md").read_text()
    documented: dict[str, set[str]] = {}
    for line in text.splitlines():
        cells = line.split(" | ")
        if line.startswith("| `") and len(cells) == 2 and re.search(r"`(GET|POST|DELETE) /", cells[1]):
            documented[cells[0].strip("| `")] = set(re.findall(r"`((?:GET|POST|DELETE) /[^`]*)`", cells[1]))
    declared: dict[str, set[str]] = {}
    for op in OPERATIONS:
        if isinstance(op.access, str):
            declared.setdefault(op.access, set()).add(f"{op.method} {op.path}")
    assert documented == declared


def test_finding_by_the_first_segment_finds_what_trying_every_row_finds() -> None:
    # the index (rows by first path segment) is a shortcut, never another answer: against a plain
    # scan of every row, for the table's paths with each method, near misses, and a table with a
    # row whose first segment is a parameter (it may match any path)
    catch_all = Operation("GET", "/{tenant}/things", healthz, PUBLIC, "things", "x", {"200": Reply("x")})
    for ops in (OPERATIONS, (*OPERATIONS[:3], catch_all, *OPERATIONS[3:])):
        table = RouteTable(ops)

        def scan(scope: dict[str, Any], ops: tuple[Operation, ...] = tuple(ops)) -> Operation | None:
            public = None
            for op in ops:
                match, _ = op.route().matches(scope)
                if match.name == "FULL":
                    return op
                if match.name == "PARTIAL" and op.access is PUBLIC:
                    public = op
            return public

        paths = {re.sub(r"{\w+}", "x", op.path) for op in ops}
        paths |= {p + "/" for p in paths} | {"/", "", "/nope", "/jobs/x/y/z", "/healthz/x", "/acme/things"}
        for path in paths:
            for method in ("GET", "HEAD", "POST", "DELETE"):
                assert table.find(_scope(method, path)) == scan(_scope(method, path)), (method, path)
        mounted = {**_scope("GET", "/api/jobs/x"), "root_path": "/api"}  # under a prefix: every row is tried
        assert table.find(mounted) == scan(mounted)
