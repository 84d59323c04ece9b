"""Outbound webhooks: refuse private destinations (SSRF), sign what is sent.

A destination is checked and pinned in one step (:func:`resolve_destination`): the name is
resolved once, every address it resolves to must be public, and the sender then connects to
the address that was checked (keeping the name for the Host header and TLS), so a name that
answers a public address to the check and a private one to the connection (DNS rebinding)
reaches nothing it should not.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import socket
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from agentbus.domain.errors import InvalidInput
from agentbus.domain.hitl import check_webhook_url

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]
"""``(host, port) -> addresses``: how a destination's name is resolved (injectable for tests)."""

# Not reachable from the public internet, or not a unicast destination (IANA special-purpose
# registries). Python's ``is_global`` misses some of these in the versions we support.
_BLOCKED_V4 = tuple(
    ipaddress.IPv4Network(n)
    for n in (
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.88.99.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/4",
        "240.0.0.0/4",
    )
)
_BLOCKED_V6 = tuple(
    ipaddress.IPv6Network(n)
    for n in (
        "::/96",  # unspecified, loopback and the deprecated IPv4-compatible form
        "64:ff9b:1::/48",  # local-use NAT64
        "100::/64",  # discard
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) among them
        "2001:db8::/32",
        "2002::/16",  # 6to4: deprecated, and any IPv4 address can be written in it
        "fc00::/7",
        "fe80::/10",
        "fec0::/10",
        "ff00::/8",
    )
)
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")


def _embedded_v4(addr: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (IPv4-mapped, NAT64, 6to4, Teredo), if any."""
    if addr.ipv4_mapped is not None:
        return addr.ipv4_mapped
    if addr in _NAT64:
        return ipaddress.IPv4Address(int(addr) & 0xFFFFFFFF)
    if addr.sixtofour is not None:
        return addr.sixtofour
    if addr.teredo is not None:
        return addr.teredo[1]
    return None


def is_public(addr: IPAddress) -> bool:
    """May a webhook be sent to ``addr``? Only to a global unicast address, in any notation."""
    if isinstance(addr, ipaddress.IPv6Address):
        inner = _embedded_v4(addr)
        if inner is not None and not is_public(inner):
            return False
        if addr in _NAT64:  # DNS64 on an IPv6-only network: the IPv4 address it carries decides
            return True
        if any(addr in net for net in _BLOCKED_V6):
            return False
    elif any(addr in net for net in _BLOCKED_V4):
        return False
    special = addr.is_multicast or addr.is_private or addr.is_reserved or addr.is_loopback or addr.is_link_local
    return addr.is_global and not (special or addr.is_unspecified)


def system_resolver(host: str, port: int) -> list[str]:
    return [str(info[4][0]) for info in socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)]


@dataclass(frozen=True)
class Destination:
    """A checked webhook URL and the address to connect to for it."""

    url: str
    scheme: str
    host: str
    port: int
    address: str  # the checked address: connect here, never to a fresh resolution of ``host``


def resolve_destination(url: str, allow_private: bool = False, resolver: Resolver = system_resolver) -> Destination:
    """Check ``url`` and pick the address to send to; InvalidInput names what is wrong.

    Every address the name resolves to must be public unless ``allow_private``
    (AGENTBUS_WEBHOOK_ALLOW_PRIVATE): one private answer refuses the name, whichever
    address a connection would have picked.
    """
    try:
        check_webhook_url(url)
    except ValueError as exc:
        raise InvalidInput(str(exc)) from None
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        literal: IPAddress | None = ipaddress.ip_address(host)
    except ValueError:
        literal = None
    if literal is not None:
        answers = [str(literal)]
    else:
        try:
            answers = resolver(host, port)
        except (OSError, UnicodeError, ValueError) as exc:
            raise InvalidInput(f"webhook host {host!r} does not resolve: {exc}") from None
    addresses: list[IPAddress] = []
    for answer in answers:
        try:
            addresses.append(ipaddress.ip_address(answer.split("%", 1)[0]))
        except ValueError:
            raise InvalidInput(f"webhook host {host!r} resolves to {answer!r}, not an IP address") from None
    if not addresses:
        raise InvalidInput(f"webhook host {host!r} resolves to no address")
    if not allow_private:
        for addr in addresses:
            if not is_public(addr):
                raise InvalidInput(f"webhook host {host!r} resolves to {addr}, a non-public address")
    return Destination(url, parts.scheme, host, port, str(addresses[0]))


def check_destination(url: str, allow_private: bool = False, resolver: Resolver = system_resolver) -> None:
    """Raise InvalidInput unless ``url`` may receive webhooks (see :func:`resolve_destination`)."""
    resolve_destination(url, allow_private, resolver)


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
