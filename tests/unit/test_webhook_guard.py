"""The webhook destination guard (SSRF) and webhook URL checks, without any network."""

from __future__ import annotations

import ipaddress

import pytest

from agentbus.domain import InvalidInput
from agentbus.domain.hitl import HumanRequest, check_webhook_url
from agentbus.security import webhooks

BLOCKED = [
    "127.0.0.1",
    "10.1.2.3",
    "172.16.0.1",
    "192.168.1.1",
    "169.254.169.254",
    "0.0.0.0",
    "255.255.255.255",
    "100.64.0.1",
    "100.100.100.200",  # shared address space: a cloud metadata address among them
    "192.0.0.8",
    "192.0.0.170",  # IETF protocol assignments
    "198.18.0.1",
    "224.0.0.1",
    "240.0.0.1",
    "::1",
    "::",
    "fe80::1",
    "fc00::1",
    "fd12:3456::1",
    "ff02::1",
    "::ffff:127.0.0.1",
    "::ffff:10.0.0.1",  # IPv4-mapped
    "::127.0.0.1",  # IPv4-compatible (deprecated)
    "64:ff9b::7f00:1",
    "64:ff9b::a9fe:a9fe",  # NAT64 of 127.0.0.1 and 169.254.169.254
    "2002:7f00:1::1",
    "2002:c0a8:101::1",
    "2002:808:808::1",  # 6to4, of private and public addresses
    "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, whose client is 127.0.0.1
    "2001:db8::1",
]
PUBLIC = ["8.8.8.8", "93.184.216.34", "1.1.1.1", "2606:4700:4700::1111", "2a00:1450:4001:82a::200e", "64:ff9b::808:808"]


@pytest.mark.parametrize("address", BLOCKED)
def test_non_public_addresses_are_blocked_in_every_notation(address: str) -> None:
    assert not webhooks.is_public(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert webhooks.is_public(ipaddress.ip_address(address))


def answers(*addresses: str) -> webhooks.Resolver:
    return lambda host, port: list(addresses)


def test_a_name_is_refused_if_any_of_its_addresses_is_not_public() -> None:
    with pytest.raises(InvalidInput, match=r"100\.100\.100\.200, a non-public address"):
        webhooks.resolve_destination("https://hooks.example/x", resolver=answers("8.8.8.8", "100.100.100.200"))


def test_the_destination_is_pinned_to_the_checked_address() -> None:
    dest = webhooks.resolve_destination("https://hooks.example:8443/x", resolver=answers("8.8.8.8", "1.1.1.1"))
    assert (dest.host, dest.port, dest.address, dest.scheme) == ("hooks.example", 8443, "8.8.8.8", "https")


def test_a_rebinding_name_is_checked_on_each_resolution() -> None:
    """A name that answers a public address, then 127.0.0.1: the first check passes and pins the
    public address; the next resolution (the next delivery) is refused."""
    replies = iter([["93.184.216.34"], ["127.0.0.1"]])

    def rebinding(host: str, port: int) -> list[str]:
        return next(replies)

    assert webhooks.resolve_destination("http://rebind.example/", resolver=rebinding).address == "93.184.216.34"
    with pytest.raises(InvalidInput, match="non-public"):
        webhooks.resolve_destination("http://rebind.example/", resolver=rebinding)


def test_a_literal_address_is_checked_without_resolving() -> None:
    def no_lookup(host: str, port: int) -> list[str]:
        raise AssertionError("a literal address needs no lookup")

    with pytest.raises(InvalidInput, match="non-public"):
        webhooks.resolve_destination("http://[::ffff:169.254.169.254]/", resolver=no_lookup)
    assert webhooks.resolve_destination("http://8.8.8.8/", resolver=no_lookup).address == "8.8.8.8"


def test_allow_private_lets_loopback_through() -> None:
    assert webhooks.resolve_destination("http://127.0.0.1:9/", allow_private=True).address == "127.0.0.1"


@pytest.mark.parametrize(
    "url",
    [
        "http://example.com:99999/",
        "http://example.com:-1/",
        "http://[::1/",
        "ftp://example.com/",
        "http:///x",
        "http://exa mple.com/",
        "http://example.com/\x00",
        "javascript:alert(1)",
        5,
    ],
)
def test_a_malformed_url_is_invalid_input_not_a_crash(url: str) -> None:
    with pytest.raises(InvalidInput):
        webhooks.check_destination(url, resolver=answers("8.8.8.8"))


def test_a_name_that_does_not_resolve_is_invalid_input() -> None:
    def fails(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    with pytest.raises(InvalidInput, match="does not resolve"):
        webhooks.check_destination("http://nowhere.example/", resolver=fails)


def test_ask_human_refuses_a_bad_webhook_url_when_it_is_asked() -> None:
    with pytest.raises(ValueError, match="Port out of range"):
        HumanRequest.build("Approve?", webhook="http://example.com:99999/")
    with pytest.raises(ValueError, match="not an http"):
        HumanRequest.build("Approve?", webhook="file:///etc/passwd")
    assert HumanRequest.build("Approve?", webhook="https://hooks.example/x").webhook == "https://hooks.example/x"
    assert check_webhook_url("http://例え.jp/") == "http://例え.jp/"


def test_ask_human_refuses_text_that_cannot_be_stored() -> None:
    with pytest.raises(ValueError, match="NUL"):
        HumanRequest.build("Approve\x00?")
    with pytest.raises(ValueError, match="surrogate"):
        HumanRequest.build("Approve?", assignees=["al\ud800ice"])
