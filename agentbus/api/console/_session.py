"""Console sign-in: an API key becomes a signed session cookie; forms carry a CSRF token.

The cookie holds ``<key id>.<expiry>.<nonce>.<mac>``, never the key's secret. The MAC is an
HMAC-SHA256 under a key derived from the cluster secret (``AGENTBUS_SECRET``) over the id,
expiry, nonce and the key's stored hash, so it cannot be forged without the server secret and
is bound to that exact key. Nothing is stored server-side: any API replica can check a session,
and every request re-reads the key record, so revoking or expiring the key ends its console
sessions at once. The cookie is HttpOnly and SameSite=Strict (Secure over HTTPS).

CSRF: each state-changing form carries ``HMAC(k, "csrf." + nonce)`` of its session (a
synchronizer token that needs no storage); the sign-in form uses a nonce of its own in a short
pre-session cookie, so a cross-site page cannot sign a visitor in either.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from typing import Any

from agentbus.api.auth import Principal
from agentbus.config import sections
from agentbus.domain import Unauthorized
from agentbus.security import keys

COOKIE = "ab_console"
LOGIN_COOKIE = "ab_console_login"
LOGIN_S = 3600


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


class Sessions:
    def __init__(self, server_secret: str, session_s: float = sections.Api.console_session_s) -> None:
        self.session_s = session_s
        self._k = hmac.new(server_secret.encode(), b"agentbus console session v1", hashlib.sha256).digest()

    def _mac(self, *parts: str) -> str:
        return _b64(hmac.new(self._k, ".".join(parts).encode(), hashlib.sha256).digest())

    # -- sign-in ---------------------------------------------------------------------------------
    def check_token(self, key_repo: Any, token: str) -> Principal:
        """The principal an API key stands for, checked exactly as the API's middleware checks it."""
        parsed = keys.parse(token.strip())
        if parsed is None:
            raise Unauthorized("that is not an API key: keys look like ab_<id>_<secret>")
        key_id, secret = parsed
        rec = key_repo.find_key(key_id)
        if rec is None or not keys.matches(secret, rec.secret_hash):
            raise Unauthorized("unknown API key")
        if not rec.usable(time.time()):
            raise Unauthorized("this API key has been revoked or has expired")
        return Principal(rec.id, rec.tenant, rec.scopes)

    def issue(self, key_repo: Any, principal: Principal, now: float | None = None) -> str:
        rec = key_repo.find_key(principal.key_id)
        expires = str(int((now or time.time()) + self.session_s))
        nonce = secrets.token_urlsafe(16)
        mac = self._mac(principal.key_id, expires, nonce, rec.secret_hash)
        return ".".join((principal.key_id, expires, nonce, mac))

    def principal(self, key_repo: Any, cookie: str | None) -> tuple[Principal, str] | None:
        """The session's principal and nonce, or None for no, a forged, an expired or a revoked session."""
        if not cookie:
            return None
        parts = cookie.split(".")
        if len(parts) != 4 or not parts[1].isdigit() or int(parts[1]) < time.time():
            return None
        key_id, expires, nonce, mac = parts
        rec = key_repo.find_key(key_id)
        if rec is None or not rec.usable(time.time()):
            return None
        if not hmac.compare_digest(mac, self._mac(key_id, expires, nonce, rec.secret_hash)):
            return None
        return Principal(rec.id, rec.tenant, rec.scopes), nonce

    # -- CSRF ------------------------------------------------------------------------------------
    def csrf(self, nonce: str) -> str:
        return self._mac("csrf", nonce)

    def csrf_ok(self, nonce: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(str(token), self.csrf(nonce))

    def login_nonce(self) -> str:
        return secrets.token_urlsafe(16)

    def login_csrf(self, nonce: str) -> str:
        return self._mac("login", nonce)

    def login_csrf_ok(self, nonce: str | None, token: str | None) -> bool:
        return bool(nonce) and bool(token) and hmac.compare_digest(str(token), self.login_csrf(str(nonce)))
