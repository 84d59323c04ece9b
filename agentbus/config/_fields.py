"""How one setting is declared: ``setting(default, env, help, parse, check)``, and the parsers and checks.

A parser turns the environment's text into the setting's type; a check looks at the final value
(from the environment, the default or a command-line option) and says what is wrong with it, or
``None``. Both raise or return plain messages; ``Settings.from_env`` names the variable.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import Field, dataclass, field, fields
from typing import Any, TypeVar
from urllib.parse import urlsplit

from agentbus.domain.errors import InvalidInput
from agentbus.domain.retention import parse_age

T = TypeVar("T")
Check = Callable[[Any], "str | None"]

SPEC = "agentbus.setting"


@dataclass(frozen=True)
class Spec:
    """Everything about one setting but its name, type and default (the dataclass field has those)."""

    env: str
    help: str
    parse: Callable[[str], Any]
    check: Check | None = None
    secret: bool = False
    """Masked by ``agentbus config``; URLs (``url=True``) have only their password masked."""
    url: bool = False


def setting(
    default: T,
    env: str,
    help: str,
    parse: Callable[[str], T],
    check: Check | None = None,
    *,
    secret: bool = False,
    url: bool = False,
) -> T:
    """A dataclass field that carries its environment variable, parser, check and help."""
    spec = Spec(env, help, parse, check, secret, url)
    return field(default=default, metadata={SPEC: spec})


def spec_of(f: Field[Any]) -> Spec:
    spec = f.metadata.get(SPEC)
    if not isinstance(spec, Spec):
        raise TypeError(f"{f.name} is not declared with config.setting()")
    return spec


def declared(cls: type) -> list[tuple[Field[Any], Spec]]:
    """The fields of a settings dataclass with their specs, in declaration order."""
    return [(f, spec_of(f)) for f in fields(cls)]


# parsers: the environment's text (never empty: empty means the default) to the setting's type


def _str(raw: str) -> str:
    return raw


def _lower(raw: str) -> str:
    return raw.strip().lower()


def _float(raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise ValueError(f"must be a number, got {raw!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"must be a finite number, got {raw!r}")
    return value


def _int(raw: str) -> int:
    """A whole number; ``1e3`` reads as 1000 and ``2.5`` as 2, as the settings always have."""
    return int(_float(raw))


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _bool(raw: str) -> bool:
    word = raw.strip().lower()
    if word in _TRUE or word in _FALSE:
        return word in _TRUE
    raise ValueError(f"must be one of {', '.join(_TRUE + _FALSE)}, got {raw!r}")


def _age(raw: str) -> float:
    """``30d``, ``12h``... (``domain.retention.parse_age``); ``0``, ``off`` or ``never``: 0, i.e. never."""
    word = raw.strip().lower()
    if word in ("0", "off", "never"):
        return 0.0
    try:
        return parse_age(word)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _cidrs(raw: str) -> tuple[str, ...]:
    """A comma-separated list of networks (``10.0.0.0/8, 172.16.0.1``), checked now, not per request."""
    nets = tuple(n.strip() for n in raw.split(",") if n.strip())
    for net in nets:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            raise ValueError(f"{net!r} is not an IP address or network (CIDR)") from None
    return nets


_UNITS = {
    "": 1,
    "b": 1,
    "k": 1 << 10,
    "kb": 1000,
    "kib": 1 << 10,
    "m": 1 << 20,
    "mb": 1000**2,
    "mib": 1 << 20,
    "g": 1 << 30,
    "gb": 1000**3,
    "gib": 1 << 30,
}


def _size(raw: str) -> int:
    """A size in bytes: ``805306368``, ``768MiB``, ``768M``, ``1GB``, ``0.75GiB``."""
    raw = raw.strip()
    number = raw.rstrip("BbKkMmGgIi ")
    unit = raw[len(number) :].strip().lower()
    try:
        value = float(number) * _UNITS[unit]
    except (ValueError, KeyError):
        raise ValueError(f"must be a size such as 805306368, 768MiB or 1GB, got {raw!r}") from None
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"must be a size of 0 or more bytes, got {raw!r}")
    return int(value)


# checks: the final value to what is wrong with it, or None


def at_least(low: float) -> Check:
    return lambda v: None if v >= low else f"must be at least {low}, got {v!r}"


def above(low: float) -> Check:
    return lambda v: None if v > low else f"must be above {low}, got {v!r}"


def between(low: float, high: float) -> Check:
    return lambda v: None if low <= v <= high else f"must be from {low} to {high}, got {v!r}"


def one_of(*choices: str) -> Check:
    return lambda v: None if v in choices else f"must be one of {', '.join(choices)}, got {v!r}"


def url(*schemes: str) -> Check:
    """A URL whose scheme is one of ``schemes`` (the part before ``://``)."""

    def check(value: str) -> str | None:
        scheme = urlsplit(value).scheme if "://" in value else ""
        if scheme in schemes:
            return None
        return f"must be a URL starting {' or '.join(s + '://' for s in schemes)}, got {mask_url(value)!r}"

    return check


def rate(value: str) -> str | None:
    """``50/s:100``: a sustained rate per second, minute or hour, and a burst (``bus.ratelimit.Rate``)."""
    from agentbus.bus.ratelimit import Rate

    try:
        Rate.parse(value)
    except ValueError as exc:
        return f"must be a rate such as 50/s:100 (per s, m or h : burst), {exc}"
    return None


def tracing(value: str) -> str | None:
    """Where traces go (``observability.tracing``): empty (off), ``otlp``, ``console`` or ``file:DIR``."""
    if value in ("", "otlp", "console") or (value.startswith("file:") and len(value) > len("file:")):
        return None
    return f"must be otlp, console or file:DIR, got {value!r}"


def mask_url(value: str) -> str:
    """The URL with its password replaced by ``***``: safe to print."""
    try:
        parts = urlsplit(value)
        password = parts.password
    except ValueError:
        return value
    if not password:
        return value
    netloc = parts.netloc.replace(f":{password}@", ":***@", 1)
    return parts._replace(netloc=netloc).geturl()
