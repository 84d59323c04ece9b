"""The approval webhook outbox (``ab_webhook_deliveries``): queued with the change they announce,
delivered and retried by the orchestrator's sender (``orchestrator/webhooks.py``)."""

from __future__ import annotations

import time
import uuid
from typing import Any

from agentbus.store._repository import Repository
from agentbus.store.db import translate_errors
from agentbus.store.models import WebhookDelivery
from agentbus.store.records import WebhookRow, dumps


class Webhooks(Repository):
    def enqueue(self, approval_id: str, url: str, event: str, payload: dict[str, Any], now: float) -> None:
        """Queue one delivery (inside the caller's transaction: it exists iff the change does)."""
        WebhookDelivery.insert(
            id=uuid.uuid4().hex,
            approval_id=approval_id,
            url=url,
            event=event,
            payload=dumps(payload),
            status="pending",
            attempts=0,
            next_at=now,
            created_at=now,
            updated_at=now,
        ).execute()

    @translate_errors
    def due_webhooks(self, now: float, limit: int = 50) -> list[WebhookRow]:
        q = (
            WebhookDelivery.select()
            .where((WebhookDelivery.status == "pending") & (WebhookDelivery.next_at <= now))
            .order_by(WebhookDelivery.next_at)
            .limit(limit)
        )
        return [WebhookRow(r.id, r.approval_id, r.url, r.event, r.payload, r.attempts) for r in q]

    @translate_errors
    def webhook_attempted(self, delivery_id: str, status: str, next_at: float, error: str | None) -> None:
        WebhookDelivery.update(
            status=status,
            attempts=WebhookDelivery.attempts + 1,
            next_at=next_at,
            last_error=error,
            updated_at=time.time(),
        ).where(WebhookDelivery.id == delivery_id).execute()

    @translate_errors
    def webhook_deliveries(self, approval_id: str) -> list[dict[str, Any]]:
        q = (
            WebhookDelivery.select()
            .where(WebhookDelivery.approval_id == approval_id)
            .order_by(WebhookDelivery.created_at)
        )
        return [{"event": r.event, "status": r.status, "attempts": r.attempts, "last_error": r.last_error} for r in q]
