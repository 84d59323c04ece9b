"""What a JSON schema asks for, told to a person: its fields, an example value, what is missing.

Used to say how to answer an approval whose question has a schema (``ctx.ask_human(schema=...)``).
Only the top level of an object schema is described; the server validates the whole of it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

_PLACEHOLDER: dict[str, Any] = {
    "string": "...",
    "integer": 0,
    "number": 0,
    "boolean": True,
    "array": [],
    "object": {},
    "null": None,
}


@dataclass(frozen=True)
class Field:
    name: str
    type: str
    required: bool
    description: str | None

    def describe(self) -> str:
        extra = f": {self.description}" if self.description else ""
        return f"{self.name} ({self.type}{'' if self.required else ', optional'}){extra}"


def _type(prop: Mapping[str, Any]) -> str:
    if "enum" in prop:
        return " | ".join(str(v) for v in prop["enum"])
    t = prop.get("type", "any")
    return " | ".join(t) if isinstance(t, list) else str(t)


def fields(schema: Mapping[str, Any] | None) -> list[Field]:
    """The object's properties, required ones first."""
    if not schema:
        return []
    required = set(schema.get("required") or ())
    props: Mapping[str, Any] = schema.get("properties") or {}
    out = [Field(n, _type(p), n in required, p.get("description")) for n, p in props.items()]
    out += [Field(n, "any", True, None) for n in sorted(required - set(props))]
    return sorted(out, key=lambda f: not f.required)


def example(schema: Mapping[str, Any] | None) -> Any:
    """A value of the schema's shape: its examples, defaults or enums where it has them, placeholders
    otherwise (a placeholder may break a constraint such as ``minimum``: it shows the shape)."""
    if not schema:
        return None
    if schema.get("examples"):
        return schema["examples"][0]
    if "default" in schema:
        return schema["default"]
    if schema.get("enum"):
        return schema["enum"][0]
    t = schema.get("type", "object" if "properties" in schema else None)
    t = t[0] if isinstance(t, list) and t else t
    if t == "object":
        props: Mapping[str, Any] = schema.get("properties") or {}
        return {name: example(prop) for name, prop in props.items()}
    if t in ("integer", "number") and "minimum" in schema:
        return schema["minimum"]
    return _PLACEHOLDER.get(str(t))


def missing(schema: Mapping[str, Any] | None, value: Any) -> list[str]:
    """Required top-level fields ``value`` lacks (all of them when there is no value)."""
    if not schema or schema.get("type", "object") != "object":
        return []
    required = list(schema.get("required") or ())
    if not isinstance(value, Mapping):
        return required
    return [name for name in required if name not in value]
