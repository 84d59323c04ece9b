"""Keyring: HMAC envelopes for every message that crosses Redis."""

from __future__ import annotations

import json

import pytest

from agentbus.domain import ConfigError, MessageRejected
from agentbus.security import Keyring

SECRET = "0123456789abcdef-secret"
OTHER = "fedcba9876543210-other"


def test_seal_open_round_trip() -> None:
    ring = Keyring.parse(SECRET)
    payload = {"kind": "job.submitted", "job_ids": ["a", "b"], "n": 1.5, "nested": {"x": [None, True]}}
    assert ring.open(ring.seal(payload)) == payload
    assert ring.open(ring.seal(payload).encode()) == payload


def test_envelope_is_json_with_key_id_and_signature() -> None:
    env = json.loads(Keyring.parse(f"main:{SECRET}").seal([1, 2]))
    assert set(env) == {"kid", "ts", "n", "body", "sig"}
    assert env["kid"] == "main"
    assert json.loads(env["body"]) == [1, 2]


def test_every_envelope_has_its_own_signed_nonce() -> None:
    ring = Keyring.parse(f"main:{SECRET}")
    first, second = ring.seal("same"), ring.seal("same")
    assert json.loads(first)["n"] != json.loads(second)["n"]
    assert ring.open_with_nonce(first)[0] == json.loads(first)["n"]
    with pytest.raises(MessageRejected):
        ring.open(_tamper(first, n=json.loads(second)["n"]))


def _tamper(raw: str, **changes: str) -> str:
    env = json.loads(raw)
    env.update(changes)
    return json.dumps(env)


def test_tampered_body_is_rejected() -> None:
    ring = Keyring.parse(SECRET)
    raw = ring.seal({"task": "echo"})
    with pytest.raises(MessageRejected):
        ring.open(_tamper(raw, body=json.dumps({"task": "os.system"})))


def test_tampered_timestamp_is_rejected() -> None:
    ring = Keyring.parse(SECRET)
    raw = ring.seal({"task": "echo"}, now=1000.0)
    with pytest.raises(MessageRejected):
        ring.open(_tamper(raw, ts=repr(2000.0)), now=2000.0)


def test_wrong_key_is_rejected() -> None:
    raw = Keyring.parse(f"k1:{SECRET}").seal({"x": 1})
    with pytest.raises(MessageRejected):
        Keyring.parse(f"k1:{OTHER}").open(raw)


def test_unknown_key_id_is_rejected() -> None:
    raw = Keyring.parse(f"old:{SECRET}").seal({"x": 1})
    with pytest.raises(MessageRejected, match="unknown key id"):
        Keyring.parse(f"new:{SECRET}").open(raw)


def test_expired_message_is_rejected() -> None:
    ring = Keyring.parse(SECRET, max_age=60.0)
    raw = ring.seal({"x": 1}, now=1000.0)
    assert ring.open(raw, now=1059.0) == {"x": 1}
    with pytest.raises(MessageRejected, match="expired"):
        ring.open(raw, now=1061.0)


@pytest.mark.parametrize(
    "raw",
    [
        "not json at all",
        b"\xff\xfe",
        "[1, 2, 3]",
        "null",
        json.dumps({"kid": "k1", "ts": "1", "body": "{}"}),
        json.dumps({"kid": 1, "ts": "1", "body": "{}", "sig": "00"}),
        "",
    ],
)
def test_anything_that_is_not_an_envelope_is_rejected(raw: str | bytes) -> None:
    with pytest.raises(MessageRejected):
        Keyring.parse(SECRET).open(raw)


def test_rotation_old_messages_open_with_new_and_old_keys() -> None:
    old = Keyring.parse(f"2024:{SECRET}")
    rotated = Keyring.parse(f"2025:{OTHER},2024:{SECRET}")
    sealed_before = old.seal({"n": 1})
    assert rotated.open(sealed_before) == {"n": 1}
    sealed_after = rotated.seal({"n": 2})
    assert json.loads(sealed_after)["kid"] == "2025"
    with pytest.raises(MessageRejected):
        old.open(sealed_after)


def test_plain_secrets_get_positional_key_ids() -> None:
    ring = Keyring.parse(f"{SECRET}, {OTHER}")
    assert [kid for kid, _ in ring.keys] == ["k1", "k2"]


@pytest.mark.parametrize("spec", ["short", "k1:short", f"k1:{SECRET},k2:tiny", "", " , "])
def test_short_or_empty_secret_is_a_config_error(spec: str) -> None:
    with pytest.raises(ConfigError):
        Keyring.parse(spec)
