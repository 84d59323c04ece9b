"""HMAC-SHA256 envelopes for every message that crosses Redis.

An envelope is JSON:
``{"kid": key id, "ts": unix time, "n": nonce, "body": "<json>", "sig": hex}``.
The signature covers ``kid.ts.n.body``; the nonce lets a receiver recognise a replayed
message. Several keys may verify at once (rotation); the first one signs.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from agentbus.domain.errors import ConfigError, MessageRejected


@dataclass(frozen=True)
class Keyring:
    keys: tuple[tuple[str, bytes], ...]
    max_age: float = 7 * 24 * 3600.0

    @classmethod
    def parse(cls, spec: str, max_age: float = 7 * 24 * 3600.0) -> Keyring:
        """``"secret"`` or ``"kid1:secret1,kid2:secret2"`` (the first one signs)."""
        keys: list[tuple[str, bytes]] = []
        for i, part in enumerate(p.strip() for p in spec.split(",") if p.strip()):
            kid, sep, secret = part.partition(":")
            if not sep:
                kid, secret = f"k{i + 1}", part
            if len(secret) < 16:
                raise ConfigError(f"secret {kid!r} is too short: use at least 16 characters")
            keys.append((kid, secret.encode()))
        if not keys:
            raise ConfigError("AGENTBUS_SECRET is empty")
        return cls(tuple(keys), max_age)

    def _mac(self, key: bytes, kid: str, ts: str, nonce: str, body: str) -> str:
        return hmac.new(key, f"{kid}.{ts}.{nonce}.{body}".encode(), hashlib.sha256).hexdigest()

    def seal(self, payload: Any, now: float | None = None) -> str:
        kid, key = self.keys[0]
        body = json.dumps(payload, separators=(",", ":"))
        ts = repr(time.time() if now is None else now)
        nonce = secrets.token_hex(12)
        return json.dumps({"kid": kid, "ts": ts, "n": nonce, "body": body, "sig": self._mac(key, kid, ts, nonce, body)})

    def open(self, raw: str | bytes, now: float | None = None) -> Any:
        """Verify an envelope, then parse its body. Raises MessageRejected."""
        return self.open_with_nonce(raw, now)[1]

    def open_with_nonce(self, raw: str | bytes, now: float | None = None) -> tuple[str, Any]:
        """Verify an envelope; return its nonce and its parsed body. Raises MessageRejected."""
        try:
            env = json.loads(raw)
            kid, ts, nonce, body, sig = env["kid"], env["ts"], env["n"], env["body"], env["sig"]
        except (ValueError, TypeError, KeyError):
            raise MessageRejected("not a signed agentbus envelope") from None
        if not all(isinstance(x, str) for x in (kid, ts, nonce, body, sig)):
            raise MessageRejected("not a signed agentbus envelope")
        key = dict(self.keys).get(kid)
        if key is None:
            raise MessageRejected(f"unknown key id {kid!r}")
        if not hmac.compare_digest(self._mac(key, kid, ts, nonce, body), sig):
            raise MessageRejected("bad signature")
        try:
            sent = float(ts)
        except ValueError:
            raise MessageRejected("bad timestamp") from None
        age = (time.time() if now is None else now) - sent
        if age > self.max_age:
            raise MessageRejected(f"expired message ({age:.0f}s old)")
        return nonce, json.loads(body)
