"""Webhook delivery against local receivers on a real PostgreSQL (issue 17, items 5 and 6).

Receivers listen on loopback, so these senders run with ``allow_private`` (what
AGENTBUS_WEBHOOK_ALLOW_PRIVATE sets); the address checks themselves are unit-tested in
tests/unit/test_webhook_guard.py.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from agentbus.domain.hitl import HumanRequest
from agentbus.orchestrator.webhooks import WebhookSender
from agentbus.store import NewJob, Repositories

SECRET = b"hook-secret-0123456789"


@pytest.fixture
def store(pg_url: str) -> Iterator[Repositories]:
    s = Repositories.from_url(pg_url)
    yield s
    s.close()


def queue_delivery(store: Repositories, url: str) -> str:
    """An approval with a webhook, as an agent's ``ask_human`` leaves it; returns the approval id.

    Built without ``HumanRequest.build`` so that a URL it now refuses can stand for a row
    written before it did."""
    job, _ = store.jobs.create_job(NewJob("hooked", {"url": url}))
    store.steps.record_replay(job.id, [], None, asks=[(0, HumanRequest("Approve?", webhook=url))])
    return f"{job.id}-0"


class Receiver:
    """An HTTP server on ``host`` that answers 204 and remembers each request's Host header."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.hosts: list[str] = []
        self.got_one = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["Content-Length"]))
                outer.hosts.append(self.headers["Host"])
                outer.got_one.set()
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Dripper:
    """Accepts one request and answers one byte every 0.1 s for a minute: every read of the
    client succeeds in time, so only a deadline on the whole delivery can end it."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.cut_off = threading.Event()
        self.dripped_it_all = threading.Event()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        conn, _ = self.sock.accept()
        conn.recv(65536)
        stop = threading.Event()
        try:
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            for _ in range(600):
                conn.sendall(b"a")
                if stop.wait(0.1):
                    break
            else:
                self.dripped_it_all.set()
        except OSError:  # the client hung up
            self.cut_off.set()
        finally:
            conn.close()

    def close(self) -> None:
        self.sock.close()


def test_one_bad_url_does_not_stop_delivery_to_the_others(store: Repositories) -> None:
    good = Receiver()
    try:
        bad_port = queue_delivery(store, "http://example.com:99999/hook")
        bad_ipv6 = queue_delivery(store, "http://[::1/hook")
        fine = queue_delivery(store, f"http://127.0.0.1:{good.port}/hook")
        sender = WebhookSender(store.webhooks, SECRET, allow_private=True)
        assert sender.deliver_due() == 1
        assert [d["status"] for d in store.webhooks.webhook_deliveries(fine)] == ["delivered"]
        for approval_id in (bad_port, bad_ipv6):
            (d,) = store.webhooks.webhook_deliveries(approval_id)
            assert d["status"] == "refused" and "not a valid URL" in d["last_error"]
        assert sender.deliver_due() == 0  # a refused delivery is not tried again
    finally:
        good.close()


def test_a_dripping_receiver_is_cut_off_at_the_deadline_and_holds_no_other_delivery(store: Repositories) -> None:
    dripper, fast = Dripper(), Receiver()
    try:
        slow = queue_delivery(store, f"http://127.0.0.1:{dripper.port}/hook")  # due first
        quick = queue_delivery(store, f"http://127.0.0.1:{fast.port}/hook")
        sender = WebhookSender(store.webhooks, SECRET, allow_private=True, timeout=1.0, deadline=8.0)
        round_ = threading.Thread(target=sender.deliver_due)
        round_.start()
        assert fast.got_one.wait(30), "the other receiver never got its delivery"
        assert not dripper.cut_off.is_set() and not dripper.dripped_it_all.is_set(), "not concurrent"
        round_.join(60)
        assert not round_.is_alive()
        assert dripper.cut_off.wait(10) and not dripper.dripped_it_all.is_set()
        assert [d["status"] for d in store.webhooks.webhook_deliveries(quick)] == ["delivered"]
        (d,) = store.webhooks.webhook_deliveries(slow)
        assert d["status"] == "pending" and d["attempts"] == 1  # retried later, with backoff
        assert "no complete answer within 8s" in d["last_error"]
    finally:
        dripper.close()
        fast.close()


def test_the_sender_connects_to_the_address_it_checked_not_a_second_answer(
    store: Repositories, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: ``hooks.test`` answers 127.0.0.1 to the first lookup and 127.0.0.2 to any
    later one. The check sees the first answer, so the POST must go there, with the name kept in
    the Host header."""
    checked, rebound = Receiver("127.0.0.1"), None
    try:
        rebound = Receiver("127.0.0.2", checked.port)
        real = socket.getaddrinfo
        lookups: list[str] = []

        def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
            if host != "hooks.test":
                return real(host, port, *args, **kwargs)
            lookups.append(host)
            address = "127.0.0.1" if len(lookups) == 1 else "127.0.0.2"
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]

        monkeypatch.setattr(socket, "getaddrinfo", rebinding)
        approval_id = queue_delivery(store, f"http://hooks.test:{checked.port}/hook")
        assert WebhookSender(store.webhooks, SECRET, allow_private=True).deliver_due() == 1
        assert [d["status"] for d in store.webhooks.webhook_deliveries(approval_id)] == ["delivered"]
        assert checked.hosts == [f"hooks.test:{checked.port}"]
        assert rebound.hosts == []
        assert lookups == ["hooks.test"]
    finally:
        checked.close()
        if rebound is not None:
            rebound.close()


def test_a_lookup_that_hangs_ends_at_the_deadline_and_holds_no_other_delivery(store: Repositories) -> None:
    fast, release = Receiver(), threading.Event()

    def resolver(host: str, port: int) -> list[str]:
        if host == "stuck.test":
            release.wait(120)  # a DNS server that never answers
        return ["127.0.0.1"]

    try:
        stuck = queue_delivery(store, "http://stuck.test/hook")
        quick = queue_delivery(store, f"http://quick.test:{fast.port}/hook")
        sender = WebhookSender(store.webhooks, SECRET, allow_private=True, deadline=2.0, resolver=resolver)
        round_ = threading.Thread(target=sender.deliver_due)
        round_.start()
        round_.join(60)
        assert not round_.is_alive() and not release.is_set(), "the round waited for the lookup"
        assert [d["status"] for d in store.webhooks.webhook_deliveries(quick)] == ["delivered"]
        (d,) = store.webhooks.webhook_deliveries(stuck)
        assert d["status"] == "pending" and "no complete answer within 2s" in d["last_error"]
    finally:
        release.set()
        sender.close()
        fast.close()
