"""The API's rate limits, applied to console requests: the same Redis buckets, so a key's pages and
its API calls share one budget, and failed sign-ins count with failed API authentications."""

from __future__ import annotations

import ipaddress
import logging
import time
from typing import Any

from starlette.types import Scope

from agentbus.api.auth import Principal, authfail_buckets, client_address
from agentbus.bus.ratelimit import Rate
from agentbus.config import Settings
from agentbus.domain import RateLimited, Unavailable

log = logging.getLogger("agentbus.api")


class Limits:
    def __init__(self, limiter: Any, settings: Settings) -> None:
        self.limiter = limiter  # None when the app has none to share: no limits
        self.read = Rate.parse(settings.rate_read)
        self.write = Rate.parse(settings.rate_write)
        self.factor = settings.tenant_rate_factor
        self.authfail = Rate.parse(settings.authfail_rate)
        self.proxies = [ipaddress.ip_network(n, strict=False) for n in settings.trusted_proxies]
        self._blocked: dict[str, float] = {}

    def client(self, scope: Scope) -> str:
        return client_address(scope, self.proxies)

    def charge(self, principal: Principal, write: bool) -> None:
        """One request of ``principal`` (a form post is a write); over the key's or tenant's rate: RateLimited."""
        if self.limiter is None:
            return
        rate = self.write if write else self.read
        kind = "r" if rate is self.read else "w"
        tenant_rate = Rate(rate.per_second * self.factor, int(rate.burst * self.factor))
        try:
            verdict = self.limiter.hit(
                [(f"key:{principal.key_id}:{kind}", rate), (f"tenant:{principal.tenant}:{kind}", tenant_rate)]
            )
        except Unavailable as exc:  # fail open, as the API does: PostgreSQL is the record
            log.warning("console rate limiting skipped: %s", exc)
            return
        if not verdict.allowed:
            raise RateLimited("rate limit exceeded: slow down a little", verdict.retry_after_s)

    def blocked(self, client: str) -> float:
        """Seconds this address must wait before trying to sign in again (0: it may)."""
        return max(0.0, self._blocked.get(client, 0.0) - time.monotonic())

    def sign_in_failed(self, client: str, key_id: str | None) -> None:
        """Charge a failed sign-in to its address and to the key id it named, like a failed API call."""
        if self.limiter is None:
            return
        try:
            v = self.limiter.hit(authfail_buckets(client, key_id, self.authfail))
        except Unavailable:
            return
        if not v.allowed:
            if len(self._blocked) > 10_000:
                self._blocked.clear()
            self._blocked[client] = time.monotonic() + v.retry_after_s
