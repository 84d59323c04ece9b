"""HTML forms generated from a JSON Schema, and the submitted form turned back into JSON.

Flat object schemas (strings, numbers, booleans, enums) become one labelled control per property;
anything deeper (arrays, nested objects) is a JSON text area for that property, and a schema that
is not an object at all is one JSON text area for the whole value. The answer is then validated
by the same code the JSON API uses, so the form can only make typing easier, never looser.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from agentbus.domain import InvalidInput

WHOLE = "__json"  # the field holding the whole value as JSON, when the schema is not a flat object


@dataclass(frozen=True)
class FormField:
    name: str
    label: str
    control: str  # text | integer | number | checkbox | select | json
    required: bool
    description: str | None = None
    options: tuple[str, ...] = ()
    default: str = ""


def _plain(schema: Mapping[str, Any]) -> Mapping[str, Any]:
    """``X | None`` (anyOf with null) reads as X."""
    for key in ("anyOf", "oneOf"):
        alts = [a for a in schema.get(key, ()) if isinstance(a, Mapping) and a.get("type") != "null"]
        if key in schema and len(alts) == 1:
            return {**alts[0], **{k: v for k, v in schema.items() if k != key}}
    return schema


def _control(prop: Mapping[str, Any]) -> str:
    if "enum" in prop:
        return "select"
    kind = prop.get("type")
    return {"string": "text", "integer": "integer", "number": "number", "boolean": "checkbox"}.get(str(kind), "json")


def _default(prop: Mapping[str, Any], control: str) -> str:
    if "default" not in prop or prop["default"] is None:
        return ""
    value = prop["default"]
    if control == "json":
        return json.dumps(value)
    if control == "checkbox":
        return "on" if value else ""
    if control == "select":
        return str(list(prop["enum"]).index(value)) if value in prop["enum"] else ""
    return str(value)


def fields(schema: Mapping[str, Any] | None) -> list[FormField]:
    """The controls for ``schema``; a single JSON field when it is not a flat object."""
    if not schema or schema.get("type") != "object" or not isinstance(schema.get("properties"), Mapping):
        return [FormField(WHOLE, "Answer (JSON)", "json", required=False)]
    required = set(schema.get("required", ()))
    out = []
    for name, raw in schema["properties"].items():
        prop = _plain(raw if isinstance(raw, Mapping) else {})
        control = _control(prop)
        options = tuple(json.dumps(v) if not isinstance(v, str) else v for v in prop.get("enum", ()))
        out.append(
            FormField(
                name=name,
                label=str(prop.get("title") or name),
                control=control,
                required=name in required,
                description=prop.get("description"),
                options=options,
                default=_default(prop, control),
            )
        )
    return out


def _convert(f: FormField, raw: str, enum: list[Any]) -> Any:
    if f.control == "integer":
        try:
            return int(raw)
        except ValueError:
            return raw  # the schema check names the field and says what it should be
    if f.control == "number":
        try:
            return float(raw)
        except ValueError:
            return raw
    if f.control == "select":
        return enum[int(raw)] if raw.isdigit() and int(raw) < len(enum) else raw
    if f.control == "json":
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise InvalidInput(f"{f.label} is not valid JSON: {exc}") from None
    return raw


def value(schema: Mapping[str, Any] | None, form: Mapping[str, str]) -> Any:
    """The JSON value a submitted form stands for (None for an empty answer to a schema-less question)."""
    specs = fields(schema)
    if specs[0].name == WHOLE:
        raw = form.get(WHOLE, "").strip()
        return _convert(specs[0], raw, []) if raw else None
    assert schema is not None
    out: dict[str, Any] = {}
    for f in specs:
        if f.control == "checkbox":
            out[f.name] = f.name in form
            continue
        raw = form.get(f.name, "")
        if raw == "" and f.control != "text":
            continue
        if raw == "" and not f.required:
            continue
        enum = list(_plain(schema["properties"][f.name]).get("enum", ()))
        out[f.name] = _convert(f, raw, enum)
    return out
