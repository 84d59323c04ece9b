"""API keys: ``ab_<id>_<secret>``; only SHA-256(secret) is stored, with a display prefix."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from agentbus.domain.errors import InvalidInput

SCOPES = ("jobs:read", "jobs:write", "approvals:write", "memory:read", "memory:write", "admin")
_KEY = re.compile(r"^ab_([0-9a-f]{12})_([A-Za-z0-9_-]{32,64})$")
_TENANT = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


@dataclass(frozen=True)
class NewKey:
    id: str
    secret: str
    secret_hash: str

    @property
    def token(self) -> str:
        return f"ab_{self.id}_{self.secret}"

    @property
    def prefix(self) -> str:
        return f"ab_{self.id}_{self.secret[:4]}…"


def generate() -> NewKey:
    key_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)[:43].replace("-", "A").replace("_", "B")
    return NewKey(key_id, secret, hash_secret(secret))


def hash_secret(secret: str) -> str:
    # The secret is 256 random bits: a plain SHA-256 cannot be brute-forced, and it is fast to check.
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    """``ab_<id>_<secret>`` → (id, secret), or None when it is not shaped like a key."""
    m = _KEY.match(token)
    return (m.group(1), m.group(2)) if m else None


def matches(secret: str, secret_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), secret_hash)


def parse_scopes(text: str) -> tuple[str, ...]:
    scopes = tuple(s.strip() for s in text.split(",") if s.strip())
    unknown = [s for s in scopes if s not in SCOPES]
    if unknown or not scopes:
        raise InvalidInput(f"unknown scope(s) {', '.join(unknown) or '(none given)'}; choose from {', '.join(SCOPES)}")
    return scopes


def check_tenant(tenant: str) -> str:
    if not _TENANT.match(tenant):
        raise InvalidInput("a tenant is 1-100 characters: letters, digits, '.', '_' and '-'")
    return tenant


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``15m``, ``90s`` → seconds."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)([smhd])", text.strip())
    if not m:
        raise InvalidInput(f"cannot read {text!r} as a duration: use e.g. 30d, 12h, 15m")
    return float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
