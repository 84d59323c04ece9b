"""Authentication, scopes and rate limits: an ASGI middleware in front of every route.

Each route says who may call it in the route table (``api/table.py``): the health checks need
no key, every other route ``Authorization: Bearer ab_<id>_<secret>`` and, for most, a scope. A
request for no route of the table needs a key too (then gets its 404 or 405). A missing,
malformed, unknown, revoked or expired key is a 401; a key without the route's scope is a
403. Accepted requests are charged to their key's and their tenant's buckets (GCRA in Redis,
one script): over either, a 429 with ``Retry-After``. The tenant lands in
``request.state.tenant`` for the routes to scope by.

Failed attempts are limited too, per client address and per key id presented: once over,
failing attempts get a 429 instead of a 401. The key is always checked first, so a valid key
is never locked out by other people's failures (behind a proxy everyone shares an address).
The client address is the connection's peer, or, when that peer is one of
``AGENTBUS_TRUSTED_PROXIES``, the rightmost X-Forwarded-For hop that is not a trusted proxy
(hops to the left of it were written by the client and prove nothing).
"""

from __future__ import annotations

import ipaddress
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agentbus.api.errors import agentbus_error
from agentbus.api.operation import ANY_KEY, PUBLIC, Access, Open, RouteTable
from agentbus.bus.ratelimit import Rate, Verdict
from agentbus.config import Settings
from agentbus.domain import AgentbusError, Forbidden, RateLimited, Unauthorized, Unavailable
from agentbus.observability import bind, metrics
from agentbus.security import keys
from agentbus.store import KeyRecord

log = logging.getLogger("agentbus.api")

CONSOLE = "/ui"  # the web console signs people in with a session cookie of its own (api/console)


@dataclass(frozen=True)
class Principal:
    key_id: str
    tenant: str
    scopes: tuple[str, ...]

    def allows(self, access: Access | None) -> bool:
        """None: no scope asked (the console's pages any signed-in key may see)."""
        return access is None or isinstance(access, Open) or access in self.scopes or "admin" in self.scopes


def required_access(table: RouteTable, scope: Scope) -> Access:
    """What the route a request calls asks of its caller; a key, whatever its scopes, where the
    table has no such route (the router answers 404 or 405 to whoever holds a key)."""
    op = table.find(scope)
    return ANY_KEY if op is None else op.access


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address from a forwarded hop: ``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``, ``::1``."""
    text = text.strip().strip('"')
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


def _trusted(ip: ipaddress.IPv4Address | ipaddress.IPv6Address | None, proxies: Sequence[Network]) -> bool:
    return ip is not None and any(ip in net for net in proxies if ip.version == net.version)


def client_address(scope: Scope, proxies: Sequence[Network]) -> str:
    """The peer, or behind trusted proxies the rightmost forwarded hop that is not one of them."""
    peer = str((scope.get("client") or ("unknown", 0))[0])
    if not proxies or not _trusted(_ip(peer), proxies):
        return peer
    hops = [h for v in Headers(scope=scope).getlist("x-forwarded-for") for h in v.split(",") if h.strip()]
    client = peer
    for hop in reversed(hops):
        ip = _ip(hop)
        if ip is None:  # not an address: a trusted proxy would not have written it
            return client
        client = str(ip)
        if not _trusted(ip, proxies):
            return client
    return client


def _presented_key_id(header: str | None) -> str | None:
    scheme, _, token = (header or "").partition(" ")
    parsed = keys.parse(token.strip()) if scheme.lower() == "bearer" else None
    return parsed[0] if parsed else None


def authfail_buckets(client: str, key_id: str | None, rate: Rate) -> list[tuple[str, Rate]]:
    """The buckets a failed attempt is charged to: its address and, when it named one, the key id
    (brute force on one key is limited whatever the address). The console's sign-in uses them too."""
    return [(f"authfail:{client}", rate)] + ([(f"authfail-key:{key_id}", rate)] if key_id else [])


def _rate_headers(v: Verdict) -> dict[str, str]:
    return {
        "RateLimit-Limit": str(v.limit),
        "RateLimit-Remaining": str(v.remaining),
        "RateLimit-Reset": str(max(0, round(v.reset_s))),
    }


def _judged(verdict: Verdict) -> Verdict:
    if not verdict.allowed:
        metrics.rate_limited("rate")
        raise RateLimited("rate limit exceeded", verdict.retry_after_s, _rate_headers(verdict))
    return verdict


class _NotCached(Exception):
    """The key is not in this process's cache (or its entry is stale): look it up on a thread."""


class AuthMiddleware:
    def __init__(self, app: ASGIApp, key_repo: Any, limiter: Any, settings: Settings, table: RouteTable) -> None:
        self.app = app
        self.table = table
        self.key_repo = key_repo
        self.limiter = limiter
        self.read = Rate.parse(settings.rate_read)
        self.write = Rate.parse(settings.rate_write)
        self.factor = settings.tenant_rate_factor
        self.authfail = Rate.parse(settings.authfail_rate)
        self.proxies = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]
        self.key_cache_s = settings.key_cache_s
        self._keys: dict[str, tuple[float, KeyRecord | None]] = {}
        self._blocked: dict[str, float] = {}  # "addr:<ip>" / "key:<id>" → until when failures get a 429

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path == CONSOLE or path.startswith(CONSOLE + "/"):
            await self.app(scope, receive, send)
            return
        needed = required_access(self.table, scope)
        if needed is PUBLIC:
            await self.app(scope, receive, send)
            return
        try:
            admitted: tuple[Principal, Verdict | None] | None = None
            if self.limiter.on_loop:
                admitted = await self._admit_on_loop(scope, needed)
            if admitted is None:
                admitted = await run_in_threadpool(self._admit, scope, needed)
            principal, verdict = admitted
        except AgentbusError as exc:
            response = await agentbus_error(Request(scope), exc)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})
        scope["state"]["tenant"] = principal.tenant
        bind(tenant=principal.tenant)
        scope["state"]["key_id"] = principal.key_id
        extra = [(k.lower().encode(), v.encode()) for k, v in _rate_headers(verdict).items()] if verdict else []

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start" and extra:
                message = {**message, "headers": [*message.get("headers", []), *extra]}
            await send(message)

        await self.app(scope, receive, send_with_headers)

    # -- on the event loop: a key in the cache needs no thread (the rate limit is an async call) --
    async def _admit_on_loop(self, scope: Scope, needed: Access) -> tuple[Principal, Verdict | None] | None:
        """As ``_admit``, when the key is in the cache and valid; None: ask ``_admit`` on a thread
        (a key to look up in PostgreSQL, or a failure to count)."""
        try:
            principal = self._authenticate(Headers(scope=scope).get("authorization"), self._cached_key)
        except (_NotCached, Unauthorized):
            return None
        buckets = self._buckets(principal, needed)
        try:
            verdict = await self.limiter.hit_async(buckets)
        except Unavailable as exc:  # fail open: PostgreSQL is the record, keep accepting work
            log.warning("rate limiting skipped: %s", exc)
            return principal, None
        return principal, _judged(verdict)

    # -- in a worker thread ---------------------------------------------------------------------
    def _admit(self, scope: Scope, needed: Access) -> tuple[Principal, Verdict | None]:
        header = Headers(scope=scope).get("authorization")
        try:
            principal = self._authenticate(header, self._key)
        except Unauthorized:
            self._count_failure(client_address(scope, self.proxies), _presented_key_id(header))
            raise
        buckets = self._buckets(principal, needed)
        try:
            verdict = self.limiter.hit(buckets)
        except Unavailable as exc:  # fail open: PostgreSQL is the record, keep accepting work
            log.warning("rate limiting skipped: %s", exc)
            return principal, None
        return principal, _judged(verdict)

    def _buckets(self, principal: Principal, needed: Access) -> list[tuple[str, Rate]]:
        """The buckets the request is charged to; Forbidden when the key lacks the route's scope."""
        if not principal.allows(needed):
            raise Forbidden(f"this API key lacks the {needed!r} scope")
        # reads are charged to the read buckets; so is whatever needs no scope (this document, a 404)
        rate = self.read if isinstance(needed, Open) or needed.endswith(":read") else self.write
        tenant_rate = Rate(rate.per_second * self.factor, int(rate.burst * self.factor))
        kind = "r" if rate is self.read else "w"
        return [(f"key:{principal.key_id}:{kind}", rate), (f"tenant:{principal.tenant}:{kind}", tenant_rate)]

    def _count_failure(self, client: str, key_id: str | None) -> None:
        """Charge a failed attempt to its address and to the key id it named; over either: 429."""
        names = [f"addr:{client}"] + ([f"key:{key_id}"] if key_id else [])
        now = time.monotonic()
        until = max(self._blocked.get(n, 0.0) for n in names)
        if until > now:  # already over: answer without another round-trip
            metrics.rate_limited("authfail")
            raise RateLimited("too many failed authentication attempts", until - now)
        try:
            v = self.limiter.hit(authfail_buckets(client, key_id, self.authfail))
        except Unavailable:
            return
        if not v.allowed:
            if len(self._blocked) > 10_000:
                self._blocked = {n: t for n, t in self._blocked.items() if t > now}
            for n in names:
                self._blocked[n] = now + v.retry_after_s
            metrics.rate_limited("authfail")
            raise RateLimited("too many failed authentication attempts", v.retry_after_s)

    def _authenticate(self, header: str | None, find: Callable[[str], KeyRecord | None]) -> Principal:
        if not header:
            raise Unauthorized("missing API key: send Authorization: Bearer ab_<id>_<secret>")
        scheme, _, token = header.partition(" ")
        parsed = keys.parse(token.strip()) if scheme.lower() == "bearer" else None
        if parsed is None:
            raise Unauthorized("malformed Authorization header: expected Bearer ab_<id>_<secret>")
        key_id, secret = parsed
        rec = find(key_id)
        if rec is None or not keys.matches(secret, rec.secret_hash):
            raise Unauthorized("unknown API key")
        now = time.time()
        if rec.revoked_at is not None:
            raise Unauthorized("this API key has been revoked")
        if rec.expires_at is not None and rec.expires_at <= now:
            raise Unauthorized("this API key has expired")
        return Principal(rec.id, rec.tenant, rec.scopes)

    def _cached_key(self, key_id: str) -> KeyRecord | None:
        cached = self._keys.get(key_id)
        if cached is None or time.monotonic() - cached[0] >= self.key_cache_s:
            raise _NotCached
        return cached[1]

    def _key(self, key_id: str) -> KeyRecord | None:
        cached = self._keys.get(key_id)
        if cached is not None and time.monotonic() - cached[0] < self.key_cache_s:
            return cached[1]
        rec: KeyRecord | None = self.key_repo.find_key(key_id)
        if len(self._keys) > 10_000:
            self._keys.clear()
        self._keys[key_id] = (time.monotonic(), rec)
        return rec
