"""The webhook sender's bookkeeping over an in-memory outbox (deliveries to real receivers:
tests/integration/test_webhook_delivery.py)."""

from __future__ import annotations

import socket
import time
from collections.abc import Sequence

from agentbus.config import Settings
from agentbus.orchestrator.webhooks import WebhookSender
from agentbus.store import WebhookRow

MAX_ATTEMPTS = Settings().webhook_max_attempts  # the sender's default: AGENTBUS_WEBHOOK_MAX_ATTEMPTS


class Outbox:
    def __init__(self, *due: WebhookRow) -> None:
        self.due = list(due)
        self.attempted: list[tuple[str, str, float, str | None]] = []

    def due_webhooks(self, now: float, limit: int = 50) -> list[WebhookRow]:
        return self.due[:limit]

    def webhook_attempted(self, delivery_id: str, status: str, next_at: float, error: str | None) -> None:
        self.attempted.append((delivery_id, status, next_at, error))


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def row(url: str, attempts: int = 0) -> WebhookRow:
    return WebhookRow("wh1", "a1", url, "approval.requested", "{}", attempts)


def send(outbox: Outbox, allow_private: bool, resolver: object = None) -> Sequence[tuple[str, str, float, str | None]]:
    kwargs = {"resolver": resolver} if resolver else {}
    sender = WebhookSender(outbox, b"secret", allow_private, timeout=2.0, deadline=4.0, **kwargs)  # type: ignore[arg-type]
    try:
        assert sender.deliver_due() == 0
    finally:
        sender.close()
    return outbox.attempted


def test_a_private_destination_is_refused_for_good() -> None:
    ((_, status, _, error),) = send(Outbox(row("https://hooks.example/x")), False, lambda host, port: ["10.1.2.3"])
    assert status == "refused" and error is not None


def test_a_receiver_that_cannot_be_reached_is_tried_again_later_with_a_growing_delay() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    before = time.time()
    ((_, status, next_at, error),) = send(Outbox(row(url, attempts=3)), True)
    assert status == "pending" and error is not None and next_at >= before + 2**3


def test_after_its_last_attempt_a_delivery_fails_for_good() -> None:
    url = f"http://127.0.0.1:{closed_port()}/hook"
    ((_, status, _, _),) = send(Outbox(row(url, attempts=MAX_ATTEMPTS - 1)), True)
    assert status == "failed"
