"""The one place where errors become HTTP responses."""

from __future__ import annotations

import logging
import math

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from agentbus.domain.errors import (
    AgentbusError,
    RateLimited,
    Unauthorized,
    ValidationFailed,
    http_status,
)

log = logging.getLogger("agentbus.api")


def error_body(status: int, kind: str, message: str, **extra: object) -> dict[str, object]:
    return {"error": {"status": status, "type": kind, "message": message, **extra}}


async def agentbus_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AgentbusError)
    status = http_status(exc)
    extra: dict[str, object] = {}
    if isinstance(exc, ValidationFailed):
        extra["errors"] = exc.errors
    headers: dict[str, str] | None = None
    if status == 503:
        headers = {"Retry-After": "1"}
    elif isinstance(exc, Unauthorized):
        headers = {"WWW-Authenticate": 'Bearer realm="agentbus"'}
    elif isinstance(exc, RateLimited):
        headers = {"Retry-After": str(max(1, math.ceil(exc.retry_after))), **exc.headers}
    if status == 500:
        log.error("unmapped error on %s %s: %r", request.method, request.url.path, exc)
    return JSONResponse(error_body(status, type(exc).__name__, exc.message, **extra), status, headers=headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = exc.detail if isinstance(exc.detail, str) else "error"
    if exc.status_code == 404:
        message = f"no route {request.method} {request.url.path}"
    elif exc.status_code == 405:
        message = f"method {request.method} not allowed on {request.url.path}"
    return JSONResponse(error_body(exc.status_code, "HTTPError", message), exc.status_code, headers=exc.headers)


async def unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return JSONResponse(error_body(500, "InternalError", "internal error; it has been logged"), 500)


exception_handlers = {AgentbusError: agentbus_error, HTTPException: http_error, Exception: unexpected}
