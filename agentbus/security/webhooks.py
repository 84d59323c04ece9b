"""Outbound webhooks: refuse private destinations (SSRF), sign what is sent."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from urllib.parse import urlparse

from agentbus.domain.errors import InvalidInput


def check_destination(url: str, allow_private: bool = False) -> None:
    """Raise InvalidInput unless ``url`` is http(s) and every address it resolves to is public.

    Loopback, link-local, private, multicast, reserved and unspecified addresses are refused
    unless ``allow_private`` (AGENTBUS_WEBHOOK_ALLOW_PRIVATE) says otherwise. Checked again at
    every delivery, so a name that later resolves elsewhere (DNS rebinding) is caught.
    """
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise InvalidInput(f"webhook URL {url!r} is not an http(s) URL")
    try:
        infos = socket.getaddrinfo(parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80))
    except (socket.gaierror, UnicodeError) as exc:
        raise InvalidInput(f"webhook host {parsed.hostname!r} does not resolve: {exc}") from None
    if allow_private:
        return
    for info in infos:
        addr = ipaddress.ip_address(info[4][0])
        if (
            addr.is_loopback or addr.is_private or addr.is_link_local or addr.is_multicast
            or addr.is_reserved or addr.is_unspecified
        ):  # fmt: skip
            raise InvalidInput(f"webhook host {parsed.hostname!r} resolves to {addr}, a non-public address")


def signature(secret: bytes, timestamp: str, body: bytes) -> str:
    """``X-Agentbus-Signature``: ``t=<timestamp>,v1=<hex HMAC-SHA256 of "timestamp.body">``."""
    mac = hmac.new(secret, timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify(secret: bytes, header: str, body: bytes) -> bool:
    """What a receiver runs: does ``header`` sign ``body`` under ``secret``?"""
    try:
        parts = dict(p.split("=", 1) for p in header.split(","))
        expected = signature(secret, parts["t"], body)
    except (ValueError, KeyError):
        return False
    return hmac.compare_digest(expected, header)
