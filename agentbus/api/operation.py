"""What a row of the route table says about one API operation, and how a request finds its row.

An ``Operation`` is the one place a route is declared: its method and path, the handler, who
may call it (``access``: a key scope, ``ANY_KEY`` or ``PUBLIC``, never left out), and what
``/openapi.json`` says of it. The starlette routes (``api/app.py``), the scope check
(``api/auth.py``) and the OpenAPI paths (``api/openapi.py``) are all derived from the rows in
``api/table.py``.
"""

from __future__ import annotations

import enum
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import Scope

Handler = Callable[[Request], Awaitable[Response]]


class Open(enum.Enum):
    """An access that is no key scope: said explicitly in the row, so no route is open by omission."""

    PUBLIC = "no key at all (the health checks a load balancer calls)"
    ANY_KEY = "any valid key, whatever its scopes"


PUBLIC = Open.PUBLIC
ANY_KEY = Open.ANY_KEY
Access = str | Open  # a scope of security.keys.SCOPES, or one of the two above


@dataclass(frozen=True)
class Reply:
    """One documented answer: its description and the schema of its body (none: no body shown)."""

    description: str
    schema: Mapping[str, Any] | None = None
    media_type: str = "application/json"


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    access: Access
    operation_id: str
    summary: str
    replies: Mapping[str, Reply]  # the answers of a call that got through: "200", "201", ...
    errors: tuple[int, ...] = ()  # error statuses it may answer; 401/403/429 follow from ``access``
    parameters: tuple[Mapping[str, Any], ...] = ()  # OpenAPI parameter objects
    body: type[BaseModel] | None = None  # the JSON body it reads; its schema is a component
    description: str | None = None

    def route(self) -> Route:
        return Route(self.path, self.handler, methods=[self.method])


class RouteTable:
    """The operations with the starlette route of each, built once; ``find`` matches a request
    against them the way starlette's router does (a GET route answers HEAD too)."""

    def __init__(self, operations: Sequence[Operation]) -> None:
        self.operations = tuple(operations)
        self._routes = [(op.route(), op) for op in self.operations]
        # The rows that can match a path, by its first segment ("jobs" for /jobs/{job_id}/results):
        # a request tries those few, in table order, not every row before its own (the health
        # checks are rows 30-31: a regex for each row before them on every probe). A row whose
        # first segment is a parameter could match any path: it is in every bucket.
        anywhere = {i for i, op in enumerate(self.operations) if "{" in _first_segment(op.path)}
        segments = {_first_segment(op.path) for op in self.operations}
        self._by_segment = {
            seg: [
                self._routes[i]
                for i, op in enumerate(self.operations)
                if _first_segment(op.path) == seg or i in anywhere
            ]
            for seg in segments
        }
        self._anywhere = [self._routes[i] for i in sorted(anywhere)]

    @property
    def routes(self) -> list[Route]:
        return [route for route, _ in self._routes]

    def find(self, scope: Scope) -> Operation | None:
        """The operation a request calls; None for a path or a method no row declares (but see below)."""
        public_path = None
        # under a root path (a mount, a proxy's prefix) the route path is not scope["path"]: every row
        rows = self._routes if scope.get("root_path") else self._by_segment.get(_first_segment(scope["path"]))
        for route, op in self._anywhere if rows is None else rows:
            match, _ = route.matches(scope)
            if match == Match.FULL:
                return op
            if match == Match.PARTIAL and op.access is PUBLIC:
                public_path = op
        # A public path asked with another method (POST /healthz): public too, so the router's 405
        # answers it, as it did before the table, rather than a 401 that suggests a key would help.
        return public_path


def _first_segment(path: str) -> str:
    """``jobs`` of ``/jobs/{job_id}``; ``""`` of ``/``."""
    return path[1:].partition("/")[0] if path.startswith("/") else ""
