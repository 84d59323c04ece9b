"""What every console page shares: templates, the signed-in principal, CSRF, HTML errors."""

from __future__ import annotations

import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from agentbus.api.auth import Principal
from agentbus.api.console._limits import Limits
from agentbus.api.console._session import COOKIE, Sessions
from agentbus.api.guard import Guarded
from agentbus.api.state import ApiState
from agentbus.domain import AgentbusError, Forbidden, InvalidInput, PayloadTooLarge, Unavailable
from agentbus.domain.errors import http_status
from agentbus.store.console import ConsoleQueries
from agentbus.store.db import ConnectionPerCall

log = logging.getLogger("agentbus.api")

HERE = Path(__file__).parent
PREFIX = "/ui"

# The pages load nothing from elsewhere and run no inline script: a strict policy costs nothing.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
}


def _ts(value: float | None) -> str:
    if value is None:
        return "—"
    return datetime.fromtimestamp(value, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _iso(value: float | None) -> str:
    return "" if value is None else datetime.fromtimestamp(value, UTC).isoformat().replace("+00:00", "Z")


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds / 60:.1f} min"


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, sort_keys=True, default=str)


templates = jinja2.Environment(
    loader=jinja2.FileSystemLoader(HERE / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)
templates.filters.update(ts=_ts, iso=_iso, dur=_dur, pretty=_pretty, q=lambda s: quote(str(s), safe=""))


@dataclass
class Console:
    """The console's own state, made once per app from the API's."""

    api: ApiState
    sessions: Sessions
    queries: Any  # ConsoleQueries behind the same kind of circuit breaker as the API's store
    limits: Limits


def console(request: Request) -> Console:
    found: Console | None = getattr(request.app.state, "console", None)
    if found is None:
        api: ApiState = request.app.state.agentbus
        cfg = api.settings
        # the same wrapping as the API's store: a pooled connection per call, then the breaker
        queries = Guarded(
            ConnectionPerCall(ConsoleQueries(api.jobs.db)), "PostgreSQL", cfg.breaker_fail_max, cfg.breaker_reset_s
        )
        limiter = getattr(request.app.state, "limiter", None)  # the API's own (create_app shares it)
        found = Console(api, Sessions(cfg.secret, cfg.console_session_s), queries, Limits(limiter, cfg))
        request.app.state.console = found
    return found


def page(request: Request, template: str, status: int = 200, /, **context: Any) -> HTMLResponse:
    html = templates.get_template(template).render(request=request, prefix=PREFIX, **context)
    return HTMLResponse(html, status, headers=SECURITY_HEADERS)


def fragment(template: str, **context: Any) -> str:
    html: str = templates.get_template(template).render(prefix=PREFIX, **context)
    return html


def redirect(path: str) -> RedirectResponse:
    return RedirectResponse(PREFIX + path, 303, headers=SECURITY_HEADERS)


Handler = Callable[[Request], Awaitable[Response]]


def signed_in(scope: str | None, *, stream: bool = False) -> Callable[[Handler], Handler]:
    """Resolve the session cookie (no session: the sign-in page, never data), check the scope the
    same JSON route would need, check CSRF on POST, and render domain errors as HTML."""

    def wrap(handler: Handler) -> Handler:
        async def run(request: Request) -> Response:
            start = time.perf_counter()
            response = await checked(request)
            if not stream:  # what the page cost the server (bench/console.py reads it)
                response.headers["Server-Timing"] = f"app;dur={(time.perf_counter() - start) * 1000:.1f}"
            return response

        async def checked(request: Request) -> Response:
            c = console(request)
            try:
                found = await run_in_threadpool(c.sessions.principal, c.api.keys, request.cookies.get(COOKIE))
            except Unavailable as exc:
                return page(request, "error.html", 503, principal=None, title="Unavailable", message=exc.message)
            if found is None:
                if stream or request.method != "GET":
                    return Response("sign in first", 401, headers=SECURITY_HEADERS)
                here = request.url.path + ("?" + request.url.query if request.url.query else "")
                return redirect("/login?next=" + quote(here, safe=""))
            principal, nonce = found
            request.state.tenant = principal.tenant
            request.state.key_id = principal.key_id
            request.state.principal = principal
            request.state.csrf = c.sessions.csrf(nonce)
            try:
                if not principal.allows(scope):
                    raise Forbidden(f"this API key lacks the {scope!r} scope")
                await run_in_threadpool(c.limits.charge, principal, request.method == "POST")
                if request.method == "POST":
                    form = await form_of(request)
                    if not c.sessions.csrf_ok(nonce, form.get("csrf")):
                        raise Forbidden("the form's CSRF token is missing or stale: reload the page and try again")
                return await handler(request)
            except AgentbusError as exc:
                status = http_status(exc)
                if status == 500:
                    log.error("console: unmapped error on %s %s: %r", request.method, request.url.path, exc)
                return page(
                    request, "error.html", status, **context(request, title=type(exc).__name__, message=exc.message)
                )

        return functools.wraps(handler)(run)

    return wrap


async def form_of(request: Request) -> dict[str, str]:
    """The posted form (urlencoded: the console's forms upload no files), within the API's body limit."""
    cached: dict[str, str] | None = getattr(request.state, "form", None)
    if cached is not None:
        return cached
    limit = console(request).api.settings.max_body_bytes
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise PayloadTooLarge(f"the form is larger than {limit} bytes")
    form = dict(parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True))
    request.state.form = form
    return form


def principal_of(request: Request) -> Principal:
    p: Principal = request.state.principal
    return p


def context(request: Request, **extra: Any) -> dict[str, Any]:
    """What the layout needs on every signed-in page."""
    return {"principal": principal_of(request), "csrf": request.state.csrf, **extra}


def int_param(params: Mapping[str, str], name: str, default: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise InvalidInput(f"{name} must be a whole number, got {raw!r}") from None
