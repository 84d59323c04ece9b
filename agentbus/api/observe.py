"""The outermost middleware: a request id, HTTP metrics by route template, and the access log.

A client's ``X-Request-ID`` is kept when it is short and made of safe characters (it is
written into logs), else one is made; either way it is echoed on the response and bound to
every log line written while the request is handled. Metrics are labelled with the route's
template (``/jobs/{job_id}``), never the raw path, so their number stays bounded.
"""

from __future__ import annotations

import itertools
import logging
import os
import time

from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentbus.observability import log_context, metrics, valid_request_id

access = logging.getLogger("agentbus.access")
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def template(scope: Scope) -> str:
    """The matched route's template with its mount's prefix (``/ui/jobs/{job_id}``); ``/ui/{path}``
    for what a mount serves itself (static files, its 404s); ``unmatched`` for no route at all."""
    route = scope.get("route")
    if route is None:
        return "unmatched"
    prefix = str(scope.get("root_path", ""))  # a mount's prefix once it matched, else ""
    return prefix + "/{path}" if isinstance(route, Mount) else prefix + str(route.path)


_ID_PREFIX = os.urandom(10).hex()  # random per process: ids of two replicas never meet
_counter = itertools.count()


def _request_id(scope: Scope) -> str:
    """The client's X-Request-ID when it is safe, else a new id (32 hex digits: a counter after the
    process's random prefix, cheaper per request than uuid4's read of the system's random source)."""
    for name, value in scope["headers"]:
        if name == b"x-request-id":
            given = valid_request_id(value.decode("latin-1"))
            if given is not None:
                return given
            break
    return f"{_ID_PREFIX}{next(_counter) & 0xFFFFFFFFFFFF:012x}"


class ObserveMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = _request_id(scope)
        header = (b"x-request-id", request_id.encode())
        started = time.perf_counter()
        status = 500  # what the client gets when the app raises before answering

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message = {**message, "headers": [*message.get("headers", []), header]}
            await send(message)

        with log_context(request_id=request_id, tenant=None):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = template(scope)
                method = scope["method"] if scope["method"] in METHODS else "other"
                metrics.http_request(method, route, status, elapsed)
                if access.isEnabledFor(logging.INFO):
                    tenant = (scope.get("state") or {}).get("tenant")
                    access.info(
                        "%s %s %d %.1fms",
                        method,
                        scope["path"],
                        status,
                        elapsed * 1000,
                        extra={
                            "method": method,
                            "route": route,
                            "path": scope["path"],
                            "status": status,
                            "duration_ms": round(elapsed * 1000, 2),
                            "tenant": tenant,
                        },
                    )
