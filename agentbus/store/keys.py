"""API keys in the database."""

from __future__ import annotations

import time
from dataclasses import dataclass

from agentbus.domain.errors import NotFound
from agentbus.security import keys
from agentbus.store._repository import Repository
from agentbus.store.db import translate_errors
from agentbus.store.models import ApiKey


@dataclass(frozen=True)
class KeyRecord:
    id: str
    tenant: str
    name: str | None
    prefix: str
    scopes: tuple[str, ...]
    created_at: float
    expires_at: float | None
    revoked_at: float | None
    last_used_at: float | None
    secret_hash: str

    def usable(self, now: float) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


def _record(r: ApiKey) -> KeyRecord:
    return KeyRecord(
        r.id,
        r.tenant,
        r.name,
        r.prefix,
        tuple(r.scopes.split(",")),
        r.created_at,
        r.expires_at,
        r.revoked_at,
        r.last_used_at,
        r.secret_hash,
    )


class Keys(Repository):
    """API keys (``ab_api_keys``): only a hash of each secret is stored."""

    @translate_errors
    def create_key(
        self, tenant: str, scopes: tuple[str, ...], expires_in: float | None = None, name: str | None = None
    ) -> tuple[str, KeyRecord]:
        """A new key: returns the token (shown once) and its record."""
        new = keys.generate()
        now = time.time()
        ApiKey.insert(
            id=new.id,
            tenant=keys.check_tenant(tenant),
            name=name,
            prefix=new.prefix,
            secret_hash=new.secret_hash,
            scopes=",".join(scopes),
            created_at=now,
            expires_at=None if expires_in is None else now + expires_in,
        ).execute()
        return new.token, _record(ApiKey.get_by_id(new.id))

    @translate_errors
    def find_key(self, key_id: str) -> KeyRecord | None:
        row = ApiKey.get_or_none(ApiKey.id == key_id)
        return None if row is None else _record(row)

    @translate_errors
    def list_keys(self, tenant: str | None = None) -> list[KeyRecord]:
        q = ApiKey.select().order_by(ApiKey.created_at)
        if tenant:
            q = q.where(ApiKey.tenant == tenant)
        return [_record(r) for r in q]

    @translate_errors
    def revoke_key(self, key_id: str) -> KeyRecord:
        n = ApiKey.update(revoked_at=time.time()).where((ApiKey.id == key_id) & ApiKey.revoked_at.is_null()).execute()
        rec = self.find_key(key_id)
        if rec is None:
            raise NotFound(f"no key {key_id!r}")
        del n
        return rec
