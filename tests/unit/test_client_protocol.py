"""The client's sans-IO layer: error responses to exceptions, retries, server-sent events, schema hints."""

from __future__ import annotations

import asyncio
import importlib.metadata
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import jsonschema
import pytest

import agentbus
from agentbus.api.errors import error_body
from agentbus.client import AsyncClient, Client, EventDecoder, Retry, schema
from agentbus.client._protocol import error_from
from agentbus.domain.errors import (
    HTTP_STATUS,
    AgentbusError,
    Conflict,
    IdempotencyConflict,
    IllegalTransition,
    RateLimited,
    Unavailable,
    ValidationFailed,
    http_status,
)
from agentbus.examples import REVIEW_SCHEMA


@pytest.mark.parametrize("cls", [cls for cls, _ in HTTP_STATUS] + [IdempotencyConflict, IllegalTransition])
def test_an_error_response_reads_back_as_the_class_the_server_raised(cls: type[AgentbusError]) -> None:
    status = http_status(cls.__new__(cls))
    resp = httpx.Response(status, json=error_body(status, cls.__name__, "boom"), headers={"Retry-After": "2"})
    exc = error_from(resp)
    assert type(exc) is cls and exc.message == "boom"


def test_unknown_type_names_fall_back_to_the_statuss_class_and_odd_bodies_still_read() -> None:
    assert type(error_from(httpx.Response(409, json=error_body(409, "Whatever", "x")))) is Conflict
    assert type(error_from(httpx.Response(503, text="bad gateway"))) is Unavailable
    assert type(error_from(httpx.Response(500, json=error_body(500, "InternalError", "x")))) is AgentbusError
    invalid = error_from(httpx.Response(422, json=error_body(422, "ValidationFailed", "x", errors=[{"loc": ["a"]}])))
    assert isinstance(invalid, ValidationFailed) and invalid.errors == [{"loc": ["a"]}]
    limited = error_from(httpx.Response(429, json=error_body(429, "RateLimited", "x"), headers={"Retry-After": "7"}))
    assert isinstance(limited, RateLimited) and limited.retry_after == 7


def _answers(*statuses: int, retry_after: str = "0") -> tuple[list[int], httpx.MockTransport, httpx.MockTransport]:
    """A server answering ``statuses`` in turn (then 200s); the list counts the requests it saw."""
    seen: list[int] = []

    def handle(request: httpx.Request) -> httpx.Response:
        seen.append(1)
        status = statuses[len(seen) - 1] if len(seen) <= len(statuses) else 200
        if status == 200:
            return httpx.Response(200, json={"workers": []})
        return httpx.Response(status, json=error_body(status, "X", "later"), headers={"Retry-After": retry_after})

    async def ahandle(request: httpx.Request) -> httpx.Response:
        return handle(request)

    return seen, httpx.MockTransport(handle), httpx.MockTransport(ahandle)


def test_429_and_503_are_retried_as_retry_after_says_then_given_up() -> None:
    seen, transport, _ = _answers(503, 429)
    with Client(transport=transport) as c:
        assert c.workers() == []
    assert len(seen) == 3
    seen, transport, _ = _answers(429, 429, 429, 429, 429)
    with Client(transport=transport, retry=Retry(attempts=2)) as c, pytest.raises(RateLimited):
        c.workers()
    assert len(seen) == 3  # the first try and two retries
    seen, _, atransport = _answers(503, 503)

    async def main() -> None:
        async with AsyncClient(transport=atransport) as c:
            assert await c.workers() == []

    asyncio.run(main())
    assert len(seen) == 3


def test_other_errors_are_not_retried() -> None:
    seen, transport, _ = _answers(409)
    with Client(transport=transport) as c, pytest.raises(Conflict):
        c.workers()
    assert len(seen) == 1


def test_the_wait_is_what_retry_after_says_within_bounds() -> None:
    policy = Retry(attempts=3, max_wait=10, default_wait=0.5)

    def wait(status: int, header: str | None, attempt: int = 0) -> float | None:
        return policy.delay(httpx.Response(status, headers={"Retry-After": header} if header else {}), attempt)

    assert wait(429, "3") == 3
    assert wait(503, "3600") == 10
    assert wait(503, None) == 0.5 and wait(503, None, attempt=2) == 2.0
    soon = format_datetime(datetime.now(UTC) + timedelta(seconds=5), usegmt=True)
    assert 3 < (wait(429, soon) or 0) <= 5
    assert wait(429, "1", attempt=3) is None and wait(500, "1") is None
    assert wait(503, "soon") == 0.5


def test_server_sent_events_are_decoded_line_by_line() -> None:
    d = EventDecoder()
    lines = [
        "retry: 1000",
        "",
        "id: 1.5",
        "event: job",
        'data: {"status":',
        'data: "running"}',
        "",
        ": keep-alive",
        "",
        "event: end",
        "data: {}",
        "",
    ]
    events = [e for e in (d.feed(line) for line in lines) if e is not None]
    assert [(e.id, e.event, e.data) for e in events] == [("1.5", "job", {"status": "running"}), ("1.5", "end", {})]


def test_a_schema_is_told_as_fields_an_example_and_what_is_missing() -> None:
    assert [f.describe() for f in schema.fields(REVIEW_SCHEMA)] == ["title (string)", "priority (integer, optional)"]
    jsonschema.validate(schema.example(REVIEW_SCHEMA), REVIEW_SCHEMA)  # the example is a valid answer
    assert schema.missing(REVIEW_SCHEMA, None) == ["title"]
    assert schema.missing(REVIEW_SCHEMA, {"priority": 2}) == ["title"]
    assert schema.missing(REVIEW_SCHEMA, {"title": "x"}) == []
    assert schema.fields(None) == [] and schema.example(None) is None
    assert schema.example({"type": "object", "properties": {"k": {"enum": ["a", "b"]}}}) == {"k": "a"}


def test_importing_the_domain_does_not_import_the_http_client() -> None:
    code = (
        "import sys, agentbus.domain, agentbus; assert 'httpx' not in sys.modules, 'httpx imported';"
        "assert agentbus.Client.__name__ == 'Client' and 'httpx' in sys.modules"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr


def test_the_version_is_the_installed_packages() -> None:
    assert agentbus.__version__ == importlib.metadata.version("agentbus")


def test_a_job_error_carries_its_traceback_when_the_server_sent_one() -> None:
    from agentbus.client.records import Job

    base = {
        "id": "j",
        "type": "t",
        "status": "failed",
        "input": {},
        "priority": 0,
        "idempotency_key": None,
        "parent_id": None,
        "created_at": None,
        "started_at": None,
        "finished_at": None,
    }
    with_tb = Job.from_json({**base, "error": {"type": "E", "message": "m", "traceback": "in f"}})
    without = Job.from_json({**base, "error": {"type": "E", "message": "m"}})
    assert with_tb.error is not None and with_tb.error.traceback == "in f"
    assert without.error is not None and (without.error.type, without.error.traceback) == ("E", None)
