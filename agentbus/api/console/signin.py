"""Signing in with an API key and signing out."""

from __future__ import annotations

from urllib.parse import urlsplit

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from agentbus.api.console._base import PREFIX, console, form_of, page, redirect, signed_in
from agentbus.api.console._session import COOKIE, LOGIN_COOKIE, LOGIN_S
from agentbus.domain import Unauthorized
from agentbus.security import keys


def _safe_next(raw: str | None) -> str:
    """Only a console path: never an open redirect to another site."""
    if not raw:
        return "/jobs"
    parts = urlsplit(raw)
    if parts.scheme or parts.netloc or not parts.path.startswith(PREFIX + "/") or "\\" in raw:
        return "/jobs"
    return raw[len(PREFIX) :]


def _login_page(request: Request, status: int = 200, error: str | None = None) -> Response:
    c = console(request)
    nonce = request.cookies.get(LOGIN_COOKIE) or c.sessions.login_nonce()
    response = page(
        request,
        "login.html",
        status,
        principal=None,
        csrf=c.sessions.login_csrf(nonce),
        error=error,
        next=request.query_params.get("next", ""),
    )
    response.set_cookie(
        LOGIN_COOKIE,
        nonce,
        max_age=LOGIN_S,
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response


async def login_form(request: Request) -> Response:
    return _login_page(request)


async def login(request: Request) -> Response:
    c = console(request)
    form = await form_of(request)
    client = c.limits.client(request.scope)
    if wait := c.limits.blocked(client):
        return _login_page(request, 429, f"Too many failed attempts from this address: try again in {wait:.0f} s.")
    if not c.sessions.login_csrf_ok(request.cookies.get(LOGIN_COOKIE), form.get("csrf")):
        return _login_page(request, 403, "The sign-in form expired: please try again.")
    try:
        principal = await run_in_threadpool(c.sessions.check_token, c.api.keys, form.get("key", ""))
    except Unauthorized as exc:
        parsed = keys.parse(form.get("key", "").strip())
        await run_in_threadpool(c.limits.sign_in_failed, client, parsed[0] if parsed else None)
        return _login_page(request, 401, f"Not signed in: {exc.message}.")
    cookie = await run_in_threadpool(c.sessions.issue, c.api.keys, principal)
    response = redirect(_safe_next(form.get("next")))
    response.set_cookie(
        COOKIE,
        cookie,
        max_age=int(c.sessions.session_s),
        path=PREFIX,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.delete_cookie(LOGIN_COOKIE, path=PREFIX)
    return response


@signed_in(None)
async def logout(request: Request) -> Response:
    response = redirect("/login")
    response.delete_cookie(COOKIE, path=PREFIX, httponly=True, samesite="strict")
    return response


async def home(request: Request) -> Response:
    return redirect("/jobs")
