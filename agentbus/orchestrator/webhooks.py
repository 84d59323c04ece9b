"""Delivering approval webhooks: signed POSTs, retried with backoff, never to private addresses."""

from __future__ import annotations

import logging
import time

import httpx

from agentbus.domain import InvalidInput
from agentbus.security import webhooks
from agentbus.store import Store

log = logging.getLogger("agentbus.webhooks")

MAX_ATTEMPTS = 8
MAX_BACKOFF_S = 300.0


class WebhookSender:
    def __init__(self, store: Store, secret: bytes, allow_private: bool, timeout: float = 5.0) -> None:
        self.store = store
        self.secret = secret
        self.allow_private = allow_private
        self.http = httpx.Client(timeout=timeout, follow_redirects=False)

    def deliver_due(self) -> int:
        sent = 0
        for d in self.store.due_webhooks(time.time()):
            attempt = d.attempts + 1
            try:
                webhooks.check_destination(d.url, self.allow_private)
            except InvalidInput as exc:
                self.store.webhook_attempted(d.id, "refused", time.time(), exc.message)
                log.warning("webhook %s refused: %s", d.id, exc.message)
                continue
            body = d.payload.encode()
            ts = str(int(time.time()))
            headers = {
                "Content-Type": "application/json",
                "X-Agentbus-Event": d.event,
                "X-Agentbus-Delivery": d.id,
                "X-Agentbus-Signature": webhooks.signature(self.secret, ts, body),
            }
            error: str | None = None
            try:
                resp = self.http.post(d.url, content=body, headers=headers)
                if resp.status_code < 300:
                    self.store.webhook_attempted(d.id, "delivered", time.time(), None)
                    sent += 1
                    continue
                error = f"HTTP {resp.status_code}"
            except httpx.HTTPError as exc:
                error = f"{type(exc).__name__}: {exc}"
            if attempt >= MAX_ATTEMPTS:
                self.store.webhook_attempted(d.id, "failed", time.time(), error)
            else:
                delay = min(MAX_BACKOFF_S, 2 ** (attempt - 1))
                self.store.webhook_attempted(d.id, "pending", time.time() + delay, error)
        return sent

    def close(self) -> None:
        self.http.close()
