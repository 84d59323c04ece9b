"""Query and path parameters checked once, for every route, before any route reads them.

A parameter ends up in a query (``?type=``, ``?job=``, a path id), and PostgreSQL refuses text
holding a NUL character: without this check each such request was a 500. What a parameter
*means* stays the route's business; this only refuses text no route could use (see
``domain.jsonsafe.text_problem``) with a 400, the status every route with parameters documents.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from agentbus.api.errors import error_body
from agentbus.domain.jsonsafe import text_problem


def parameter_problem(scope: Scope) -> str | None:
    """Why the request's path or query cannot be used, or None."""
    problem = text_problem(scope.get("path", ""))
    if problem:
        return f"the path {problem}"
    query = scope.get("query_string", b"").decode("latin-1")
    # decoded as starlette's QueryParams decodes them, so the check sees what the routes see
    for name, value in parse_qsl(query, keep_blank_values=True):
        problem = text_problem(name) or text_problem(value)
        if problem:
            shown = name.replace("\x00", "\\u0000")[:50]
            return f"query parameter {shown!r} {problem}"
    return None


class ParamsMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            problem = parameter_problem(scope)
            if problem:
                response = JSONResponse(error_body(400, "InvalidInput", problem), 400)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
