"""Signals: named messages from outside a job (``POST /jobs/{id}/signals/{name}``) that an agent
waits for with ``ctx.wait_for(name)``.

A signal is kept until a wait takes it: the first wait for its name, in the journal's order, that
has none yet takes the oldest signal of that name its schema accepts. Each signal completes at most
one wait, and each wait takes at most one signal (the store's compare-and-set on both).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import jsonschema

from agentbus.domain.errors import InvalidInput, ValidationFailed

MAX_SIGNAL_NAME = 100
MAX_IDEMPOTENCY_KEY = 200
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$")


def check_signal_name(name: Any) -> str:
    """A signal name is 1 to 100 letters, digits and ``_ . : -``, starting with a letter or digit:
    it travels in a URL path and names a journal step. Raises InvalidInput."""
    if not isinstance(name, str) or not 0 < len(name) <= MAX_SIGNAL_NAME or not _NAME.match(name):
        raise InvalidInput(
            f"a signal name is 1 to {MAX_SIGNAL_NAME} letters, digits, '_', '.', ':' or '-', "
            f"starting with a letter or digit; got {str(name)[:120]!r}"
        )
    return name


@dataclass(frozen=True)
class SignalWait:
    """What ``ctx.wait_for`` waits for, as journaled in the wait's step."""

    name: str
    timeout: float | None = None
    schema: dict[str, Any] | None = None

    @classmethod
    def build(cls, name: str, timeout: float | None = None, schema: dict[str, Any] | None = None) -> SignalWait:
        """Check what ``ctx.wait_for`` was given (raises ValueError, which the agent sees at its call)."""
        try:
            check_signal_name(name)
        except InvalidInput as exc:
            raise ValueError(exc.message) from None
        if timeout is not None and (isinstance(timeout, bool) or not isinstance(timeout, int | float) or timeout <= 0):
            raise ValueError("timeout must be a positive number of seconds, or None to wait for ever")
        if schema is not None:
            if not isinstance(schema, dict):
                raise ValueError("schema must be a JSON Schema object (a dict)")
            try:
                jsonschema.Draft202012Validator.check_schema(schema)
            except jsonschema.SchemaError as exc:
                raise ValueError(f"schema is not a valid JSON Schema: {exc.message}") from None
        return cls(name, None if timeout is None else float(timeout), schema)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "timeout": self.timeout, "schema": self.schema}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> SignalWait:
        return cls(str(d["name"]), d.get("timeout"), d.get("schema"))


def check_against(schema: dict[str, Any] | None, value: Any, where: str) -> None:
    """Raise ValidationFailed (422, naming the first bad field under ``where``) unless ``value``
    is valid under the JSON Schema ``schema`` (None: anything is). Answers to ``ctx.ask_human`` and
    signals to ``ctx.wait_for`` are both checked with it."""
    if schema is None:
        return
    try:
        validator = jsonschema.Draft202012Validator(schema)
        errors = sorted(validator.iter_errors(value), key=lambda e: list(e.absolute_path))
    except jsonschema.SchemaError as exc:  # the agent's own schema is broken: say so, do not 500
        raise ValidationFailed(f"the schema the agent asked with is invalid: {exc.message}") from None
    if errors:
        detail = [{"loc": [where, *[str(p) for p in e.absolute_path]], "msg": e.message} for e in errors]
        at = ".".join(detail[0]["loc"])
        raise ValidationFailed(f"invalid {where} at {at}: {errors[0].message}", detail)


def accepts(schema: dict[str, Any] | None, value: Any) -> bool:
    """Whether a wait with ``schema`` can take a signal carrying ``value``."""
    try:
        check_against(schema, value, "payload")
    except ValidationFailed:
        return False
    return True


@dataclass(frozen=True)
class Waiting:
    """An open wait of a job: its step's place in the journal, the name and the schema it waits with."""

    seq: int
    name: str
    schema: dict[str, Any] | None = None


@dataclass(frozen=True)
class Arrived:
    """A signal no wait has taken yet; ``order`` is its place in the order signals arrived."""

    order: int
    name: str
    payload: Any


def pair(waits: Sequence[Waiting], arrived: Sequence[Arrived]) -> list[tuple[Waiting, Arrived]]:
    """Which signal each open wait takes now: waits in journal order, each the oldest signal of its
    name that its schema accepts and no earlier wait took. A wait with none stays open."""
    taken: set[int] = set()
    out: list[tuple[Waiting, Arrived]] = []
    signals = sorted(arrived, key=lambda a: a.order)
    for w in sorted(waits, key=lambda w: w.seq):
        for a in signals:
            if a.order not in taken and a.name == w.name and accepts(w.schema, a.payload):
                taken.add(a.order)
                out.append((w, a))
                break
    return out


def next_wait(waits: Sequence[Waiting], arrived: Sequence[Arrived], name: str) -> Waiting | None:
    """The wait a new signal ``name`` would go to (its schema checks the signal), or None: it is kept."""
    paired = {w.seq for w, _ in pair(waits, arrived)}
    return next((w for w in sorted(waits, key=lambda w: w.seq) if w.name == name and w.seq not in paired), None)


def timeout_message(name: str, timeout: float | None) -> str:
    return f"no signal {name!r} arrived within {timeout:g}s" if timeout else f"no signal {name!r} arrived"
